#!/usr/bin/python3
"""mkstdlib.py - packs CPython's pure-Python standard library for Ember.

    /usr/bin/python3 sdk/python/mkstdlib.py [--src DIR] [--tzdata DIR]
                                            [--prefix PATH] OUT

Compiles every module of the standard library under --src (default: this
interpreter's, /usr/lib/python3.11) into a sourceless .pyc at the same place
under OUT/lib/python3.11, so that nothing is compiled when the runtime
starts and no source file is read. The .pyc files are "unchecked hash"
pycs: deterministic (no timestamps), never validated against a source, and
compiled without column positions (-X no_debug_ranges: a sourceless module's
traceback has no source line to point into).
Code objects name their file as PREFIX/lib/python3.11/... (default
/.ember/python, where the runtime lives in a micro guest image), which is
what tracebacks show.

The time zone database (--tzdata, default /usr/share/zoneinfo, without its
posix/ and right/ copies) goes to OUT/share/zoneinfo, and the packed
sysconfig data names PREFIX/share/zoneinfo first in TZPATH, so zoneinfo
finds it in the image (and Debian's own on a host).

Data files beside the modules are copied (lib2to3's grammars, with their
pickles generated here; pydoc's style sheet; the license). Left out: the test suites, IDLE, tkinter and turtle (their C parts are not in
Debian's base Python), ensurepip and venv (no package installation in a
function), lib-dynload (shared extensions a static interpreter cannot load),
the build configuration, site/dist-packages, and the __pycache__ folders.
Must run under the interpreter matching libpython3.11.a (same magic number):
Debian's /usr/bin/python3, which is checked.
"""
import argparse
import importlib.util
import os
import py_compile
import shutil
import sys
import warnings

EXCLUDE_DIRS = {
    "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo",
    "ensurepip", "venv", "lib-dynload", "site-packages", "dist-packages",
    "__pycache__", "__phello__",
}
EXCLUDE_FILES = {
    "turtle.py",            # needs tkinter
    "sitecustomize.py",     # Debian's, for its site.py; no site here
    "EXTERNALLY-MANAGED",
}


def pickle_grammars(tlib):
    """lib2to3 loads its grammars from pickles named for the exact Python
    version, and would otherwise regenerate them on every import (it cannot
    save them on a read-only image). Write them now."""
    d = os.path.join(tlib, "lib2to3")
    if not os.path.exists(os.path.join(d, "Grammar.txt")):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from lib2to3.pgen2 import driver, pgen
    for g in ("Grammar", "PatternGrammar"):
        txt = os.path.join(d, g + ".txt")
        # Debian's load_grammar() never saves: dump the tables directly.
        pgen.generate_grammar(txt).dump(driver._generate_pickle_name(txt))


def copy_tzdata(src, dst):
    """The zoneinfo tree without its posix/ and right/ duplicates. Links
    inside the tree stay links; others (localtime -> /etc/localtime) go."""
    n = 0
    for d, dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        dirs[:] = sorted(x for x in dirs
                         if not (rel == "." and x in ("posix", "right")))
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for f in sorted(files) + [x for x in dirs if os.path.islink(
                os.path.join(d, x))]:
            s = os.path.join(d, f)
            t = os.path.join(dst, rel, f)
            if os.path.islink(s):
                target = os.readlink(s)
                inside = os.path.realpath(s).startswith(
                    os.path.realpath(src) + os.sep)
                if os.path.isabs(target) or not inside:
                    continue
                os.symlink(target, t)
            else:
                shutil.copyfile(s, t)
            n += 1
    return n


def sysconfig_source(path, prefix):
    """Debian's sysconfig data with PREFIX/share/zoneinfo first in TZPATH."""
    ns = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), ns)
    v = ns["build_time_vars"]
    v["TZPATH"] = os.path.join(prefix, "share", "zoneinfo") + ":" + \
        v.get("TZPATH", "")
    return ("# Debian's build-time configuration; TZPATH rewritten by "
            "Ember's mkstdlib.py\nbuild_time_vars = %r\n" % (v,))


def main():
    # Column positions (PEP 657) serve only tracebacks that show source
    # lines; a sourceless library shows none, so leave them out: smaller
    # code objects, a denser heap, fewer pages touched after a restore.
    if "no_debug_ranges" not in sys._xoptions:
        os.execv(sys.executable, [sys.executable, "-X", "no_debug_ranges"] +
                 sys.argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.path.dirname(os.__file__))
    ap.add_argument("--tzdata", default="/usr/share/zoneinfo")
    ap.add_argument("--prefix", default="/.ember/python")
    ap.add_argument("out")
    a = ap.parse_args()
    if sys.version_info[:2] != (3, 11):
        sys.exit("mkstdlib: needs Python 3.11 (the libpython3.11.a "
                 "interpreter, /usr/bin/python3), this is %d.%d"
                 % sys.version_info[:2])
    src = os.path.abspath(a.src)
    lib = os.path.join(a.out, "lib", "python3.11")
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tlib = os.path.join(tmp, "lib", "python3.11")
    n = 0
    for d, dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        # config-3.11-<triplet>: the build's Makefile and static library
        dirs[:] = sorted(x for x in dirs if x not in EXCLUDE_DIRS and
                         not (rel == "." and x.startswith("config-")))
        for f in sorted(files):
            if f in EXCLUDE_FILES or f.endswith(".pyc"):
                continue
            r = os.path.normpath(os.path.join(rel, f))
            if not f.endswith(".py"):
                # Data some modules read (lib2to3's grammars, pydoc's
                # style sheet): copied as they are.
                os.makedirs(os.path.join(tlib, rel), exist_ok=True)
                shutil.copyfile(os.path.join(d, f), os.path.join(tlib, r))
                continue
            dst = os.path.join(tlib, r + "c")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            srcf = os.path.join(d, f)
            if f.startswith("_sysconfigdata_"):
                srcf = os.path.join(tmp, f)
                with open(srcf, "w") as o:
                    o.write(sysconfig_source(os.path.join(d, f), a.prefix))
            py_compile.compile(
                srcf, cfile=dst,
                dfile=os.path.join(a.prefix, "lib", "python3.11", r),
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            n += 1
    pickle_grammars(tlib)
    for f in os.listdir(tmp):
        if f.startswith("_sysconfigdata_"):
            os.unlink(os.path.join(tmp, f))
    nz = 0
    if a.tzdata and os.path.isdir(a.tzdata):
        nz = copy_tzdata(a.tzdata, os.path.join(tmp, "share", "zoneinfo"))
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    print("mkstdlib: %d modules from %s into %s (magic %s), %d time zone "
          "files" % (n, src, lib, importlib.util.MAGIC_NUMBER.hex(), nz))


if __name__ == "__main__":
    main()
