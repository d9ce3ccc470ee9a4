/*
 * Unit tests: the checked ioctl pair of vmm/kvm.c (kvm_ioctl_raw and
 * kvm_ioctl), the one way vmm/ calls ioctl(2), and kvm.c's own error paths.
 *
 * strerror() is wrapped (-Wl,--wrap) to leave errno changed, as formatting
 * may: an error path that reads errno after formatting its message (the
 * defect the wrapper removed) would return -EDOM here instead of the
 * ioctl's own error.
 */
// link: vmm/kvm.c vmm/mem.c vmm/log.c
// libs: -Wl,--wrap=strerror
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvm.h"

char *__real_strerror(int e);
char *__wrap_strerror(int e);

static unsigned strerror_calls;

char *__wrap_strerror(int e)
{
	char *s = __real_strerror(e);

	strerror_calls++;
	errno = EDOM; /* what a careless error path would then return */
	return s;
}

/* A descriptor number that is certainly not open. */
static int closed_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

static void test_raw_returns_minus_errno(void **state)
{
	int fd = closed_fd(), null;

	(void)state;
	assert_int_equal(kvm_ioctl_raw(fd, KVM_GET_API_VERSION, 0), -EBADF);
	assert_int_equal(kvm_ioctl_raw(-1, KVM_CHECK_EXTENSION,
				       KVM_CAP_USER_MEMORY), -EBADF);
	/* Not a KVM device: the kernel's own answer, unchanged. */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(null >= 0);
	assert_int_equal(kvm_ioctl_raw(null, KVM_GET_API_VERSION, 0), -ENOTTY);
	close(null);
}

static void test_checked_names_the_request(void **state)
{
	char err[128] = "";
	int fd = closed_fd();

	(void)state;
	strerror_calls = 0;
	assert_int_equal(kvm_ioctl(fd, KVM_SET_REGS, NULL, err, sizeof(err)),
			 -EBADF);
	assert_string_equal(err, "KVM_SET_REGS: Bad file descriptor");
	assert_int_equal(strerror_calls, 1); /* the formatting did run */
	assert_int_equal(errno, EDOM);       /* ... and changed errno */
}

static void test_checked_pointer_argument(void **state)
{
	struct kvm_regs regs;
	char err[128] = "";
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	(void)state;
	assert_true(null >= 0);
	assert_int_equal(kvm_ioctl(null, KVM_GET_REGS, &regs, err, sizeof(err)),
			 -ENOTTY);
	assert_string_equal(err, "KVM_GET_REGS: Inappropriate ioctl for device");
	close(null);
}

static void test_checked_err_optional_and_truncated(void **state)
{
	char small[8];
	int fd = closed_fd();

	(void)state;
	assert_int_equal(kvm_ioctl(fd, KVM_CREATE_VM, 0, NULL, 0), -EBADF);
	memset(small, 'x', sizeof(small));
	assert_int_equal(kvm_ioctl(fd, KVM_CREATE_VM, 0, small, sizeof(small)),
			 -EBADF);
	assert_string_equal(small, "KVM_CRE"); /* cut, and terminated */
}

/* Success passes the ioctl's own non-negative result through (the API
 * version, a capability's value), and leaves err alone. */
static void test_success_passes_result(void **state)
{
	char err[64] = "untouched";
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	assert_true(kvm >= 0); /* this machine has KVM; CI must too */
	assert_int_equal(kvm_ioctl(kvm, KVM_GET_API_VERSION, 0, err,
				   sizeof(err)), KVM_API_VERSION);
	assert_string_equal(err, "untouched");
	assert_true(kvm_ioctl_raw(kvm, KVM_CHECK_EXTENSION,
				  KVM_CAP_USER_MEMORY) > 0);
	close(kvm);
}

/* kvm_map_ram's failing slot: the errno of the ioctl, named, and the
 * mapping undone. */
static void test_map_ram_bad_vm_fd(void **state)
{
	struct kvm k;
	char err[128] = "";

	(void)state;
	memset(&k, 0, sizeof(k));
	k.vm_fd = k.kvm_fd = closed_fd();
	assert_int_equal(kvm_map_ram(&k, 2u << 20, -1, err, sizeof(err)),
			 -EBADF);
	assert_string_equal(err,
			    "KVM_SET_USER_MEMORY_REGION: Bad file descriptor");
	assert_null(k.ram);
	assert_int_equal(kvm_tsc_khz(k.vm_fd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_returns_minus_errno),
		cmocka_unit_test(test_checked_names_the_request),
		cmocka_unit_test(test_checked_pointer_argument),
		cmocka_unit_test(test_checked_err_optional_and_truncated),
		cmocka_unit_test(test_success_passes_result),
		cmocka_unit_test(test_map_ram_bad_vm_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
