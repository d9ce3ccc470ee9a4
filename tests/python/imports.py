"""Import checker for the Python runtime (tests/integration/python-imports).

handle(b"") tries every module of the standard library's list
(sys.stdlib_module_names) and every submodule of its packages found in the
runtime's standard library, except those that act on import (SKIP); a
request naming modules (whitespace-separated) tries only those. The answer
is one line per module, sorted: "NAME ok" or "NAME ExceptionType: message".
"""
import pkgutil
import sys

# Importing these does something: opens a web browser, prints the Zen, or
# (any __main__) runs a command-line tool that reads stdin, which is the
# invocation stream.
SKIP = {"antigravity", "this", "__main__"}


def all_modules():
    names = set(sys.stdlib_module_names)
    stdlib = sys.path[-1]
    for m in pkgutil.walk_packages([stdlib], onerror=lambda n: None):
        if m.ispkg or "." in m.name:
            continue
        if m.name not in names:
            continue
    # Submodules of the packages, without importing them (walk_packages
    # would import each package to find its path).
    for info in pkgutil.iter_modules([stdlib]):
        if info.ispkg:
            names.update(_walk(stdlib, info.name))
    return sorted(n for n in names
                  if n not in SKIP and n.split(".")[-1] != "__main__")


def _walk(root, pkg):
    path = root + "/" + pkg.replace(".", "/")
    out = set()
    for info in pkgutil.iter_modules([path]):
        name = pkg + "." + info.name
        out.add(name)
        if info.ispkg:
            out.update(_walk(root, name))
    return out


def handle(event):
    names = event.decode().split() or all_modules()
    out = []
    for name in names:
        try:
            __import__(name)
            out.append(name + " ok")
        except BaseException as e:  # SystemExit too: report, go on
            msg = str(e).replace("\n", " ")
            out.append("%s %s: %s" % (name, type(e).__name__, msg))
    return ("\n".join(sorted(out)) + "\n").encode()
