/*
 * contextvars.c - the `_contextvars` built-in module of the Python runtime.
 *
 * Debian ships `_contextvars` as a shared extension (lib-dynload), which a
 * static interpreter cannot load; without it `contextvars`, `decimal`
 * (through _pydecimal) and `asyncio` do not import. The module is only a
 * namespace: the types and copy_context() live in libpython itself
 * (Python/context.c, exported as PyContext_Type and friends), so this file
 * just publishes them under the names Lib/contextvars.py expects.
 */
#include "sdk/python/runtime.h"

static PyObject *copy_context(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyContext_CopyCurrent();
}

static PyMethodDef methods[] = {
	{ "copy_context", copy_context, METH_NOARGS,
	  "copy_context() -> Context: a copy of the current context." },
	{ NULL, NULL, 0, NULL },
};

static int exec_module(PyObject *m)
{
	/* PyModule_AddType names each by the last part of its tp_name
	 * ("_contextvars.Context" -> Context), as the shared module does. */
	if (PyModule_AddType(m, &PyContext_Type) < 0 ||
	    PyModule_AddType(m, &PyContextVar_Type) < 0 ||
	    PyModule_AddType(m, &PyContextToken_Type) < 0)
		return -1;
	return 0;
}

static PyModuleDef_Slot slots[] = {
	{ Py_mod_exec, exec_module },
	{ 0, NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_contextvars",
	.m_doc = "Context Variables (Ember's static build: libpython's types)",
	.m_size = 0,
	.m_methods = methods,
	.m_slots = slots,
};

PyObject *pyrt_init_contextvars(void)
{
	return PyModuleDef_Init(&module);
}
