"""A handler module whose initialisation fails (tests/integration/python-*)."""
import json

CONFIG = json.loads("{not json")


def handle(event):
    return event
