"""Turns the import checker's results (tests/python/imports.py) into the
generated section of docs/python.md; run by tests/integration/python-imports
with Debian's python3.

    imports_report.py RESULTS LIB_DYNLOAD > SECTION

A module that fails is filed under its root cause: the C extension it needs
(one Debian ships as a shared library in LIB_DYNLOAD, which a static
interpreter cannot load), another operating system's module, a part of the
standard library the runtime does not pack (sdk/python/mkstdlib.py), or the
error message itself.
"""
import collections
import os
import re
import sys

WINDOWS = {"nt", "msvcrt", "winreg", "winsound", "_winapi", "_overlapped",
           "_msi", "msilib"}
MACOS = {"_scproxy"}
NOT_PACKED = {"ensurepip", "venv"}
# Debian ships these apart from its base Python (python3-tk, idle,
# python3-gdbm), so whether lib-dynload has them depends on the machine.
DEBIAN_APART = {"_tkinter", "tkinter", "idlelib", "turtle", "turtledemo",
                "_gdbm"}


def cause(name, err, shared):
    m = (re.search(r"No module named '([\w.]+)'", err) or
         re.search(r"required (\w+) module", err))
    missing = m.group(1) if m else None
    top = (missing or name).split(".")[0]
    if top in NOT_PACKED or name.split(".")[0] in NOT_PACKED:
        return "not packed: a function installs no packages"
    if top in DEBIAN_APART or name.split(".")[0] in DEBIAN_APART:
        return "not in Debian's base Python (python3-tk, idle, python3-gdbm)"
    if missing in WINDOWS or "win32 only" in err or re.search(
            r"'(mbcs|oem)_encode'", err):
        return "Windows only"
    if missing in MACOS:
        return "macOS only"
    if missing in shared:
        return "`%s` (shared extension)" % missing
    return "fails in Debian's python3 too: %s" % err


def main():
    results, dynload = sys.argv[1], sys.argv[2]
    shared = {f.split(".")[0] for f in os.listdir(dynload)
              if f.endswith(".so")}
    total, bad = 0, collections.defaultdict(list)
    for line in open(results):
        name, _, rest = line.rstrip("\n").partition(" ")
        total += 1
        if rest != "ok":
            bad[cause(name, rest, shared)].append(name)
    nbad = sum(len(v) for v in bad.values())
    print("%d of the %d modules tried import, in the micro guest and as a "
          "host process alike; %d do not:" % (total - nbad, total, nbad))
    print()
    print("| cause | modules that do not import |")
    print("|---|---|")
    def order(k):
        return (not k.startswith("`"), k)
    for k in sorted(bad, key=order):
        print("| %s | %s |" % (k, ", ".join("`%s`" % n for n in bad[k])))


if __name__ == "__main__":
    main()
