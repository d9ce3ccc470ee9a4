"""A handler module without handle() (tests/integration/python-*)."""
handler = "this is not a function"
