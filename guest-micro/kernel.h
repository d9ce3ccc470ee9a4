/*
 * kernel.h - internal interfaces of the micro guest (guest-micro/).
 *
 * The micro guest is a single-threaded, interrupt-free kernel that runs one
 * static x86-64 Linux executable (the handler) and serves its system calls.
 * Modules, each a .c file here:
 *   entry.S    _start, syscall_entry, exception_entry, the Ember ELF note,
 *              the jump to the handler at CPL3
 *   main.c     boot: boot info, devices, file system, handler start
 *   lib.c      string functions, formatting, serial console, port I/O
 *   mm.c       guest RAM: free ranges, brk, anonymous mmap
 *   loader.c   the handler's ELF (from the boot module) and initial stack
 *   syscall.c  the Linux syscall table
 *   fs.c       file descriptors over the EMFS image (mfs.c) on virtio-blk
 *   stdio.c    stdin/stdout/stderr bound to the invocation vsock stream
 *   trap.c     handler crashes and kernel panics: report and end the VM
 *   time.c     TSC clock, sleeps; random.c: ChaCha20 getrandom
 * Trust: the handler shares the VM with this kernel and can write all of
 * guest RAM (identity-mapped user pages), so the VM is the sandbox, not this
 * kernel. Still, every pointer and length from a syscall is checked against
 * guest RAM before use so that handler bugs become -EFAULT, not corruption.
 */
#ifndef EMBER_MICRO_KERNEL_H
#define EMBER_MICRO_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/errno.h>

#include "ember/abi.h"
#include "proto/invoke.h"

#define PAGE_SIZE 4096ULL
#define PAGE_DOWN(x) ((x) & ~(PAGE_SIZE - 1))
#define PAGE_UP(x) (((x) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* VM exit statuses (EMBER_PORT_EXIT), documented in docs/micro-guest.md:
 * 0..255 the handler's exit status; 128 + signal when it crashed (as a
 * shell reports it); above 255 a failure of the micro guest itself. */
#define MICRO_EXIT_SIGNAL_BASE 128
#define MICRO_EXIT_PANIC 256      /* micro guest bug or bad boot input */
#define MICRO_EXIT_NO_HANDLER 257 /* the handler could not be loaded */
#define MICRO_EXIT_HOST_GONE 258  /* invocation stream closed by the host */

/* Registers saved by syscall_entry, in push order reversed (see entry.S). */
struct micro_regs {
	uint64_t r15, r14, r13, r12, rbp, rbx;
	uint64_t r11, rcx; /* user RFLAGS, RIP (set by SYSCALL) */
	uint64_t r9, r8, r10, rdx, rsi, rdi, rax;
};

/* entry.S */
extern uint64_t micro_user_rsp;
__attribute__((noreturn)) void micro_enter_user(uint64_t entry, uint64_t sp,
						int cpl0);

/* main.c */
extern const struct ember_boot_info *boot_info;
extern char micro_cmdline_debug; /* "debug" on the command line */
uint64_t micro_handler_size(void);
const char *micro_handler_path(void);

/* lib.c */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strncmp(const char *a, const char *b, size_t n);
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void serial_write(const char *s, size_t len);
/* Console line: "micro: ..." on the serial port. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
/* One hypercall (see ember/abi.h): returns the hypercall page's ret. */
int64_t hypercall(uint32_t op, uint64_t arg0);
__attribute__((noreturn)) void micro_exit_vm(uint32_t status);

/* mm.c: guest RAM is identity-mapped; these work on physical == virtual. */
void mm_init(void);
/* Takes [start, end) out of the free memory (kernel, boot module, handler
 * segments). */
void mm_reserve(uint64_t start, uint64_t end);
/* Puts [start, end) back as free (dirty: zeroed on reuse). */
void mm_release(uint64_t start, uint64_t end);
/* Top-down allocation of `len` bytes (page multiple), zeroed. 0 if none. */
uint64_t mm_alloc_top(uint64_t len);
/* True if [addr, addr + len) is RAM the handler may use (not the kernel's
 * boot structures or image). */
bool mm_user_range(uint64_t addr, uint64_t len);
/* Checks a user buffer: inside RAM, no overflow. */
bool mm_access_ok(const void *p, uint64_t len);
void mm_set_brk_base(uint64_t base);
uint64_t mm_free_bytes(void);
long sys_brk(uint64_t addr);
long sys_mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd,
	      uint64_t off);
long sys_munmap(uint64_t addr, uint64_t len);
long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, int flags,
		uint64_t new_addr);
long sys_madvise(uint64_t addr, uint64_t len, int advice);
long sys_mprotect(uint64_t addr, uint64_t len, int prot);

/* loader.c: loads the handler ELF at `elf` (len bytes) and returns its entry
 * and initial stack pointer. 0 or -errno with a message on the console. */
int loader_load(const uint8_t *elf, uint64_t len, uint64_t *entry,
		uint64_t *sp);

/* syscall.c */
void micro_syscall(struct micro_regs *r);

/* fs.c: the fd table. */
enum { FS_KIND_FREE, FS_KIND_FILE, FS_KIND_STDIN, FS_KIND_STDOUT,
       FS_KIND_STDERR };
/* What fd refers to (FS_KIND_FREE for a closed or out-of-range fd). */
int fs_kind(int fd);
int fs_init(void);
long fs_openat(int dirfd, const char *path, int flags, int mode);
long fs_close(int fd);
long fs_read(int fd, void *buf, uint64_t len);
long fs_pread(int fd, void *buf, uint64_t len, int64_t off);
long fs_lseek(int fd, int64_t off, int whence);
long fs_fstat(int fd, void *st);
long fs_fstatat(int dirfd, const char *path, void *st, int flags);
long fs_statx(int dirfd, const char *path, int flags, unsigned mask,
	      void *stx);
long fs_getdents64(int fd, void *buf, uint64_t len);
long fs_readlinkat(int dirfd, const char *path, char *buf, uint64_t len);
long fs_faccessat(int dirfd, const char *path, int mode);
long fs_fcntl(int fd, int cmd, uint64_t arg);
long fs_dup(int fd, int newfd, int min);

/* stdio.c */
int stdio_init(void);
long stdio_read(void *buf, uint64_t len);
long stdio_write(int fd, const void *buf, uint64_t len);
/* Reports the handler's end to the host: an ERROR frame if it died while
 * serving a request (code EMBER_ERR_*, message), then flushes. */
void stdio_report_end(uint32_t code, const char *msg);
/* Sends a LOG frame (stream stderr) with a micro-guest message, when the
 * host is connected; otherwise nothing. */
void stdio_log(const char *msg, size_t len);
uint64_t stdio_current_request(void);

/* time.c */
void time_init(void);
uint64_t time_mono_ns(void);
uint64_t time_real_ns(void);
/* Notices a restore (boot_info->generation changed) and reseeds. */
void micro_check_clone(void);
long sys_clock_gettime(int clk, void *ts);
long sys_gettimeofday(void *tv, void *tz);
long sys_nanosleep(const void *req, void *rem);
long sys_clock_nanosleep(int clk, int flags, const void *req, void *rem);
/* Sleeps in the VMM until a device signals or timeout_ns (0 = none). */
void micro_wait(uint64_t timeout_ns);

/* random.c */
void random_init(const uint64_t seed[4]);
void random_bytes(void *buf, size_t len);
void random_reseed(const uint64_t seed[4]);

/* trap.c */
void micro_exception(uint64_t vector, uint64_t err, uint64_t rip,
		     uint64_t cr2, uint64_t rsp);
__attribute__((noreturn, format(printf, 1, 2))) void panic(const char *fmt,
							   ...);
/* The handler's stack (for "stack overflow" diagnoses). */
extern uint64_t micro_stack_lo, micro_stack_hi;

#endif
