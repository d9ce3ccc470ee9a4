/*
 * embermod.c - the `ember` built-in module: what the runtime knows about
 * the invocation being served, for handle() to read.
 *
 *   ember.request_id()   the INVOKE's id (0 outside an invocation)
 *   ember.deadline_ms()  the time the caller allows, in ms (0 = none)
 *   ember.remaining_ms() ms left before that deadline (float, may be < 0),
 *                        or None without a deadline or outside an
 *                        invocation
 *
 * The runtime enforces nothing with these (the guest runtime and the host
 * do, docs/function-abi.md); they let a handler give up early.
 */
#include "sdk/python/runtime.h"

#include <time.h>

static struct {
	uint64_t id;
	uint32_t deadline_ms;
	struct timespec start; /* CLOCK_MONOTONIC when the request began */
} cur;

void pyrt_set_request(uint64_t id, uint32_t deadline_ms)
{
	cur.id = id;
	cur.deadline_ms = deadline_ms;
	clock_gettime(CLOCK_MONOTONIC, &cur.start);
}

static PyObject *request_id(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyLong_FromUnsignedLongLong(cur.id);
}

static PyObject *deadline_ms(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyLong_FromUnsignedLong(cur.id ? cur.deadline_ms : 0);
}

static PyObject *remaining_ms(PyObject *self, PyObject *unused)
{
	struct timespec now;
	double used;

	(void)self;
	(void)unused;
	if (!cur.id || !cur.deadline_ms)
		Py_RETURN_NONE;
	clock_gettime(CLOCK_MONOTONIC, &now);
	used = (double)(now.tv_sec - cur.start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - cur.start.tv_nsec) / 1e6;
	return PyFloat_FromDouble((double)cur.deadline_ms - used);
}

static PyMethodDef methods[] = {
	{ "request_id", request_id, METH_NOARGS,
	  "request_id() -> int: the id of the invocation being served (0 "
	  "outside one)." },
	{ "deadline_ms", deadline_ms, METH_NOARGS,
	  "deadline_ms() -> int: the time the caller allows this invocation, "
	  "in milliseconds (0 = no deadline)." },
	{ "remaining_ms", remaining_ms, METH_NOARGS,
	  "remaining_ms() -> float | None: milliseconds left before the "
	  "deadline (negative once passed); None without a deadline." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "ember",
	.m_doc = "The invocation being served (Ember's Python runtime).",
	.m_size = 0,
	.m_methods = methods,
};

PyObject *pyrt_init_ember(void)
{
	return PyModuleDef_Init(&module);
}
