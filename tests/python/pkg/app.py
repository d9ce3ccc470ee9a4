"""A handler module inside a package, named as pkg/app.py or pkg.app."""


def handle(event):
    return b"pkg.app:" + event
