/*
 * runtime.h - internal interfaces of Ember's Python runtime (sdk/python/).
 *
 *   runtime.c      main(): configure and start CPython, import the handler
 *                  module, serve invocations through the C SDK's loop
 *   contextvars.c  the `_contextvars` built-in module
 *
 * The runtime is one static executable (CPython from Debian's
 * libpython3.11.a); docs/python.md is its user-facing description.
 */
#ifndef EMBER_PYTHON_RUNTIME_H
#define EMBER_PYTHON_RUNTIME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* PyInit function of `_contextvars`, for PyImport_AppendInittab(). */
PyObject *pyrt_init_contextvars(void);

#endif
