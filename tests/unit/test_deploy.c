/* Unit tests: the deploy pipeline (agent/deploy.c) on real archives, with
 * real VMs: deploy_build() spawns build/ember-vmm on /dev/kvm, boots the
 * function in the micro guest to READY and snapshots it; the tests then
 * restore the snapshot in a fresh ember-vmm and invoke it over vsock.
 * Failures must name their step, say why, carry the handler's own init
 * output when it failed, and leave nothing behind (out_dir removed, the
 * parent directory as it was). Tests that need KVM or built tools skip
 * without them.
 *
 * ember_host_is_pvm() is defined here (a seam, not a mock of KVM): the
 * guest "linux" refusal has one message for kvm-pvm hosts and one for the
 * others, and both are checked whatever this host is. With it off, guest
 * "linux" runs here up to its boot: the real image tool builds the ext4
 * root disk (checked with debugfs), the real ember-vmm boots the kernel
 * with it, and the deploy gives up waiting for READY after a short boot
 * deadline (a Linux guest's user space cannot run on kvm-pvm, and the
 * kernel alone takes 30-100 s here: tests/integration/linux-init). */
// link: agent/deploy.c agent/deploy_linux.c agent/archive.c agent/manifest.c
// link: tools/mkimage.c tools/beneath.c guest-micro/mfs.c
// link: proto/invoke.c vmm/invoke.c vmm/log.c tests/unit/tarbuild.c agent/util.c
// libs: -larchive -ljansson
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/deploy.h"
#include "agent/deploy_linux.h"
#include "invoke.h"
#include "tests/unit/tarbuild.h"
#include "tools/beneath.h"

extern char **environ;

bool ember_host_is_pvm(void);
static bool fake_pvm;
bool ember_host_is_pvm(void)
{
	return fake_pvm;
}

static char base[64], out_dir[128], vmm[256], micro[256], lua[256];
static char initfn[256], echo_musl[256], python[256], python_home[256];
static char vmlinux[256], guest_init[256], image_tool[256];
static struct deploy_tools tools = { vmm, micro, lua, python, python_home,
				     vmlinux, guest_init, image_tool, false };
static bool have_vm, have_python, have_linux;
/* Set by a test: the image's /ember/init.conf, read when step "image"
 * reports (deploy_build removes a failed out_dir afterwards). */
static bool read_conf;
static char image_conf[2048];

static char steps[8][32], details[8][256];
static int nr_steps;
static pid_t vmm_pid, vmm_reaped;

static void on_vmm(void *ctx, pid_t pid, bool running)
{
	(void)ctx;
	if (running) {
		assert_true(pid > 0);
		assert_int_equal(kill(pid, 0), 0); /* alive */
		vmm_pid = pid;
	} else {
		assert_int_equal(pid, vmm_pid);
		assert_int_equal(kill(pid, 0), -1); /* reaped: no such process */
		vmm_reaped = pid;
	}
}

static void on_progress(void *ctx, const char *step, const char *detail)
{
	(void)ctx;
	if (read_conf && !strcmp(step, "image")) {
		char cmd[512];
		FILE *f;
		size_t n;

		snprintf(cmd, sizeof(cmd), "PATH=$PATH:/usr/sbin:/sbin debugfs "
			 "-R 'cat /ember/init.conf' %s/image 2>/dev/null", out_dir);
		f = popen(cmd, "r");
		assert_non_null(f);
		n = fread(image_conf, 1, sizeof(image_conf) - 1, f);
		image_conf[n] = '\0';
		pclose(f);
	}
	if (nr_steps < 8) {
		snprintf(steps[nr_steps], sizeof(steps[0]), "%s", step);
		snprintf(details[nr_steps], sizeof(details[0]), "%s", detail);
	}
	nr_steps++;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static bool exists(const char *dir, const char *name)
{
	char p[512];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &sb) == 0;
}

static void *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	void *p;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	p = malloc((size_t)sb.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return p;
}

static int setup_group(void **state)
{
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";

	(void)state;
	snprintf(vmm, sizeof(vmm), "%s/ember-vmm", b);
	snprintf(micro, sizeof(micro), "%s/ember-micro", b);
	snprintf(lua, sizeof(lua), "%s/handlers/lua", b);
	snprintf(initfn, sizeof(initfn), "%s/micro-handlers/initfn-musl", b);
	snprintf(echo_musl, sizeof(echo_musl), "%s/handlers/echo.musl", b);
	/* Absolute: restore_and_invoke() runs the VMM inside out_dir. */
	{
		char *abs = realpath(vmm, NULL);

		if (abs)
			snprintf(vmm, sizeof(vmm), "%s", abs);
		free(abs);
	}
	have_vm = access("/dev/kvm", R_OK | W_OK) == 0 && access(vmm, X_OK) == 0 &&
		  access(micro, R_OK) == 0 && access(lua, R_OK) == 0 &&
		  access(initfn, R_OK) == 0 && access(echo_musl, R_OK) == 0;
	if (!have_vm)
		print_message("no /dev/kvm or tools not built: VM tests skip\n");
	snprintf(python, sizeof(python), "%s/handlers/python", b);
	snprintf(python_home, sizeof(python_home), "%s/runtimes/python", b);
	have_python = have_vm && access(python, R_OK) == 0 &&
		      access(python_home, R_OK) == 0;
	if (!have_python)
		print_message("the Python runtime is not built (make python): "
			      "its VM tests skip\n");
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", b);
	snprintf(guest_init, sizeof(guest_init), "%s/guest-init", b);
	snprintf(image_tool, sizeof(image_tool), "%s/linux-image", b);
	have_linux = access("/dev/kvm", R_OK | W_OK) == 0 &&
		     access(vmm, X_OK) == 0 && access(echo_musl, R_OK) == 0 &&
		     access(vmlinux, R_OK) == 0 &&
		     access(guest_init, X_OK) == 0 &&
		     access(image_tool, X_OK) == 0;
	if (!have_linux)
		print_message("no build/vmlinux (make kernel), guest-init or "
			      "linux-image: the guest \"linux\" boot test "
			      "skips\n");
	return 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/tmp/ember-test-deploy.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(out_dir, sizeof(out_dir), "%s/v1", base);
	nr_steps = 0;
	vmm_pid = vmm_reaped = 0;
	fake_pvm = false;
	read_conf = false;
	image_conf[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	int fd = open("/tmp", O_RDONLY | O_DIRECTORY);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(beneath_remove_tree(fd, base + 5), 0);
	close(fd);
	return 0;
}

/* Deploys the archive `t`; returns deploy_build()'s result. */
static int deploy(struct tarb *t, bool gz, struct deploy_result *res,
		  uint32_t boot_timeout_ms)
{
	struct deploy_request rq = {
		.out_dir = out_dir,
		.tools = &tools,
		.progress = on_progress,
		.boot_timeout_ms = boot_timeout_ms,
		.vmm_child = on_vmm,
	};
	int ret;

	tarb_end(t);
	rq.archive_fd = tarb_fd(t, gz);
	ret = deploy_build(&rq, res);
	close(rq.archive_fd);
	return ret;
}

/* A failed deploy left nothing: out_dir is gone, the base is empty. */
static void assert_failed_clean(int ret, int code, const struct deploy_result *res,
				const char *step, const char *needle)
{
	if (ret != code || strcmp(res->step, step) || !strstr(res->message, needle)) {
		print_error("got %d step '%s' message '%s'\n  expected %d '%s' '%s'\n"
			    "  output: %s\n", ret, res->step, res->message, code,
			    step, needle, res->output ? res->output : "(none)");
		fail();
	}
	assert_false(exists(base, "v1"));
	assert_int_equal(count_entries(base), 0);
}

static void add_file(struct tarb *t, const char *name, const char *host_path,
		     unsigned mode)
{
	size_t len;
	void *data = slurp(host_path, &len);

	tarb_raw(t, name, TAR_REG, mode, len, data, len, NULL);
	free(data);
}

/* Restores out_dir/snapshot in a new ember-vmm (run inside out_dir, as the
 * snapshot's relative paths expect), invokes it once with `req`, and
 * returns the payload (malloc'd). */
static char *restore_and_invoke(const char *req)
{
	char sock[160], *argv[] = { vmm, "-q", "--restore", "snapshot",
				    "--vsock", sock, "--serial", "none", NULL };
	posix_spawn_file_actions_t fa;
	struct inv_result r;
	char *out = NULL;
	pid_t pid;
	int st;

	snprintf(sock, sizeof(sock), "%s/clone.sock", base);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addchdir_np(&fa, out_dir);
	assert_int_equal(posix_spawn(&pid, vmm, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 400 && access(sock, F_OK); i++)
		usleep(10000);
	memset(&r, 0, sizeof(r));
	if (ember_invoke(sock, 1024, req, strlen(req), 10000, &r) ==
	    EMBER_INVOKE_OK) {
		out = calloc(1, r.len + 1);
		assert_non_null(out);
		memcpy(out, r.payload, r.len);
	} else {
		print_error("invoke: %s\n", r.msg);
	}
	inv_result_free(&r);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	unlink(sock);
	return out;
}

static void test_static_ok(void **state)
{
	static const char *const order[] = { "receive", "extract", "manifest",
					     "image", "boot", "snapshot" };
	struct deploy_result res;
	struct tarb t = { 0 };
	char *out;

	(void)state;
	if (!have_vm)
		skip();
	tarb_file(&t, "ember.json",
		  "{\"runtime\":\"static\",\"handler\":\"bin/fn\","
		  "\"memory_mib\":64,\"timeout_ms\":500,"
		  "\"env\":{\"GREETING\":\"hello\"}}");
	add_file(&t, "bin/fn", initfn, 0755);
	tarb_file(&t, "data/readme", "files beside the handler");
	assert_int_equal(deploy(&t, true, &res, 0), 0);
	tarb_free(&t);
	assert_true(vmm_pid > 0);
	assert_int_equal(vmm_reaped, vmm_pid);
	assert_int_equal(nr_steps, 6);
	for (int i = 0; i < 6; i++) {
		print_message("  %-9s %s\n", steps[i], details[i]);
		assert_string_equal(steps[i], order[i]);
	}
	assert_non_null(strstr(details[1], "5 files"));
	assert_non_null(strstr(details[1], "gzip"));
	assert_non_null(strstr(details[4], "READY after"));
	assert_non_null(strstr(details[5], "64 MiB of RAM"));
	assert_string_equal(res.manifest.runtime, "static");
	assert_string_equal(res.manifest.handler, "bin/fn");
	assert_int_equal(res.manifest.memory_mib, 64);
	assert_int_equal(res.manifest.timeout_ms, 500);
	assert_null(res.output);
	/* The layout of deploy.h, and nothing else. */
	assert_true(exists(out_dir, "tree/bin/fn"));
	assert_true(exists(out_dir, "tree/data/readme"));
	assert_true(exists(out_dir, "image"));
	assert_true(exists(out_dir, "init.log"));
	assert_true(exists(out_dir, "snapshot/state"));
	assert_true(exists(out_dir, "snapshot/memory"));
	assert_int_equal(count_entries(out_dir), 4);
	assert_int_equal(count_entries(base), 1);
	deploy_result_free(&res);

	/* The snapshot is a working function, with its environment. */
	out = restore_and_invoke("world");
	assert_non_null(out);
	assert_string_equal(out, "hello:world");
	free(out);
}

static void test_lua_ok(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	char *out;

	(void)state;
	if (!have_vm)
		skip();
	tarb_file(&t, "ember.json",
		  "{\"runtime\":\"lua\",\"handler\":\"lib/main.lua\","
		  "\"env\":{\"MODE\":\"upper\"}}");
	tarb_file(&t, "lib/main.lua",
		  "local prefix = 'init:' .. os.getenv('MODE')\n"
		  "function handle(p)\n"
		  "  return prefix .. ':' .. string.upper(p)\n"
		  "end\n");
	assert_int_equal(deploy(&t, false, &res, 0), 0);
	tarb_free(&t);
	assert_string_equal(res.manifest.runtime, "lua");
	assert_int_equal(res.manifest.memory_mib, 128);
	deploy_result_free(&res);
	out = restore_and_invoke("abc");
	assert_non_null(out);
	assert_string_equal(out, "init:upper:ABC");
	free(out);
}

static void test_lua_init_error(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	if (!have_vm)
		skip();
	tarb_file(&t, "ember.json", "{\"runtime\":\"lua\",\"handler\":\"h.lua\"}");
	tarb_file(&t, "h.lua", "function handle(p)\n  return p ..\nend\n");
	ret = deploy(&t, false, &res, 0);
	tarb_free(&t);
	assert_failed_clean(ret, -ECANCELED, &res, "boot",
			    "the handler exited with status 1 during its "
			    "initialisation");
	/* The handler's own words. */
	assert_non_null(res.output);
	print_message("  %s: %s\n%s", res.step, res.message, res.output);
	assert_non_null(strstr(res.output, "lua: loading /h.lua: /h.lua:3: "
					   "unexpected symbol near 'end'"));
	assert_int_equal(nr_steps, 4); /* receive .. image */
	deploy_result_free(&res);
}

/* Adds the host directory `dir` to the archive under `prefix`. */
static void add_tree(struct tarb *t, const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char host[512], name[512];
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(host, sizeof(host), "%s/%s", dir, de->d_name);
		snprintf(name, sizeof(name), "%s%s", prefix, de->d_name);
		assert_int_equal(lstat(host, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			strcat(name, "/");
			tarb_dir(t, name);
			add_tree(t, host, name);
		} else if (S_ISREG(sb.st_mode)) {
			add_file(t, name, host, sb.st_mode & 0777);
		}
	}
	closedir(d);
}

/* The example functions (sdk/examples/functions, built by `make
 * functions`) deploy and answer as their README says. */
static void test_examples(void **state)
{
	static const struct {
		const char *name, *req, *want;
	} ex[] = {
		{ "echo", "ping", "ping" },
		{ "hash", "hello",
		  "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n" },
		{ "files", "/data/hello.txt", "/data/hello.txt\n" },
		{ "lua", "four words right here",
		  "hello! 4 words, 21 bytes (call 1 on this instance)\n" },
	};
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";

	(void)state;
	if (!have_vm)
		skip();
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		struct deploy_result res;
		struct tarb t = { 0 };
		char dir[256], *out;

		snprintf(dir, sizeof(dir), "%s/functions/%s", b, ex[i].name);
		if (access(dir, R_OK)) {
			print_message("%s not built (make functions): skipped\n",
				      dir);
			continue;
		}
		add_tree(&t, dir, "");
		assert_int_equal(deploy(&t, true, &res, 0), 0);
		tarb_free(&t);
		deploy_result_free(&res);
		out = restore_and_invoke(ex[i].req);
		assert_non_null(out);
		if (!strstr(out, ex[i].want)) {
			print_error("%s: got '%s', expected '%s'\n", ex[i].name,
				    out, ex[i].want);
			fail();
		}
		free(out);
		assert_int_equal(beneath_remove_tree(AT_FDCWD, out_dir), 0);
	}
}

static void test_python_ok(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	char *out;

	(void)state;
	if (!have_python)
		skip();
	tarb_file(&t, "ember.json",
		  "{\"runtime\":\"python\",\"handler\":\"app/main.py\","
		  "\"env\":{\"GREETING\":\"hi\"}}");
	tarb_file(&t, "app/util.py",
		  "import hashlib\n"
		  "def digest(b):\n"
		  "    return hashlib.sha256(b).hexdigest()[:8]\n");
	tarb_file(&t, "app/main.py",
		  "import json, os\n"
		  "from app import util\n"
		  "GREETING = os.environ['GREETING']\n"
		  "def handle(event: bytes) -> bytes:\n"
		  "    return json.dumps([GREETING, event.decode(),\n"
		  "                       util.digest(event)]).encode()\n");
	assert_int_equal(deploy(&t, false, &res, 0), 0);
	tarb_free(&t);
	assert_string_equal(res.manifest.runtime, "python");
	assert_string_equal(res.manifest.handler, "app/main.py");
	deploy_result_free(&res);
	out = restore_and_invoke("abc");
	assert_non_null(out);
	/* sha256("abc") = ba7816bf... */
	assert_string_equal(out, "[\"hi\", \"abc\", \"ba7816bf\"]");
	free(out);
}

static void test_python_failures(void **state)
{
	static const struct {
		const char *main_py, *extra, *step, *msg, *output;
		int err;
	} cases[] = {
		/* An import error is the handler's initialisation failing,
		 * with its traceback as the output. */
		{ "import json\nCONF = json.loads('{bad')\n", NULL, "boot",
		  "the handler exited with status 1 during its initialisation",
		  "json.decoder.JSONDecodeError", -ECANCELED },
		{ "x = 1\n", NULL, "boot", "exited with status 1",
		  "defines no handle(event)", -ECANCELED },
		/* /.ember is the platform's. */
		{ "def handle(e):\n    return e\n", ".ember/python/x.py",
		  "manifest", "reserved for the runtime", NULL, -EINVAL },
	};
	struct deploy_result res;
	int ret;

	(void)state;
	if (!have_python)
		skip();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tarb t = { 0 };

		tarb_file(&t, "ember.json",
			  "{\"runtime\":\"python\",\"handler\":\"h.py\"}");
		tarb_file(&t, "h.py", cases[i].main_py);
		if (cases[i].extra)
			tarb_file(&t, cases[i].extra, "");
		nr_steps = 0;
		ret = deploy(&t, false, &res, 0);
		tarb_free(&t);
		assert_failed_clean(ret, cases[i].err, &res, cases[i].step,
				    cases[i].msg);
		if (cases[i].output) {
			assert_non_null(res.output);
			assert_non_null(strstr(res.output, cases[i].output));
		}
		deploy_result_free(&res);
	}
}

/* Without the Python runtime on the host, python deploys fail clearly and
 * the others are unaffected. */
static void test_python_not_installed(void **state)
{
	struct deploy_tools saved = tools;
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	tools.python_handler = tools.python_home = NULL;
	tarb_file(&t, "ember.json",
		  "{\"runtime\":\"python\",\"handler\":\"h.py\"}");
	tarb_file(&t, "h.py", "def handle(e):\n    return e\n");
	ret = deploy(&t, false, &res, 0);
	tarb_free(&t);
	tools = saved;
	assert_failed_clean(ret, -ENOENT, &res, "manifest",
			    "the Python runtime is not installed");
	deploy_result_free(&res);
}

static void test_static_init_failures(void **state)
{
	static const struct {
		const char *init, *message, *output;
	} cases[] = {
		{ "exit3", "the handler exited with status 3",
		  "initfn: cannot reach the database, giving up" },
		{ "crash", "the handler crashed during its initialisation",
		  "initfn: about to crash" },
	};
	char json[256];

	(void)state;
	if (!have_vm)
		skip();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct deploy_result res;
		struct tarb t = { 0 };
		int ret;

		snprintf(json, sizeof(json),
			 "{\"runtime\":\"static\",\"handler\":\"fn\","
			 "\"memory_mib\":32,\"env\":{\"INIT\":\"%s\"}}",
			 cases[i].init);
		tarb_file(&t, "ember.json", json);
		add_file(&t, "fn", initfn, 0755);
		ret = deploy(&t, true, &res, 0);
		tarb_free(&t);
		assert_failed_clean(ret, -ECANCELED, &res, "boot", cases[i].message);
		assert_non_null(res.output);
		if (!strstr(res.output, cases[i].output)) {
			print_error("output: %s\n", res.output);
			fail();
		}
		deploy_result_free(&res);
	}
}

static void test_boot_timeout(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	if (!have_vm)
		skip();
	tarb_file(&t, "ember.json",
		  "{\"runtime\":\"static\",\"handler\":\"fn\",\"memory_mib\":32,"
		  "\"env\":{\"INIT\":\"spin\"}}");
	add_file(&t, "fn", initfn, 0755);
	ret = deploy(&t, false, &res, 700);
	tarb_free(&t);
	assert_failed_clean(ret, -ETIMEDOUT, &res, "boot",
			    "the handler was not ready within 700 ms");
	assert_int_equal(vmm_reaped, vmm_pid); /* reported, and gone */
	deploy_result_free(&res);
}

static void test_handler_checks(void **state)
{
	static const struct {
		const char *name, *data, *needle;
	} cases[] = {
		{ "script", "#!/bin/sh\necho hi\n",
		  "handler \"fn\" is a script (#!/bin/sh): runtime \"static\"" },
		{ "text", "hello, world\n", "is not an ELF executable" },
		{ "empty", "", "is not an ELF executable" },
		{ "elf32", "\177ELF\001\001\001\0\0\0\0\0\0\0\0\0"
			   "\002\0\003\0\001\0\0\0\0\0\0\0\0\0\0\0"
			   "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			   "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
		  "is a 32-bit ELF file" },
		{ "short", "\177ELF\002\001\001", "is a truncated ELF file" },
	};
	char json[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct deploy_result res;
		struct tarb t = { 0 };
		size_t len = strlen(cases[i].data);
		int ret;

		if (!strcmp(cases[i].name, "elf32"))
			len = 64;
		snprintf(json, sizeof(json),
			 "{\"runtime\":\"static\",\"handler\":\"fn\"}");
		tarb_file(&t, "ember.json", json);
		tarb_raw(&t, "fn", TAR_REG, 0755, len, cases[i].data, len, NULL);
		ret = deploy(&t, false, &res, 0);
		tarb_free(&t);
		assert_failed_clean(ret, -ENOEXEC, &res, "manifest", cases[i].needle);
		deploy_result_free(&res);
	}
}

/* The ELF checker on real files: static, dynamic, an object file. */
static void test_elf_files(void **state)
{
	char why[300], obj[300];
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
	int fd;

	(void)state;
	fd = open("/bin/true", O_RDONLY);
	if (fd >= 0) {
		assert_int_equal(deploy_check_static_elf(fd, why, sizeof(why)),
				 -ENOEXEC);
		assert_non_null(strstr(why, "is dynamically linked (interpreter "));
		assert_non_null(strstr(why, "link it with -static"));
		close(fd);
	}
	snprintf(obj, sizeof(obj), "%s/test/obj/agent/deploy.o", b);
	fd = open(obj, O_RDONLY);
	if (fd >= 0) {
		assert_int_equal(deploy_check_static_elf(fd, why, sizeof(why)),
				 -ENOEXEC);
		assert_non_null(strstr(why, "is not an executable (ELF type 1"));
		close(fd);
	}
	fd = open("/usr/lib/x86_64-linux-gnu/libjansson.so.4", O_RDONLY);
	if (fd >= 0) {
		assert_int_equal(deploy_check_static_elf(fd, why, sizeof(why)),
				 -ENOEXEC);
		assert_true(strstr(why, "shared librar") != NULL);
		close(fd);
	}
	fd = open(initfn, O_RDONLY);
	if (fd >= 0) {
		assert_int_equal(deploy_check_static_elf(fd, why, sizeof(why)), 0);
		close(fd);
	}
	fd = open(lua, O_RDONLY);
	if (fd >= 0) {
		assert_int_equal(deploy_check_static_elf(fd, why, sizeof(why)), 0);
		close(fd);
	}
}

static void test_dynamic_handler(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	if (access("/bin/true", R_OK))
		skip();
	tarb_file(&t, "ember.json", "{\"runtime\":\"static\",\"handler\":\"bin/true\"}");
	add_file(&t, "bin/true", "/bin/true", 0755);
	ret = deploy(&t, true, &res, 0);
	tarb_free(&t);
	assert_failed_clean(ret, -ENOEXEC, &res, "manifest",
			    "handler \"bin/true\" is dynamically linked");
	deploy_result_free(&res);
}

static void test_manifest_problems(void **state)
{
	static const struct {
		const char *json, *extra, *link, *message;
	} cases[] = {
		{ NULL, "fn", NULL, "the archive has no ember.json at its root" },
		{ "{\"runtime\":\"static\",\"handler\":\"fn\",\"memory_mib\":5}",
		  "fn", NULL, "ember.json: \"memory_mib\" is 5, out of range" },
		{ "{\"runtime\":\"static\",\"handler\":\"nothere\"}", "fn", NULL,
		  "handler \"nothere\" is not in the archive" },
		{ "{\"runtime\":\"static\",\"handler\":\"l\"}", "fn", "l",
		  "handler \"l\" is a symlink or under one" },
		{ "{\"runtime\":\"static\",\"handler\":\"dir\"}", NULL, NULL,
		  "handler \"dir\" is not a regular file" },
		{ "{\"runtime\":\"lua\",\"handler\":\"fn\"}", "fn-elf", NULL,
		  "handler \"fn\" is an ELF executable: runtime \"lua\"" },
		{ "{\"runtime\":\"static\",\"handler\":\"fn\",\"bogus\":1}", "fn",
		  NULL, "unknown key \"bogus\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct deploy_result res;
		struct tarb t = { 0 };
		int ret;

		if (cases[i].json)
			tarb_file(&t, "ember.json", cases[i].json);
		if (cases[i].extra && !strcmp(cases[i].extra, "fn-elf"))
			tarb_raw(&t, "fn", TAR_REG, 0755, 8, "\177ELF\002\001\001\0",
				 8, NULL);
		else if (cases[i].extra)
			tarb_file(&t, cases[i].extra, "x");
		if (cases[i].link)
			tarb_link(&t, cases[i].link, TAR_SYM, "fn");
		tarb_dir(&t, "dir");
		ret = deploy(&t, false, &res, 0);
		tarb_free(&t);
		assert_failed_clean(ret, -EINVAL, &res, "manifest", cases[i].message);
		assert_null(res.output);
		deploy_result_free(&res);
	}
}

/* On kvm-pvm, guest "linux" is refused before anything is built. */
static void test_guest_linux_pvm(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	fake_pvm = true;
	tarb_file(&t, "ember.json", "{\"runtime\":\"static\",\"guest\":"
		  "\"linux\",\"handler\":\"fn\"}");
	tarb_file(&t, "fn", "x");
	ret = deploy(&t, false, &res, 0);
	tarb_free(&t);
	assert_failed_clean(ret, -EOPNOTSUPP, &res, "manifest",
			    "cannot run on this host: its KVM is nested "
			    "kvm-pvm, where a Linux guest's user space cannot "
			    "run");
	assert_int_equal(vmm_pid, 0);
	deploy_result_free(&res);
}

static int deploy_linux(const char *manifest, const char *handler,
			struct deploy_result *res, uint32_t boot_ms)
{
	struct deploy_request rq = {
		.out_dir = out_dir,
		.tools = &tools,
		.progress = on_progress,
		.vmm_child = on_vmm,
		.linux_boot_timeout_ms = boot_ms,
	};
	struct tarb t = { 0 };
	int ret;

	tarb_file(&t, "ember.json", manifest);
	if (handler)
		add_file(&t, "bin/handler", handler, 0755);
	tarb_end(&t);
	rq.archive_fd = tarb_fd(&t, false);
	ret = deploy_build(&rq, res);
	close(rq.archive_fd);
	tarb_free(&t);
	return ret;
}

#define LINUX_MANIFEST "{\"runtime\":\"static\",\"guest\":\"linux\"," \
	"\"handler\":\"bin/handler\",\"env\":{\"GREETING\":\"hi\"}}"

/* Elsewhere, what guest "linux" needs is checked first, saying what is
 * missing and how to get it. */
static void test_guest_linux_setup(void **state)
{
	struct deploy_tools saved = tools;
	struct deploy_result res;
	int ret;

	(void)state;
	tools.linux_kernel = NULL;
	ret = deploy_linux(LINUX_MANIFEST, NULL, &res, 0);
	assert_failed_clean(ret, -ENOENT, &res, "manifest",
			    "no Linux guest kernel is configured (build it "
			    "with make kernel, or start emberd with "
			    "--linux-kernel FILE)");
	deploy_result_free(&res);

	tools.linux_kernel = "/nonexistent/vmlinux";
	ret = deploy_linux(LINUX_MANIFEST, NULL, &res, 0);
	assert_failed_clean(ret, -ENOENT, &res, "manifest",
			    "the Linux guest kernel /nonexistent/vmlinux: No "
			    "such file or directory");
	deploy_result_free(&res);
	tools = saved;

	/* Any readable file passes the kernel's check. */
	tools.linux_kernel = "/proc/self/exe";
	tools.guest_init = "/nonexistent/guest-init";
	ret = deploy_linux(LINUX_MANIFEST, NULL, &res, 0);
	assert_failed_clean(ret, -ENOENT, &res, "manifest",
			    "guest-init binary /nonexistent/guest-init");
	deploy_result_free(&res);
	tools = saved;

	tools.linux_kernel = "/proc/self/exe";
	tools.guest_init = "/proc/self/exe";
	tools.linux_image = NULL;
	ret = deploy_linux(LINUX_MANIFEST, NULL, &res, 0);
	assert_failed_clean(ret, -ENOENT, &res, "manifest",
			    "no Linux image tool is configured");
	deploy_result_free(&res);
	tools = saved;

	/* Lua and Python run in the micro guest only. */
	ret = deploy_linux("{\"runtime\":\"lua\",\"guest\":\"linux\","
			   "\"handler\":\"bin/handler\"}", NULL, &res, 0);
	assert_failed_clean(ret, -EOPNOTSUPP, &res, "manifest",
			    "runtime \"lua\" runs in the micro guest only");
	deploy_result_free(&res);
	assert_int_equal(vmm_pid, 0);
}

/* The image tool's command line, from the manifest. */
static void test_guest_linux_argv(void **state)
{
	char *env[] = { "A=1", "GREETING=hello" };
	struct fn_manifest m = { .runtime = "static", .guest = "linux",
				 .handler = "bin/fn", .env = env, .nr_env = 2 };
	static const char *const want[] = {
		"/t/linux-image", "--init", "/t/guest-init", "--tree", "tree",
		"--handler", "/bin/fn", "--env", "A=1", "--env",
		"GREETING=hello", "--uid", "1000", "--epoch", "1", "--out",
		"image",
	};
	char *argv[DEPLOY_LINUX_ARGV_MAX], buf[64];
	int n;

	(void)state;
	n = deploy_linux_image_argv("/t/linux-image", "/t/guest-init", &m,
				    "tree", "image", buf, sizeof(buf), argv);
	assert_int_equal(n, (int)(sizeof(want) / sizeof(want[0])));
	for (int i = 0; i < n; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[n]);
	/* The handler path must fit its buffer. */
	assert_int_equal(deploy_linux_image_argv("/t/linux-image",
						 "/t/guest-init", &m, "tree",
						 "image", buf, 7, argv),
			 -E2BIG);
	/* The boot mounts the disk read-only and runs guest-init. */
	assert_non_null(strstr(DEPLOY_LINUX_CMDLINE,
			       "root=/dev/vda ro rootfstype=ext4 "
			       "init=/ember/init"));
}

/* The image tool refuses a tree that would shadow guest-init: its reason
 * comes back as the deploy's. */
static void test_guest_linux_bad_tree(void **state)
{
	struct deploy_request rq = { .out_dir = out_dir, .tools = &tools,
				     .progress = on_progress };
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	if (!have_linux)
		skip();
	tarb_file(&t, "ember.json", "{\"runtime\":\"static\",\"guest\":"
		  "\"linux\",\"handler\":\"ember/handler\"}");
	add_file(&t, "ember/handler", echo_musl, 0755);
	tarb_end(&t);
	rq.archive_fd = tarb_fd(&t, false);
	ret = deploy_build(&rq, &res);
	close(rq.archive_fd);
	tarb_free(&t);
	assert_failed_clean(ret, -EINVAL, &res, "image",
			    "/ember is guest-init's");
	deploy_result_free(&res);
}

/* The pipeline up to the boot: the ext4 image is built with guest-init,
 * the handler and its configuration, the VMM boots the kernel with it,
 * and with no READY by the (short) deadline the deploy fails at "boot",
 * the VMM ended and reaped, nothing left behind. */
static void test_guest_linux_deadline(void **state)
{
	struct deploy_result res;
	int ret;

	(void)state;
	if (!have_linux)
		skip();
	read_conf = true;
	ret = deploy_linux(LINUX_MANIFEST, echo_musl, &res, 3000);
	assert_failed_clean(ret, -ETIMEDOUT, &res, "boot",
			    "the Linux guest was not ready within 3000 ms");
	assert_true(nr_steps >= 4);
	assert_string_equal(steps[2], "manifest");
	assert_non_null(strstr(details[2], "guest linux, handler bin/handler"));
	assert_string_equal(steps[3], "image");
	assert_non_null(strstr(details[3], "ext4, "));
	if (!strstr(image_conf, "handler /bin/handler\n") ||
	    !strstr(image_conf, "env GREETING=hi\n") ||
	    !strstr(image_conf, "uid 1000\n")) {
		print_error("init.conf in the image:\n%s\n", image_conf);
		fail();
	}
	/* The VMM ran and was reaped. */
	assert_true(vmm_pid > 0);
	assert_int_equal(vmm_reaped, vmm_pid);
	deploy_result_free(&res);
}

/* The one whole boot (30-100 s of emulated kernel here): the kernel
 * mounts the image as its root and runs /ember/init. On kvm-pvm its user
 * space then faults, the kernel panics ("Attempted to kill init!": the
 * exec worked, PID 1 died) and resets, and the deploy fails at "boot"
 * with the console as its output. With hardware virtualization it
 * deploys: READY over vsock, the snapshot, which restores and echoes. */
static void test_guest_linux_boot(void **state)
{
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	struct deploy_result res;
	int ret;

	(void)state;
	if (!have_linux)
		skip();
	ret = deploy_linux(LINUX_MANIFEST, echo_musl, &res, 400000);
	if (pvm) {
		assert_failed_clean(ret, -ECANCELED, &res, "boot",
				    "the Linux guest's kernel panicked: Kernel "
				    "panic - not syncing: Attempted to kill "
				    "init!");
		assert_non_null(res.output);
		if (!strstr(res.output, "Kernel panic - not syncing: "
					"Attempted to kill init!")) {
			print_error("console:\n%s\n", res.output);
			fail();
		}
		print_message("kvm-pvm: the kernel ran /ember/init from the "
			      "image, which then died (%s)\n", res.message);
	} else {
		char *out;

		if (ret)
			print_error("%s: %s\n%s\n", res.step, res.message,
				    res.output ? res.output : "");
		assert_int_equal(ret, 0);
		assert_true(exists(out_dir, "snapshot/state"));
		out = restore_and_invoke("hello, linux");
		assert_non_null(out);
		assert_string_equal(out, "hello, linux");
		free(out);
	}
	assert_int_equal(vmm_reaped, vmm_pid);
	deploy_result_free(&res);
}

static void test_hostile_archive(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	tarb_file(&t, "ember.json", "{\"runtime\":\"static\",\"handler\":\"fn\"}");
	tarb_file(&t, "../escaped", "x");
	ret = deploy(&t, true, &res, 0);
	tarb_free(&t);
	assert_failed_clean(ret, -EINVAL, &res, "extract",
			    "entry \"../escaped\" has a '..' component");
	deploy_result_free(&res);

	/* Over the tree limit: deploy_request's limits reach the reader. */
	{
		struct deploy_request rq = {
			.out_dir = out_dir, .tools = &tools,
			.max_tree_bytes = 100,
		};
		static char big[200];

		tarb_raw(&t, "big", TAR_REG, 0644, sizeof(big), big, sizeof(big),
			 NULL);
		tarb_end(&t);
		rq.archive_fd = tarb_fd(&t, false);
		ret = deploy_build(&rq, &res);
		close(rq.archive_fd);
		tarb_free(&t);
		assert_failed_clean(ret, -EFBIG, &res, "extract",
				    "the files would exceed 100 bytes");
		deploy_result_free(&res);
	}
	/* A truncated archive. */
	tarb_file(&t, "ember.json", "{\"runtime\":\"static\",\"handler\":\"fn\"}");
	tarb_raw(&t, "fn", TAR_REG, 0644, 5000, NULL, 0, NULL);
	{
		struct deploy_request rq = { .out_dir = out_dir, .tools = &tools };

		rq.archive_fd = tarb_fd_cut(&t, false, 2000);
		ret = deploy_build(&rq, &res);
		close(rq.archive_fd);
	}
	tarb_free(&t);
	assert_failed_clean(ret, -EINVAL, &res, "extract", "Truncated");
	deploy_result_free(&res);
}

static void test_out_dir_exists(void **state)
{
	struct deploy_result res;
	struct tarb t = { 0 };
	int ret;

	(void)state;
	assert_int_equal(mkdir(out_dir, 0755), 0);
	tarb_file(&t, "ember.json", "{}");
	ret = deploy(&t, false, &res, 0);
	tarb_free(&t);
	assert_int_equal(ret, -EEXIST);
	assert_string_equal(res.step, "receive");
	/* Not ours: left alone. */
	assert_true(exists(base, "v1"));
	deploy_result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_static_ok),
		T(test_lua_ok),
		T(test_lua_init_error),
		T(test_examples),
		T(test_python_ok),
		T(test_python_failures),
		T(test_python_not_installed),
		T(test_static_init_failures),
		T(test_boot_timeout),
		T(test_handler_checks),
		T(test_elf_files),
		T(test_dynamic_handler),
		T(test_manifest_problems),
		T(test_guest_linux_pvm),
		T(test_guest_linux_setup),
		T(test_guest_linux_argv),
		T(test_guest_linux_bad_tree),
		T(test_guest_linux_deadline),
		T(test_guest_linux_boot),
		T(test_hostile_archive),
		T(test_out_dir_exists),
	};
	return cmocka_run_group_tests(tests, setup_group, NULL);
}
