/*
 * runtime.h - internal interfaces of Ember's Python runtime (sdk/python/).
 *
 *   runtime.c      main(): configure and start CPython, import the handler
 *                  module, serve invocations through the C SDK's loop
 *   contextvars.c  the `_contextvars` built-in module
 *   embermod.c     the `ember` built-in module (the current invocation)
 *
 * The runtime is one static executable (CPython from Debian's
 * libpython3.11.a); docs/python.md is its user-facing description.
 */
#ifndef EMBER_PYTHON_RUNTIME_H
#define EMBER_PYTHON_RUNTIME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* PyInit functions of `_contextvars` and `ember`, for
 * PyImport_AppendInittab(). */
PyObject *pyrt_init_contextvars(void);
PyObject *pyrt_init_ember(void);
/* The invocation being served (id 0: none), as `ember` reports it. */
void pyrt_set_request(uint64_t id, uint32_t deadline_ms);

#endif
