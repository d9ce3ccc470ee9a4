# mk/python.mk - the Python runtime (sdk/python/, docs/python.md): CPython
# 3.11 linked statically from Debian's libpython3.11.a, and its standard
# library packed as precompiled modules for the micro guest's file tree.
#
#   $(BUILD)/handlers/python      the runtime: a static x86-64 ELF handler
#   $(PY_HOME)/lib/python3.11/    the standard library (.pyc, no sources)
#   $(PY_HOME)/share/zoneinfo/    the time zone database
#   make python                   both
#
# A function's image is its own files plus the runtime at /.ember/python:
#   ember-mkimage --add /.ember/python=$(PY_HOME) FUNCTION_DIR IMAGE
# The packing takes ~4 s, so it is not cached beyond $(BUILD).

PY_VER := 3.11
PY_CONFIG_DIR ?= /usr/lib/python$(PY_VER)/config-$(PY_VER)-x86_64-linux-gnu
PY_A ?= $(PY_CONFIG_DIR)/libpython$(PY_VER).a
PY_INC ?= /usr/include/python$(PY_VER)
PY_STDLIB_SRC ?= /usr/lib/python$(PY_VER)
PY_TZDATA ?= /usr/share/zoneinfo
# The interpreter that matches libpython3.11.a (its .pyc magic number):
# Debian's, not whatever python3 comes first in PATH.
PY_BUILD_PYTHON ?= /usr/bin/python3
PY_HOME := $(BUILD)/runtimes/python

# libpython3.11.a's built-in modules need these (Setup.local: pyexpat and
# _elementtree -lexpat, zlib and binascii -lz, math and others -lm).
PY_LIBS := $(PY_A) -lexpat -lz -lm
# The C SDK's loop serves the invocations (mk/sdk.mk is read after this
# file, so its lists are not used here).
PY_SRCS := sdk/python/runtime.c sdk/python/contextvars.c \
	sdk/python/embermod.c sdk/handler.c \
	proto/invoke.c
PY_HDRS := sdk/python/runtime.h sdk/ember_handler.h proto/invoke.h

# -isystem: Python.h is not written for our warning set. Objects of their
# own (the handlers' flags, not libember's).
PY_OBJS := $(PY_SRCS:%.c=$(BUILD)/python/obj/%.o)

$(BUILD)/python/obj/%.o: %.c $(PY_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(SDK_CFLAGS) -isystem $(PY_INC) -c $< -o $@

# glibc warns at link time that the NSS functions (pwd, grp, socket name
# lookups) need its shared libraries at run time: expected, those lookups
# fail in a micro guest (docs/python.md); the warnings go to a log.
$(BUILD)/handlers/python: $(PY_OBJS) $(PY_A)
	@mkdir -p $(dir $@)
	$(CC) -static -o $@ $(PY_OBJS) $(PY_LIBS) 2>$@.link.log || \
		{ cat $@.link.log; rm -f $@; exit 1; }
	@grep -v -e 'statically linked applications' -e 'in function' \
		$@.link.log || true

# The stamp stands for the whole tree; the top-level modules of the
# source stand for it (a Python upgrade rewrites them).
$(PY_HOME)/.stamp: sdk/python/mkstdlib.py $(wildcard $(PY_STDLIB_SRC)/*.py)
	@mkdir -p $(dir $@)
	$(PY_BUILD_PYTHON) sdk/python/mkstdlib.py --src $(PY_STDLIB_SRC) \
		--tzdata $(PY_TZDATA) $(PY_HOME)
	@touch $@

.PHONY: python
python: $(BUILD)/handlers/python $(PY_HOME)/.stamp

ALL += $(BUILD)/handlers/python $(PY_HOME)/.stamp
TEST_DEPS += $(BUILD)/handlers/python $(PY_HOME)/.stamp
