"""Test handler for the Python runtime's contract (tests/integration/python-*):
the request names what handle() does."""
import os
import random
import sys

import ember

# Outside an invocation there is no request.
assert (ember.request_id(), ember.deadline_ms(), ember.remaining_ms()) == \
    (0, 0, None)

# At initialisation: output on stdout and stderr goes to the log, never into
# the frame stream.
print("errors.py: init on stdout")
print("errors.py: init on stderr", file=sys.stderr)


def handle(event: bytes) -> bytes:
    what = event.decode() if len(event) < 64 else ""
    if what == "raise":
        def inner():
            raise ValueError("boom")
        inner()
    if what == "int":
        return 42
    if what == "none":
        return None
    if what == "str":
        return "h\u00e9llo \u2603"
    if what == "bytearray":
        return bytearray(b"from a bytearray")
    if what == "memoryview":
        return memoryview(b"0123456789")[2:5]
    if what == "strided":
        return memoryview(b"0123456789")[::2]
    if what == "print":
        print("printed to stdout")
        print("printed to stderr", file=sys.stderr)
        return b"printed"
    if what == "exit":
        sys.exit(3)
    if what == "toolarge":
        return b"x" * (6 * 1024 * 1024 + 1)
    if what == "random":
        return b"%.17f %s" % (random.random(), os.urandom(8).hex().encode())
    if what == "recursion":
        def f(n):
            return f(n + 1)
        return f(0)
    if what == "context":
        left = ember.remaining_ms()
        return b"%d %d %s" % (ember.request_id(), ember.deadline_ms(),
                              b"ok" if 0 < left <= ember.deadline_ms()
                              else repr(left).encode())
    if what == "argv":
        return repr((sys.argv, sys.path[0], __name__)).encode()
    return b"echo:" + event
