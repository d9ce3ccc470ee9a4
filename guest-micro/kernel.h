/*
 * kernel.h - internal interfaces of the micro guest (guest-micro/).
 *
 * The micro guest is an interrupt-free kernel on one vCPU that runs one
 * static x86-64 Linux executable (the handler, with any number of threads)
 * and serves its system calls. The kernel itself is not preemptible: a
 * thread in kernel code runs until it blocks (sched.c), so kernel data needs
 * no locks; only user code is ever interrupted (docs/micro-guest.md).
 * Modules, each a .c file here:
 *   entry.S    _start, syscall_entry, exception_entry, the Ember ELF note,
 *              the return to user mode, the kernel-stack switch
 *   main.c     boot: boot info, devices, file system, handler start
 *   lib.c      string functions, formatting, serial console, port I/O
 *   mm.c       low RAM: free ranges, brk, mmap (routing to vma.c)
 *   vma.c      the virtual window above 64 GiB: reservations, pages backed
 *              when touched, unmapping with TLB flushes
 *   loader.c   the handler's ELF (from the boot module) and initial stack
 *   syscall.c  the Linux syscall table, ioctl, prctl
 *   sched.c    threads: clone, exit, blocking and waking, the idle loop,
 *              preemption ticks
 *   futex.c    futex wait/wake/requeue
 *   signal.c   dispositions, masks, sigaltstack, frames, rt_sigreturn
 *   fs.c       file descriptors (open file descriptions with ops tables)
 *              and the EMFS image (mfs.c) on virtio-blk
 *   stdio.c    stdin/stdout/stderr bound to the invocation vsock stream,
 *              the request's deadline
 *   pipe.c     pipes, eventfds, and the byte ring they and socket.c share
 *   socket.c   AF_UNIX stream socket pairs and the socket calls on them
 *   poll.c     poll, select, epoll
 *   memfd.c    memfd_create: in-memory files
 *   trap.c     page faults, fault signals, crashes, kernel panics
 *   time.c     TSC clock, sleeps, timerfds, interval timers
 *   random.c   ChaCha20 getrandom
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
#define MICRO_EXIT_TIMEOUT 259    /* a request's deadline passed */

/* Kernel-internal errors of interrupted calls (never seen by the handler:
 * signal.c turns them into a restart or EINTR, as Linux does). */
#define ERESTARTSYS 512
#define ERESTARTNOHAND 514
/* si_code values. */
#define SI_USER 0
#define SI_KERNEL 0x80
#define SI_TKILL (-6)

/*
 * A thread's user-mode registers, saved at the top of its kernel stack by
 * syscall_entry (push order reversed, see entry.S) and restored in full by
 * micro_return_user. The tail (rip, cs, rflags, rsp, ss) is an IRETQ frame.
 * After SYSCALL, rcx == rip and r11 == rflags; a signal return or a
 * preempted context may differ, which is why all of them are kept.
 */
struct micro_regs {
	uint64_t r15, r14, r13, r12, rbp, rbx;
	uint64_t r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi;
	uint64_t orig_rax; /* the syscall number (restarts) */
	uint64_t rip, cs, rflags, rsp, ss;
};
#define MICRO_REGS_SIZE 168
_Static_assert(sizeof(struct micro_regs) == MICRO_REGS_SIZE, "entry.S");

/* entry.S */
/* Top of the current thread's kernel stack, minus 8 so that the register
 * frame below it leaves RSP 16-byte aligned for C. */
extern uint64_t micro_kstack_cur;
extern char micro_kstack_top[];
__attribute__((noreturn)) void micro_enter_user(uint64_t entry, uint64_t sp,
						int cpl0);
/* Saves the callee-saved registers and RSP into *save_ksp, switches to the
 * kernel stack new_ksp and returns there (sched.c). */
void sched_switch(uint64_t *save_ksp, uint64_t new_ksp);
/* A new thread's first kernel return address: resumes user mode from the
 * register frame just above it. */
void micro_thread_start(void);

/* main.c */
extern const struct ember_boot_info *boot_info;
extern char micro_cmdline_debug; /* "debug" on the command line */
extern char micro_cmdline_strace; /* "strace": every syscall on the console */
extern uint64_t micro_preempt_ns; /* "preempt=MS": the tick, 0 = none */
extern uint64_t micro_spin_max_ns; /* "spin=US": the idle spin's ceiling */
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
/* Checks a user buffer: inside RAM, or mapped in the vma.c window (then
 * also backs it), no overflow. */
bool mm_access_ok(const void *p, uint64_t len);
/* True if [p, p + len) is identity-mapped low RAM (DMA-able as is). */
bool mm_is_low(const void *p, uint64_t len);
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

/* vma.c: the virtual window [VMA_BASE, VMA_END) for reservations and
 * mappings backed when touched (mm.c routes mmap calls there). */
#define VMA_BASE 0x1000000000ULL   /* 64 GiB */
#define VMA_END 0x7ff000000000ULL  /* below the top of user space */
/* Mappings at least this large go to the window, so that untouched parts
 * cost no RAM (as under Linux's overcommit). */
#define VMA_LAZY_MIN (1ULL << 20)
enum { VMA_FAULT_DONE, VMA_FAULT_SEGV, VMA_FAULT_ACCERR, VMA_FAULT_OOM };
bool vma_window(uint64_t addr, uint64_t len);
/* A new mapping (accessible or PROT_NONE) at addr (fixed: exactly there,
 * replacing what was; else a hint) of len bytes: its address or -errno. */
long vma_map(uint64_t addr, uint64_t len, bool access, bool fixed);
long vma_unmap(uint64_t addr, uint64_t len);
/* Nothing mapped in [addr, addr + len)? */
bool vma_range_free(uint64_t addr, uint64_t len);
long vma_protect(uint64_t addr, uint64_t len, bool access);
long vma_dontneed(uint64_t addr, uint64_t len);
/* All of [addr, addr + len) accessible? Backs it (the kernel is about to
 * touch it). */
bool vma_access_ok(uint64_t addr, uint64_t len);
/* A page fault at addr: backed (DONE, resume), not a mapping (SEGV), a
 * PROT_NONE mapping (ACCERR), or no RAM left (OOM). */
int vma_fault(uint64_t addr);
/* Frees the frames bound to unmapped ranges (one TLB flush): the bytes
 * given back to low RAM. mm.c calls it when an allocation fails. */
uint64_t vma_reclaim(void);
/* RAM backing the window now, and TLB flushes so far. */
uint64_t vma_bound_bytes(void);
uint64_t vma_flushes(void);

/* loader.c: loads the handler ELF at `elf` (len bytes) and returns its entry
 * and initial stack pointer. 0 or -errno with a message on the console. */
int loader_load(const uint8_t *elf, uint64_t len, uint64_t *entry,
		uint64_t *sp);

/* syscall.c */
void micro_syscall(struct micro_regs *r);
/* Reports an unsupported call (or flag) once per number; returns err. */
long micro_unsupported(uint64_t nr, long err);
/* exit_group: ends the handler (all threads) and the VM. */
__attribute__((noreturn)) void micro_exit_process(int status);
#define NR_clone 56
#define NR_clone3 435

/* sched.c: threads on the one vCPU. A thread runs until it blocks (a
 * futex wait, a sleep, a read with no data, a poll, sched_yield, exit) or
 * is preempted by the VMM (docs/micro-guest.md, "Threads"). */
#define MICRO_MAX_THREADS 256
#define SCHED_KSTACK (16u << 10)
#define SCHED_NEVER UINT64_MAX
#define SCHED_SLICE_NS 10000000ULL /* the preemption tick (10 ms) */
enum thread_state { THREAD_FREE, THREAD_RUNNABLE, THREAD_BLOCKED,
		    THREAD_DEAD };
/* Why sched_block() returned. */
enum { WAKE_EVENT = 1, WAKE_TIMEOUT, WAKE_SIGNAL };
/* sched_block() flags. */
#define SCHED_IO 1u   /* also woken by any device activity (vsock) */
#define SCHED_INTR 2u /* a signal ends the wait (WAKE_SIGNAL) */

struct thread {
	uint64_t ksp;          /* saved kernel RSP while switched out */
	uint64_t kstack_top;   /* its kernel stack (frame at the top) */
	uint64_t mem;          /* the allocation holding stack (0: static) */
	int tid;
	uint8_t state;         /* enum thread_state */
	uint8_t wake_reason;
	uint8_t block_flags;
	/* What it waits for: a channel (an object's or a futex's address)
	 * with an optional futex bitset, and a CLOCK_MONOTONIC deadline. */
	const void *chan;
	uint32_t chan_bits;
	uint64_t wake_at;
	uint64_t block_seq;    /* FIFO order among waiters */
	uint64_t fsbase, gsbase;
	char comm[16];         /* prctl(PR_SET_NAME) */
	uint64_t clear_child_tid; /* set_tid_address, CLONE_CHILD_CLEARTID */
	uint64_t robust_list, robust_len;
	/* Signals (signal.c): blocked and pending sets, the si_code of each
	 * pending signal, the alternate stack, rt_sigsuspend's old mask. */
	uint64_t sigmask, sigpending, saved_mask;
	bool saved_mask_valid;
	int16_t sig_code[65];
	uint64_t ss_sp, ss_size;
	uint32_t ss_flags;
	uint8_t fpu[512] __attribute__((aligned(16))); /* FXSAVE image */
};

extern struct thread *sched_cur;
void sched_init(void);
/* The register frame of thread t (valid while it is in the kernel). */
struct micro_regs *sched_regs(const struct thread *t);
/* Blocks the current thread until sched_wake(chan) (or sched_wake_thread),
 * CLOCK_MONOTONIC `deadline` (SCHED_NEVER for none), device activity
 * (SCHED_IO) or a signal (SCHED_INTR). Returns WAKE_*. Callers re-check
 * their condition: wake-ups may be spurious. */
int sched_block(const void *chan, uint32_t bits, uint64_t deadline,
		unsigned flags);
/* Wakes up to n threads blocked on chan whose bits intersect `bits`
 * (oldest first); returns how many. */
int sched_wake(const void *chan, uint32_t bits, int n);
void sched_wake_thread(struct thread *t, int reason);
/* Moves up to n waiters of chan (after waking none) to chan2. */
int sched_requeue(const void *chan, const void *chan2, int n);
/* Lets every other runnable thread run once. */
void sched_yield(void);
/* A preemption tick interrupted the current thread (registers r): due
 * deadlines, then the other threads' turn, then pending signals. */
void sched_tick(struct micro_regs *r);
/* Every thread's state on the console (a request timed out). */
void sched_dump(void);
/* Tells the VMM whether ticks are useful now (struct ember_preempt). */
void sched_want_ticks(void);
struct thread *sched_find(int tid);
/* Iterates over the live threads: for (t = sched_first(); t; t =
 * sched_next(t)). */
struct thread *sched_first(void);
struct thread *sched_next(struct thread *t);
unsigned sched_nr_threads(void);
long sys_clone(struct micro_regs *r, uint64_t flags, uint64_t newsp,
	       uint64_t ptid, uint64_t ctid, uint64_t tls);
long sys_clone3(struct micro_regs *r, const void *args, uint64_t size);
/* Ends the calling thread (not the process, unless it is the last one). */
__attribute__((noreturn)) void sched_exit_thread(int status);
long sys_set_tid_address(uint64_t tidptr);
long sys_set_robust_list(uint64_t head, uint64_t len);
long sys_get_robust_list(int tid, uint64_t headp, uint64_t lenp);

/* signal.c */
struct fault_info {
	uint64_t vector, err, cr2;
};
bool signal_pending(const struct thread *t);
/* Sends sig to thread t (NULL: the process). 0 or -EINVAL; may end the
 * process (SIG_DFL of a terminating signal). */
int signal_send(struct thread *t, int sig, int code);
/* Before a return to user mode: sets up the frame of a pending signal in
 * r, and resolves interrupted calls (restart or EINTR). */
void signal_deliver(struct micro_regs *r);
/* A CPU fault of the current thread at user registers r: true if a
 * handler takes it (r now enters it), false if the process must die. */
bool signal_fault(struct micro_regs *r, int sig, int code,
		  const struct fault_info *fi);
long sys_rt_sigreturn(struct micro_regs *r);
long sys_rt_sigaction(int sig, const void *act, void *oact, uint64_t size);
long sys_rt_sigprocmask(int how, const void *set, void *oset, uint64_t size);
long sys_rt_sigpending(void *set, uint64_t size);
long sys_rt_sigsuspend(const void *mask, uint64_t size);
long sys_pause(void);
long sys_sigaltstack(const void *uss, void *uoss, const struct micro_regs *r);
long sys_kill(int pid, int sig);
long sys_tgkill(int tgid, int tid, int sig);

/* futex.c */
long sys_futex(uint64_t uaddr, int op, uint32_t val, uint64_t timeout,
	       uint64_t uaddr2, uint32_t val3);
/* Wakes one waiter of the futex word at uaddr (thread exit). */
void futex_wake_one(uint64_t uaddr);

/* fs.c: file descriptors and the image's file tree. */
#define FS_MAX_FDS 128
#define FS_FD_PATH 512
#define POLLIN 0x001
#define POLLPRI 0x002
#define POLLOUT 0x004
#define POLLERR 0x008
#define POLLHUP 0x010
#define POLLNVAL 0x020
#define POLLRDNORM 0x040
#define POLLWRNORM 0x100
#define POLLRDHUP 0x2000
#define S_IFIFO 0010000u
#define S_IFREG 0100000u
#define O_NONBLOCK_FLAG 0x800 /* O_NONBLOCK */
#define O_CLOEXEC_FLAG 0x80000 /* O_CLOEXEC */

struct ofd;
/* What a kind of open file does. NULL entries: the operation does not
 * apply (read/write fall back on pread/pwrite at the file position; no
 * pread means -ESPIPE). read/write may block unless the description has
 * O_NONBLOCK. */
struct file_ops {
	uint32_t mode;        /* st_mode for fstat (not for image files) */
	uint32_t pipe_size;   /* F_GETPIPE_SZ, 0 = not a pipe */
	bool io;              /* readiness changes with device (vsock) I/O */
	long (*read)(struct ofd *d, void *buf, uint64_t len);
	long (*write)(struct ofd *d, const void *buf, uint64_t len);
	long (*pread)(struct ofd *d, void *buf, uint64_t len, uint64_t off);
	long (*pwrite)(struct ofd *d, const void *buf, uint64_t len,
		       uint64_t off);
	int64_t (*size)(struct ofd *d);
	unsigned (*poll)(struct ofd *d); /* POLL* bits now */
	/* CLOCK_MONOTONIC time readiness changes by itself (timerfd). */
	uint64_t (*deadline)(struct ofd *d);
	void (*release)(struct ofd *d); /* the last reference went */
};

/* An open file description, shared by dup'ed fds. */
struct ofd {
	const struct file_ops *ops;
	uint32_t refs;
	uint32_t flags;       /* O_ACCMODE, O_NONBLOCK, O_APPEND */
	uint64_t pos;
	uint64_t ino;         /* st_ino of non-image objects */
	void *obj;            /* the kind's object */
	uint32_t img_ino;     /* image files: the EMFS inode */
	char path[FS_FD_PATH]; /* image files: absolute, for *at() calls */
};

extern const struct file_ops image_ops;
int fs_init(void);
struct ofd *fs_get(int fd);
/* A new description with ops and obj at the lowest free fd: the fd,
 * -EMFILE or -ENFILE. */
long fs_install(const struct file_ops *ops, void *obj, uint32_t flags,
		bool cloexec);
/* Two of them at once (pipe2): 0 and fds[], or -errno with neither. */
long fs_install_pair(const struct file_ops *ops0, void *obj0, uint32_t fl0,
		     const struct file_ops *ops1, void *obj1, uint32_t fl1,
		     bool cloexec, int fds[2]);
struct ofd *fs_new_ofd(const struct file_ops *ops, void *obj, uint32_t flags);
/* Something some fd's readiness depends on changed: waiters look again. */
void fs_changed(void);
/* Blocks until fs_changed(), the deadline, a signal, or (io) device
 * activity: WAKE_*. */
int fs_wait(uint64_t deadline, bool io);
unsigned fs_poll(int fd);        /* POLLNVAL for a closed fd */
uint64_t fs_timeout(int fd);     /* the fd's own deadline, or SCHED_NEVER */
bool fs_waits_on_io(int fd);
long fs_openat(int dirfd, const char *path, int flags, int mode);
long fs_close(int fd);
long fs_read(int fd, void *buf, uint64_t len);
long fs_write(int fd, const void *buf, uint64_t len);
long fs_pread(int fd, void *buf, uint64_t len, int64_t off);
long fs_pwrite(int fd, const void *buf, uint64_t len, int64_t off);
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
long fs_chdir(const char *path);
long fs_fchdir(int fd);
long fs_getcwd(char *buf, uint64_t size);
long fs_umask(uint32_t mask);

/* poll.c: poll, select, epoll. */
/* fs_changed() calls it: epoll's edge-triggered entries see a change. */
void poll_changed(void);
/* The description d is gone: epoll instances stop watching it. */
void poll_forget(const struct ofd *d);
long sys_poll(void *fds, uint64_t nfds, int64_t timeout_ms);
long sys_ppoll(void *fds, uint64_t nfds, const void *ts, const void *mask,
	       uint64_t masksize);
long sys_select(int nfds, void *rd, void *wr, void *ex, void *tv);
long sys_pselect6(int nfds, void *rd, void *wr, void *ex, const void *ts,
		  const void *sigmask);
long sys_epoll_create1(int flags);
long sys_epoll_ctl(int epfd, int op, int fd, const void *event);
long sys_epoll_pwait(int epfd, void *events, int maxevents,
		     int64_t timeout_ms, const void *mask, uint64_t masksize);
long sys_epoll_pwait2(int epfd, void *events, int maxevents, const void *ts,
		      const void *mask, uint64_t masksize);

/* pipe.c: pipes and eventfds, on a 64 KiB byte ring that socket.c's
 * socket pairs use too (one ring per way). */
struct pipe;
/* A ring with one reader and one writer, or NULL (-ENFILE/-ENOMEM). */
struct pipe *pipe_ring_new(void);
/* Drops a reader and/or a writer; the ring goes with the last of them. */
void pipe_ring_put(struct pipe *p, bool reader, bool writer);
/* Pipe semantics: a read waits for data unless nonblock (-EAGAIN), 0 at
 * end of file (no writer left), peek leaves the bytes; a write waits for
 * room (PIPE_BUF bytes atomic), -EPIPE with no reader (and SIGPIPE to the
 * caller if sigpipe). */
long pipe_ring_read(struct pipe *p, void *buf, uint64_t len, bool nonblock,
		    bool peek);
long pipe_ring_write(struct pipe *p, const void *buf, uint64_t len,
		     bool nonblock, bool sigpipe);
bool pipe_ring_readable(const struct pipe *p);  /* bytes waiting */
bool pipe_ring_writable(const struct pipe *p);  /* PIPE_BUF bytes of room */
uint32_t pipe_ring_used(const struct pipe *p);
bool pipe_ring_has_reader(const struct pipe *p);
bool pipe_ring_has_writer(const struct pipe *p);
long sys_pipe2(int *fds, int flags);
long sys_eventfd2(uint32_t initval, int flags);

/* socket.c: AF_UNIX stream socket pairs and the calls on them. */
long sys_socketpair(int domain, int type, int proto, int *sv);
long sys_sendto(int fd, const void *buf, uint64_t len, int flags,
		const void *addr, uint32_t addrlen);
long sys_recvfrom(int fd, void *buf, uint64_t len, int flags, void *addr,
		  void *addrlen);
long sys_sendmsg(int fd, void *msg, int flags);
long sys_recvmsg(int fd, void *msg, int flags);
long sys_shutdown(int fd, int how);
long sys_getsockopt(int fd, int level, int name, void *val, void *len);
long sys_setsockopt(int fd, int level, int name, const void *val,
		    uint32_t len);
long sys_getsockname(int fd, void *addr, void *len);

/* memfd.c */
long sys_memfd_create(const char *name, unsigned flags);
long sys_ftruncate(int fd, int64_t len);

/* stdio.c */
int stdio_init(void);
/* Puts the invocation streams on fds 0, 1, 2. */
void stdio_install_fds(void);
/* The handler waits for its first request (a stdin read, or a poll of
 * stdin that blocks): the READY hypercall, the snapshot point. Once. */
void stdio_mark_ready(void);
/* Reports the handler's end to the host: an ERROR frame if it died while
 * serving a request (code EMBER_ERR_*, message), then flushes. */
void stdio_report_end(uint32_t code, const char *msg);
/* Polls the vsock device (spinning as long as its adaptive budget says,
 * guest-drivers/spin.h, never past CLOCK_MONOTONIC `until`): true if it
 * had news for threads waiting on I/O. */
bool stdio_poll(uint64_t until);
/* The idle loop slept in the VMM after stdio_poll() found nothing and has
 * woken: lets the spin budget learn how long the sleep was. */
void stdio_woke(void);
/* Sends a LOG frame (stream stderr) with a micro-guest message, when the
 * host is connected; otherwise nothing. */
void stdio_log(const char *msg, size_t len);
uint64_t stdio_current_request(void);
/* The request in flight's deadline (CLOCK_MONOTONIC), or SCHED_NEVER. */
uint64_t stdio_deadline(void);
/* Past it: ERROR TIMEOUT to the host, and the VM ends. */
void stdio_check_deadline(void);

/* time.c */
void time_init(void);
uint64_t time_mono_ns(void);
uint64_t time_real_ns(void);
/* Notices a restore (boot_info->generation changed) and reseeds. */
void micro_check_clone(void);
long sys_clock_gettime(int clk, void *ts);
long sys_gettimeofday(void *tv, void *tz);
/* Reads a user timespec into ns: 0, -EFAULT or -EINVAL. */
long time_get_timespec(const void *ts, uint64_t *ns);
long time_put_timespec(void *ts, uint64_t ns);
long sys_nanosleep(const void *req, void *rem);
long sys_clock_nanosleep(int clk, int flags, const void *req, void *rem);
long sys_timerfd_create(int clock, int flags);
long sys_timerfd_settime(int fd, int flags, const void *unew, void *uold);
long sys_timerfd_gettime(int fd, void *ucur);
long sys_setitimer(int which, const void *unew, void *uold);
long sys_getitimer(int which, void *ucur);
long sys_alarm(unsigned secs);
/* Fires the interval timers that are due (SIGALRM...); returns the next
 * expiry (CLOCK_MONOTONIC ns) or SCHED_NEVER. */
uint64_t time_check_timers(void);
bool time_timers_armed(void);
/* Sleeps in the VMM (all threads) until a device signals (true) or
 * timeout_ns passed (0 = none). */
bool micro_wait(uint64_t timeout_ns);

/* random.c */
void random_init(const uint64_t seed[4]);
void random_bytes(void *buf, size_t len);
void random_reseed(const uint64_t seed[4]);

/* trap.c */
void micro_exception(uint64_t vector, uint64_t err, uint64_t rip,
		     uint64_t cr2, uint64_t rsp);
/* A fault of the handler's current thread, its registers in r: served,
 * delivered to a signal handler (r changed), or the end of the VM. */
void micro_user_fault(struct micro_regs *r, uint64_t vector, uint64_t err,
		      uint64_t cr2);
__attribute__((noreturn, format(printf, 1, 2))) void panic(const char *fmt,
							   ...);
/* The handler's stack (for "stack overflow" diagnoses). */
extern uint64_t micro_stack_lo, micro_stack_hi;

#endif
