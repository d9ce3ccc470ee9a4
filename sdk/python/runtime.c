/*
 * runtime.c - Ember's Python runtime: CPython 3.11, linked statically,
 * serving invocations with a handler module's
 *
 *     def handle(event: bytes) -> bytes
 *
 *   python [--home DIR] [--root DIR] [HANDLER]
 *
 * At start it configures an isolated interpreter (no environment variables,
 * no site module, no user site, no bytecode writing) whose sys.path is the
 * function's ROOT and then the runtime's standard library under HOME,
 * imports HANDLER (a module name, or a .py path relative to ROOT), checks
 * that it has a callable `handle`, collects and freezes the garbage
 * collector's generations, and only then reads its first request: the
 * imports are initialisation, so a snapshot taken at READY holds them.
 * Each INVOKE calls handle() with the payload as bytes; what it returns
 * (bytes, any contiguous buffer, or str as UTF-8) is the RESULT. An
 * exception is a function error: status 1, the formatted traceback as the
 * payload and in the log. docs/python.md is the user-facing contract.
 *
 * The serving loop is the C SDK's (sdk/handler.c); the GIL is released
 * while it waits for the next request, so threads the handler started run
 * between invocations too.
 */
#include "sdk/python/runtime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sdk/ember_handler.h"

#define PYRT_DEFAULT_HOME "/.ember/python"
#define PYRT_DEFAULT_ROOT "/"
#define PYRT_DEFAULT_HANDLER "handler"
/* The standard library, as laid out by sdk/python/mkstdlib.py under HOME. */
#define PYRT_STDLIB "lib/python3.11"
#define PYRT_MODNAME_MAX 256

struct pyrt {
	PyObject *handle;      /* the handler module's handle() */
	PyObject *format_exc;  /* traceback.format_exception */
	PyThreadState *ts;     /* saved while the SDK waits for requests */
	bool served;           /* an invocation has run in this process */
};

static const char usage_text[] =
"NAME\n"
"    python - Ember's Python runtime: CPython 3.11 serving a handler module\n"
"\n"
"SYNOPSIS\n"
"    python [--home DIR] [--root DIR] [HANDLER]\n"
"\n"
"DESCRIPTION\n"
"    Imports HANDLER, a module name (handler, app.main) or a .py path\n"
"    relative to ROOT (app/main.py), once, then serves invocations in the\n"
"    frame protocol on stdin/stdout (docs/function-abi.md): each INVOKE's\n"
"    payload is passed as bytes to the module's handle(event), and what it\n"
"    returns (bytes, a buffer, or str as UTF-8) is the RESULT. An exception\n"
"    is a function error (status 1, the traceback as the payload and in\n"
"    the log). print() and sys.stderr go to stderr, the function's log.\n"
"    The interpreter is isolated (no PYTHON* variables, no site module,\n"
"    no bytecode writing); sys.path is ROOT then HOME/" PYRT_STDLIB ".\n"
"    docs/python.md has the whole contract.\n"
"\n"
"OPTIONS\n"
"    --home DIR  the runtime: DIR/" PYRT_STDLIB " is the standard library,\n"
"                DIR/share/zoneinfo the time zone database (default\n"
"                $EMBER_PYTHON_HOME, else " PYRT_DEFAULT_HOME ")\n"
"    --root DIR  the function's files, first on sys.path (default " PYRT_DEFAULT_ROOT ")\n"
"    HANDLER     default \"" PYRT_DEFAULT_HANDLER "\"\n"
"    --help      this text\n"
"\n"
"EXIT STATUS\n"
"    0    stdin ended between frames\n"
"    1    initialisation failed (the module does not import or has no\n"
"         callable handle; the traceback is on stderr)\n"
"    2    a protocol error on stdin; 3 stdout failed\n"
"    N    handle() called sys.exit(N)\n"
"    64   usage error, or HANDLER is not a module path\n"
"    120  flushing sys.stdout/sys.stderr at exit failed\n";

/* HANDLER -> dotted module name in out: "handler", "app.main", or the
 * file forms "handler.py", "app/main.py". 0, or -1 if it is neither. */
static int module_name(const char *h, char *out, size_t cap)
{
	size_t n = strlen(h), i;
	bool start = true;

	if (n > 3 && !strcmp(h + n - 3, ".py"))
		n -= 3;
	if (!n || n >= cap)
		return -1;
	for (i = 0; i < n; i++) {
		char c = h[i];

		if (c == '/' || c == '.') {
			if (start)
				return -1; /* empty component, "..", leading '/' */
			out[i] = '.';
			start = true;
			continue;
		}
		if (!(c == '_' || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || (!start && c >= '0' && c <= '9')))
			return -1;
		out[i] = c;
		start = false;
	}
	if (start)
		return -1;
	out[n] = '\0';
	return 0;
}

static int set_status(PyStatus st, const char *what)
{
	if (!PyStatus_Exception(st))
		return 0;
	ember_log("python: %s: %s%s%s", what, st.func ? st.func : "",
		  st.func ? ": " : "", st.err_msg ? st.err_msg : "failed");
	return -1;
}

/* Appends the byte string s (decoded as UTF-8) to a wide string list. */
static int append_path(PyWideStringList *l, const char *s)
{
	wchar_t *w = Py_DecodeLocale(s, NULL);
	int ret;

	if (!w) {
		ember_log("python: cannot decode path %s", s);
		return -1;
	}
	ret = set_status(PyWideStringList_Append(l, w), "sys.path");
	PyMem_RawFree(w);
	return ret;
}

/* Starts the interpreter: isolated, UTF-8 mode, sys.path = [root, stdlib],
 * sys.argv = [argv[0]]. */
static int start_python(const char *home, const char *root,
			char *const *argv)
{
	char stdlib[4096], tz[4096];
	PyPreConfig pre;
	PyConfig c;
	struct stat st;
	int ret = -1;

	/* UTF-8 mode: no dependence on the (absent) locale files. */
	PyPreConfig_InitIsolatedConfig(&pre);
	pre.utf8_mode = 1;
	if (set_status(Py_PreInitialize(&pre), "pre-initialisation"))
		return -1;
	if ((size_t)snprintf(stdlib, sizeof(stdlib), "%s/%s", home,
			     PYRT_STDLIB) >= sizeof(stdlib)) {
		ember_log("python: --home too long");
		return -1;
	}
	if (stat(root, &st) || !S_ISDIR(st.st_mode)) {
		ember_log("python: the function's root %s is not a directory "
			  "(--root DIR)", root);
		return -1;
	}
	if (stat(stdlib, &st) || !S_ISDIR(st.st_mode)) {
		ember_log("python: no standard library at %s (--home DIR or "
			  "EMBER_PYTHON_HOME)", stdlib);
		return -1;
	}
	/* glibc's time zone files (for a TZ=Region/City in the function's
	 * environment) come with the runtime; zoneinfo finds them through
	 * the packed sysconfig's TZPATH. */
	if ((size_t)snprintf(tz, sizeof(tz), "%s/share/zoneinfo", home) <
		    sizeof(tz) &&
	    !stat(tz, &st) && S_ISDIR(st.st_mode))
		setenv("TZDIR", tz, 0);
	if (PyImport_AppendInittab("_contextvars", pyrt_init_contextvars) ||
	    PyImport_AppendInittab("ember", pyrt_init_ember)) {
		ember_log("python: cannot register the built-in modules");
		return -1;
	}

	PyConfig_InitIsolatedConfig(&c);
	c.site_import = 0;       /* no site-packages: the function is ROOT */
	c.write_bytecode = 0;    /* the image is read-only */
	c.install_signal_handlers = 0; /* signals act as for a C handler */
	c.buffered_stdio = 1;    /* flushed after each invocation */
	c.pathconfig_warnings = 0;
	c.module_search_paths_set = 1;
	if (set_status(PyConfig_SetBytesString(&c, &c.home, home), "home") ||
	    set_status(PyConfig_SetBytesString(&c, &c.program_name, argv[0]),
		       "program name") ||
	    set_status(PyConfig_SetBytesArgv(&c, 1, argv), "argv") ||
	    append_path(&c.module_search_paths, root) ||
	    append_path(&c.module_search_paths, stdlib))
		goto out;
	if (!set_status(Py_InitializeFromConfig(&c), "initialisation"))
		ret = 0;
out:
	PyConfig_Clear(&c);
	return ret;
}

/* Loads the handler module and what serving needs: its handle(), and the
 * traceback formatter (imported now so that a failure after a restore
 * costs no import). Leaves a Python error set on failure. */
static int load_handler(struct pyrt *rt, const char *name)
{
	PyObject *mod, *tb, *gc, *r;

	mod = PyImport_ImportModule(name);
	if (!mod)
		return -1;
	rt->handle = PyObject_GetAttrString(mod, "handle");
	Py_DECREF(mod);
	if (!rt->handle) {
		PyErr_Format(PyExc_AttributeError,
			     "handler module %s defines no handle(event)", name);
		return -1;
	}
	if (!PyCallable_Check(rt->handle)) {
		PyErr_Format(PyExc_TypeError,
			     "%s.handle is a %.100s, not a function", name,
			     Py_TYPE(rt->handle)->tp_name);
		return -1;
	}
	tb = PyImport_ImportModule("traceback");
	if (!tb)
		return -1;
	rt->format_exc = PyObject_GetAttrString(tb, "format_exception");
	Py_DECREF(tb);
	if (!rt->format_exc)
		return -1;
	/* Everything alive now lives as long as the process: move it out of
	 * the collector's generations so that no collection after a restore
	 * walks (and so touches, page by page) the initialised heap. */
	gc = PyImport_ImportModule("gc");
	if (!gc)
		return -1;
	r = PyObject_CallMethod(gc, "collect", NULL);
	Py_XDECREF(r);
	if (r) {
		r = PyObject_CallMethod(gc, "freeze", NULL);
		Py_XDECREF(r);
	}
	Py_DECREF(gc);
	return r ? 0 : -1;
}

static void flush_std(void)
{
	static const char *const names[] = { "stdout", "stderr" };

	for (size_t i = 0; i < 2; i++) {
		PyObject *f = PySys_GetObject(names[i]); /* borrowed */
		PyObject *r;

		if (!f || f == Py_None)
			continue;
		r = PyObject_CallMethod(f, "flush", NULL);
		if (r)
			Py_DECREF(r);
		else
			PyErr_Clear(); /* a broken log must not fail a request */
	}
}

/* A snapshot is taken at READY, before any invocation, so every clone of
 * it starts here with the same state of `random`'s global generator
 * (seeded from os.urandom when the module was imported). Reseed it, from
 * the clone's own entropy, before the first invocation. */
static void reseed_random(void)
{
	PyObject *mods = PyImport_GetModuleDict(); /* borrowed */
	PyObject *rnd = PyDict_GetItemString(mods, "random"), *r;

	if (!rnd)
		return;
	r = PyObject_CallMethod(rnd, "seed", NULL);
	if (r)
		Py_DECREF(r);
	else
		PyErr_Print(); /* logged; the request goes on */
}

/* The pending exception as text (a traceback), appended to resp and
 * written to the log. Clears the error. */
static void report_exception(struct pyrt *rt, struct ember_response *resp)
{
	PyObject *type, *value, *tb, *lines = NULL, *sep = NULL, *text = NULL;
	const char *s;
	Py_ssize_t n;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb && value)
		PyException_SetTraceback(value, tb);
	lines = PyObject_CallFunctionObjArgs(rt->format_exc, type,
					     value ? value : Py_None,
					     tb ? tb : Py_None, NULL);
	if (lines)
		sep = PyUnicode_FromString("");
	if (sep)
		text = PyUnicode_Join(sep, lines);
	s = text ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
	if (!s) {
		PyErr_Clear();
		s = "handle() raised an exception that cannot be formatted\n";
		n = (Py_ssize_t)strlen(s);
	}
	ember_response_reset(resp);
	ember_response_append(resp, s, (size_t)n);
	fwrite(s, 1, (size_t)n, stderr);
	fflush(stderr);
	Py_XDECREF(text);
	Py_XDECREF(sep);
	Py_XDECREF(lines);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* handle()'s return value into resp: 0, or 1 (function error) with a
 * message when it is not bytes-like or str. */
static int take_result(PyObject *res, struct ember_response *resp)
{
	Py_buffer view;
	const char *s;
	Py_ssize_t n;
	int ret;

	if (PyBytes_Check(res))
		return ember_response_append(resp, PyBytes_AS_STRING(res),
					     (size_t)PyBytes_GET_SIZE(res)) ? 1 : 0;
	if (PyUnicode_Check(res)) {
		s = PyUnicode_AsUTF8AndSize(res, &n);
		if (!s)
			return -1;
		return ember_response_append(resp, s, (size_t)n) ? 1 : 0;
	}
	if (PyObject_CheckBuffer(res)) {
		if (PyObject_GetBuffer(res, &view, PyBUF_SIMPLE))
			return -1; /* e.g. a non-contiguous memoryview */
		ret = ember_response_append(resp, view.buf, (size_t)view.len);
		PyBuffer_Release(&view);
		return ret ? 1 : 0;
	}
	PyErr_Format(PyExc_TypeError,
		     "handle() must return bytes (or str), not %.100s",
		     Py_TYPE(res)->tp_name);
	return -1;
}

static int call_handle(const struct ember_request *req,
		       struct ember_response *resp, void *ctx)
{
	struct pyrt *rt = ctx;
	PyObject *ev, *res = NULL;
	int ret = -1;

	PyEval_RestoreThread(rt->ts);
	if (!rt->served) {
		rt->served = true;
		reseed_random();
	}
	pyrt_set_request(req->id, req->deadline_ms);
	ev = PyBytes_FromStringAndSize((const char *)req->data,
				       (Py_ssize_t)req->len);
	if (ev) {
		res = PyObject_CallOneArg(rt->handle, ev);
		Py_DECREF(ev);
	}
	if (res) {
		ret = take_result(res, resp);
		Py_DECREF(res);
	}
	if (ret < 0) {
		/* sys.exit() in handle() ends the handler, as exit() does
		 * in C: PyErr_Print() exits with its code (and Py_Exit
		 * flushes sys.stdout and sys.stderr). */
		if (PyErr_ExceptionMatches(PyExc_SystemExit))
			PyErr_Print();
		report_exception(rt, resp);
		ret = 1;
	}
	flush_std();
	pyrt_set_request(0, 0);
	rt->ts = PyEval_SaveThread();
	return ret;
}

int main(int argc, char **argv)
{
	const char *home = getenv("EMBER_PYTHON_HOME");
	const char *root = PYRT_DEFAULT_ROOT, *handler = NULL;
	char name[PYRT_MODNAME_MAX];
	struct pyrt rt = { 0 };
	int i, ret;

	if (!home || !*home)
		home = PYRT_DEFAULT_HOME;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--home") && i + 1 < argc) {
			home = argv[++i];
		} else if (!strcmp(argv[i], "--root") && i + 1 < argc) {
			root = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (argv[i][0] != '-' && !handler) {
			handler = argv[i];
		} else {
			fprintf(stderr, "python: bad argument %s (usage: "
				"python [--home DIR] [--root DIR] [HANDLER]; "
				"python --help)\n", argv[i]);
			return 64;
		}
	}
	if (!handler)
		handler = PYRT_DEFAULT_HANDLER;
	if (module_name(handler, name, sizeof(name))) {
		ember_log("python: %s is not a module name or a .py path of "
			  "one (like app/main.py)", handler);
		return 64;
	}

	/* Initialisation may print(): keep it off the frame stream. */
	ember_stdout_protect();
	if (start_python(home, root, argv))
		return 1;
	if (load_handler(&rt, name)) {
		/* An initialisation error: the traceback is the log. */
		PyErr_Print();
		flush_std();
		return 1;
	}
	flush_std();
	rt.ts = PyEval_SaveThread();
	ret = ember_handler_run(call_handle, &rt);
	PyEval_RestoreThread(rt.ts);
	Py_CLEAR(rt.handle);
	Py_CLEAR(rt.format_exc);
	if (Py_FinalizeEx() < 0 && !ret)
		ret = 120; /* as python(1): flushing at exit failed */
	return ret;
}
