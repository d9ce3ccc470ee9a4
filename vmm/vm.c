/*
 * vm.c - assembling and running a VM: the implementation of ember.h.
 *
 * Creation order matters to KVM: the irqchip and PIT exist before any vCPU;
 * memory slots before the kernel is loaded; CPUID before the first KVM_RUN.
 * Each step that acquires something has a matching release in
 * ember_vm_destroy(), which copes with a partly built VM.
 */
#define LOG_MOD "vm"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snapshots/snap.h"
#include "x86/elf.h"
#include "x86/linux.h"

#define DEFAULT_MEM_MIB 256
#define MAX_MEM_MIB (64ULL * 1024)
#define DEFAULT_LINUX_CMDLINE "console=ttyS0 reboot=k panic=-1"
/* Where KVM (on VMX) keeps the real-mode TSS and identity map: three pages
 * just below the BIOS area, inside the MMIO hole, never RAM. */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

int ember_api_version(void)
{
	return EMBER_API_VERSION;
}

bool ember_host_is_pvm(void)
{
	return kvm_host_is_pvm();
}

void ember_config_init(struct ember_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_mib = DEFAULT_MEM_MIB;
	cfg->nr_cpus = 1;
	cfg->cpl = 3;
	cfg->serial_fd = STDOUT_FILENO;
}

const char *ember_exit_reason_name(enum ember_exit_reason r)
{
	static const char *const names[] = {
		[EMBER_EXIT_NONE] = "none",
		[EMBER_EXIT_POWEROFF] = "poweroff",
		[EMBER_EXIT_GUEST_STATUS] = "guest-status",
		[EMBER_EXIT_TIMEOUT] = "timeout",
		[EMBER_EXIT_STOPPED] = "stopped",
		[EMBER_EXIT_EXCEPTION] = "guest-exception",
		[EMBER_EXIT_TRIPLE_FAULT] = "triple-fault",
		[EMBER_EXIT_MMIO_UNMAPPED] = "unmapped-mmio",
		[EMBER_EXIT_EMULATION] = "emulation-failure",
		[EMBER_EXIT_UNKNOWN] = "unknown-exit",
		[EMBER_EXIT_VMM_ERROR] = "vmm-error",
	};

	if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "invalid";
}

void vm_request_stop(struct ember_vm *vm, enum ember_exit_reason reason,
		     int guest_status, uint64_t rip, const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->exit.reason = reason;
	vm->exit.guest_status = guest_status;
	vm->exit.rip = rip;
	vm->stop_thread = pthread_self();
	va_start(ap, fmt);
	vsnprintf(vm->exit.detail, sizeof(vm->exit.detail), fmt, ap);
	va_end(ap);
	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);

	if (write(vm->stop_fd, &one, sizeof(one)) < 0)
		log_warn_errno("stop eventfd");
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
}

/* Only a write(2) to an eventfd: the owner's ember_vm_wait() turns it into
 * vm_request_stop(), which takes locks and formats, things a signal
 * handler must not do (signal-safety(7)). */
void ember_vm_stop(struct ember_vm *vm)
{
	uint64_t one = 1;
	int saved = errno;

	if (write(vm->stop_req_fd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN at a counter of 2^64-2 requests: one is enough. */
	}
	errno = saved;
}

/* Reads a whole file of at most `max` bytes. 0 or -errno with a reason. */
static int read_file(const char *what, const char *path, uint64_t max,
		     uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t done = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s '%s': %s", what, path,
			 strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot stat %s '%s': %s", what, path,
			 strerror(-ret));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -ENOEXEC;
		snprintf(err, errlen, "%s '%s' is not a regular file", what, path);
		goto err_close;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -E2BIG;
		snprintf(err, errlen, "%s '%s' is too large (%lld bytes, limit %llu)",
			 what, path, (long long)st.st_size,
			 (unsigned long long)max);
		goto err_close;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory reading %s", what);
		goto err_close;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "cannot read %s '%s': %s", what,
				 path, strerror(-ret));
			goto err_free;
		}
		done += (size_t)n;
	}
	close(fd);
	*out = buf;
	*out_len = done;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return ret;
}

/* A vmlinux is linked in the kernel half of the address space; a plain
 * guest runs where it is loaded. */
static enum ember_kind detect_kind(const struct elf_image *img)
{
	for (unsigned i = 0; i < img->nr_segs; i++)
		if (img->seg[i].vaddr >= 0xffff800000000000ULL)
			return EMBER_KIND_LINUX;
	return EMBER_KIND_PLAIN;
}

static void serial_set_irq(void *opaque, int level)
{
	struct ember_vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = 4, .level = (uint32_t)level };

	if (vm->irqchip && kvm_ioctl_raw(vm->kvm.vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn_rl("serial interrupt: KVM_IRQ_LINE failed");
}

static void i8042_reset(void *opaque)
{
	struct ember_vm *vm = opaque;

	vm_request_stop(vm, EMBER_EXIT_POWEROFF, 0, 0,
			"guest reset through the i8042 (power-off)");
}

int vm_setup_irqchip(struct ember_vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	int fd = vm->kvm.vm_fd, ret;

	ret = kvm_ioctl(fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_ioctl(fd, KVM_CREATE_IRQCHIP, 0, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_ioctl(fd, KVM_CREATE_PIT2, &pit, err, errlen);
	if (ret < 0)
		return ret;
	vm->irqchip = true;
	return 0;
}

static void ioeventfd_ready(void *opaque, uint32_t events)
{
	struct vm_notify *n = opaque;
	uint64_t v;

	(void)events;
	if (read(n->fd, &v, sizeof(v)) == sizeof(v))
		vmmio_notify(n->t, n->queue);
}

/*
 * Plugs a virtio device into window `i`: bus registration, one ioeventfd per
 * queue (QueueNotify with the queue index as datamatch) so notifications
 * never exit to user space, and an irqfd when the guest takes interrupts.
 */
static int attach_virtio(struct ember_vm *vm,
			 const struct vm_device_type *type,
			 const struct virtio_dev_ops *ops, void *dev,
			 char *err, size_t errlen)
{
	unsigned i = vm->nr_virtio;
	struct vm_virtio *vd = &vm->virtio[i];
	uint64_t base = EMBER_VIRTIO_MMIO_BASE + i * EMBER_VIRTIO_MMIO_SIZE;
	uint32_t gsi = EMBER_VIRTIO_IRQ_BASE + i;
	int ret;

	vd->type = type;
	vd->dev = dev;
	vd->irqfd = -1;
	for (unsigned q = 0; q < VMMIO_MAX_QUEUES; q++)
		vd->ioeventfd[q] = -1;
	if (vm->irqchip) {
		struct kvm_irqfd irqfd = { .gsi = gsi };

		vd->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vd->irqfd < 0) {
			ret = -errno;
			snprintf(err, errlen, "irqfd for %s: eventfd: %s",
				 ops->name, strerror(-ret));
			return ret;
		}
		irqfd.fd = (uint32_t)vd->irqfd;
		ret = kvm_ioctl_raw(vm->kvm.vm_fd, KVM_IRQFD, &irqfd);
		if (ret < 0) {
			snprintf(err, errlen, "irqfd for %s: KVM_IRQFD: %s",
				 ops->name, strerror(-ret));
			return ret;
		}
	}
	vmmio_init(&vd->transport, ops, dev, &vm->kvm.mem, base, gsi, vd->irqfd);
	vmmio_set_wake_fd(&vd->transport, vm->wake_fd);
	vm->nr_virtio++; /* from here on destroy cleans this slot up */
	ret = bus_register(&vm->mmio, base, EMBER_VIRTIO_MMIO_SIZE,
			   vmmio_access, &vd->transport);
	if (ret < 0) {
		snprintf(err, errlen, "cannot register %s on the MMIO bus",
			 ops->name);
		return ret;
	}
	for (unsigned q = 0; q < ops->nr_queues && q < VMMIO_MAX_QUEUES; q++) {
		struct vm_notify *n = &vd->notify[q];
		struct kvm_ioeventfd io = {
			.datamatch = q,
			.addr = base + VMMIO_QUEUE_NOTIFY,
			.len = 4,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "eventfd: %s", strerror(-ret));
			return ret;
		}
		vd->ioeventfd[q] = fd;
		io.fd = fd;
		ret = kvm_ioctl(vm->kvm.vm_fd, KVM_IOEVENTFD, &io, err, errlen);
		if (ret < 0)
			return ret;
		*n = (struct vm_notify){ &vd->transport, q, fd };
		ret = evloop_add(vm->loop, fd, EPOLLIN, ioeventfd_ready, n);
		if (ret < 0) {
			snprintf(err, errlen, "evloop: %s", strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The legacy PC devices every VM has: COM1 and the i8042. */
static int create_legacy(struct ember_vm *vm, char *err, size_t errlen)
{
	const struct ember_config *cfg = &vm->cfg;
	int ret;

	/* The console fd is the caller's: keep a duplicate of our own. */
	if (cfg->serial_fd >= 0) {
		vm->serial_fd = fcntl(cfg->serial_fd, F_DUPFD_CLOEXEC, 3);
		if (vm->serial_fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "console fd %d: %s", cfg->serial_fd,
				 strerror(-ret));
			return ret;
		}
	}
	serial_init(&vm->serial, vm->serial_fd, serial_set_irq, vm);
	vm->serial_ready = true;
	i8042_init(&vm->i8042, i8042_reset, vm);
	if (bus_register(&vm->pio, EMBER_PORT_COM1, 8, serial_access,
			 &vm->serial) < 0 ||
	    bus_register(&vm->pio, EMBER_PORT_I8042_DATA, 1, i8042_data_access,
			 &vm->i8042) < 0 ||
	    bus_register(&vm->pio, EMBER_PORT_I8042_CMD, 1, i8042_cmd_access,
			 &vm->i8042) < 0) {
		snprintf(err, errlen, "cannot register legacy devices");
		return -EEXIST;
	}
	return 0;
}

/* Plugs a device a type made into the next window; on failure the device
 * goes with the type's destroy. */
static int attach_made(struct ember_vm *vm, const struct vm_device_type *type,
		       const struct virtio_dev_ops *ops, void *dev, char *err,
		       size_t errlen)
{
	if (vm->nr_virtio == EMBER_VIRTIO_MAX_DEVICES) {
		type->destroy(dev);
		snprintf(err, errlen, "more than %d virtio devices",
			 EMBER_VIRTIO_MAX_DEVICES);
		return -E2BIG;
	}
	return attach_virtio(vm, type, ops, dev, err, errlen);
}

int vm_create_devices(struct ember_vm *vm, char *err, size_t errlen)
{
	int ret = create_legacy(vm, err, errlen);

	for (unsigned t = 0; !ret && vm_device_types[t]; t++) {
		const struct vm_device_type *type = vm_device_types[t];
		unsigned n = type->count(&vm->cfg);

		for (unsigned k = 0; !ret && k < n; k++) {
			struct vm_dev_ctx ctx = {
				.loop = vm->loop, .mem = &vm->kvm.mem,
				.cfg = &vm->cfg, .index = k,
			};
			const struct virtio_dev_ops *ops = NULL;
			void *dev = type->create(&ctx, &ops, &ret, err, errlen);

			if (dev)
				ret = attach_made(vm, type, ops, dev, err, errlen);
		}
	}
	return ret;
}

int vm_restore_devices(struct ember_vm *vm, const struct snap_vm *s,
		       const struct ember_restore *r, char *err,
		       size_t errlen)
{
	unsigned seen[EMBER_VIRTIO_MAX_DEVICES] = { 0 };
	int ret = create_legacy(vm, err, errlen);

	/* Overrides nothing would take are the caller's mistake. */
	for (unsigned t = 0; !ret && vm_device_types[t]; t++) {
		const struct vm_device_type *type = vm_device_types[t];
		unsigned n = 0;

		for (unsigned i = 0; i < s->nr_devices; i++)
			n += !strcmp(s->dev[i].kind, type->name);
		if (type->check_restore)
			ret = type->check_restore(r, n, err, errlen);
	}
	for (unsigned i = 0; !ret && i < s->nr_devices; i++) {
		const struct snap_virtio_dev *d = &s->dev[i];
		const struct vm_device_type *type = vm_device_type_find(d->kind);
		const struct virtio_dev_ops *ops = NULL;
		struct vm_dev_ctx ctx = {
			.loop = vm->loop, .mem = &vm->kvm.mem, .cfg = &vm->cfg,
			.restore = r,
		};
		unsigned t;
		void *dev;

		if (!type)
			return errbuf_fail(err, errlen, -EINVAL, "device %u: "
					   "unknown kind '%s'", i, d->kind);
		if (type->virtio_id != d->device_id)
			return errbuf_fail(err, errlen, -EINVAL, "device %u: kind "
					   "'%s' with virtio device id %u", i,
					   d->kind, d->device_id);
		for (t = 0; vm_device_types[t] != type; t++)
			;
		ctx.index = seen[t]++;
		dev = type->restore(&ctx, d, &ops, &ret, err, errlen);
		if (dev)
			ret = attach_made(vm, type, ops, dev, err, errlen);
	}
	return ret;
}

/* The final Linux command line: the user's (or the default), then what the
 * CPU template needs, then one virtio_mmio.device= per device. */
static char *linux_cmdline(const struct ember_vm *vm)
{
	const struct ember_config *cfg = &vm->cfg;
	const char *extra = cpu_template_linux_cmdline(vm->cpu_template);
	size_t cap = 4096, len;
	char *s = malloc(cap);
	unsigned nr = 0;

	for (unsigned t = 0; vm_device_types[t]; t++)
		nr += vm_device_types[t]->count(cfg);

	if (!s)
		return NULL;
	len = (size_t)snprintf(s, cap, "%s%s%s",
			       cfg->cmdline ? cfg->cmdline : DEFAULT_LINUX_CMDLINE,
			       *extra ? " " : "", extra);
	for (unsigned i = 0; i < nr && len < cap; i++)
		len += (size_t)snprintf(s + len, cap - len,
					" virtio_mmio.device=4K@0x%llx:%u",
					EMBER_VIRTIO_MMIO_BASE +
						i * EMBER_VIRTIO_MMIO_SIZE,
					EMBER_VIRTIO_IRQ_BASE + i);
	if (len >= cap) {
		free(s);
		return NULL;
	}
	return s;
}

static int load_linux(struct ember_vm *vm, const uint8_t *kernel,
		      size_t kernel_len, const uint8_t *initrd,
		      size_t initrd_len, struct cpu_boot *boot, char *err,
		      size_t errlen)
{
	struct linux_load_args a = {
		.kernel = kernel,
		.kernel_len = kernel_len,
		.cmdline = vm->cmdline,
		.initrd = initrd,
		.initrd_len = initrd_len,
		.nr_cpus = vm->nr_vcpus,
	};
	struct linux_entry entry;
	int ret;

	ret = linux_load(&vm->kvm.mem, &a, &entry, err, errlen);
	if (ret < 0)
		return ret;
	boot->kind = BOOT_LINUX;
	boot->cpl = 0;
	boot->rip = entry.rip;
	boot->rsi = entry.zero_page_gpa;
	return 0;
}

static int load_plain(struct ember_vm *vm, const struct elf_image *img,
		      const uint8_t *module, size_t module_len,
		      struct cpu_boot *boot, char *err, size_t errlen)
{
	const struct guest_mem *mem = &vm->kvm.mem;
	uint64_t low = mem->region[0].size;
	uint64_t end = (img->highest_gpa + 0xfff) & ~0xfffULL;
	struct ember_boot_info *bi;
	const char *cmdline = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	int ret;

	ret = elf_load(mem, img, EMBER_ELF_MIN_GPA, low, err, errlen);
	if (ret < 0)
		return ret;
	if (strlen(cmdline) >= EMBER_CMDLINE_MAX) {
		snprintf(err, errlen, "command line longer than %d bytes",
			 EMBER_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	if (mem_write(mem, EMBER_CMDLINE_GPA, cmdline, strlen(cmdline) + 1) < 0)
		return -EFAULT;
	bi = mem_gpa_to_hva(mem, EMBER_BOOT_INFO_GPA, sizeof(*bi));
	if (!bi)
		return -EFAULT;
	memset(bi, 0, sizeof(*bi));
	if (module) {
		/* The module follows the image, page-aligned, and the guest's
		 * free memory starts after both. Leave 64 KiB for the stack. */
		if (module_len > low || end > low - module_len ||
		    end + module_len > low - 0x10000) {
			snprintf(err, errlen, "boot module of %zu bytes does not "
				 "fit in %llu MiB of RAM after the image",
				 module_len, (unsigned long long)(low >> 20));
			return -E2BIG;
		}
		if (mem_write(mem, end, module, module_len) < 0)
			return -EFAULT;
		bi->initrd_gpa = end;
		bi->initrd_size = module_len;
		end = (end + module_len + 0xfff) & ~0xfffULL;
	}
	bi->magic = EMBER_BOOT_INFO_MAGIC;
	bi->version = EMBER_BOOT_INFO_VERSION;
	bi->cpl = vm->cfg.cpl;
	bi->low_ram_size = low;
	bi->high_ram_size = mem->nr_regions > 1 ? mem->region[1].size : 0;
	bi->cmdline_gpa = EMBER_CMDLINE_GPA;
	bi->tsc_khz = kvm_tsc_khz(vm->vcpu[0].fd);
	if (getrandom(bi->seed, sizeof(bi->seed), 0) != sizeof(bi->seed)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return -EIO;
	}
	bi->image_end = end;
	bi->nr_virtio = vm->nr_virtio;
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		bi->virtio[i].gpa = vm->virtio[i].transport.base;
		bi->virtio[i].irq = vm->virtio[i].transport.gsi;
		bi->virtio[i].device_id = vm->virtio[i].transport.ops->device_id;
	}
	boot->kind = BOOT_PLAIN;
	boot->cpl = vm->cfg.cpl;
	boot->rip = img->entry;
	boot->rsp = low & ~0xfffULL;
	boot->rdi = EMBER_BOOT_INFO_GPA;
	if (img->has_entries_note) {
		boot->syscall = true;
		boot->lstar = img->syscall_entry;
		vm->reflect_exceptions = img->exception_entry != 0;
		vm->exception_entry = img->exception_entry;
		bi->exception_entry = img->exception_entry;
	}
	return 0;
}

/*
 * Gives a plain guest its wall-clock reference: the guest TSC now, paired
 * with the host's CLOCK_REALTIME read right after. Called at creation and
 * after every restore, with the vCPU stopped. 0 or -errno.
 */
int vm_sync_guest_clock(struct ember_vm *vm)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = { .hdr.nmsrs = 1, .e.index = 0x10 /* IA32_TSC */ };
	struct ember_boot_info *bi;
	struct timespec now;

	bi = mem_gpa_to_hva(&vm->kvm.mem, EMBER_BOOT_INFO_GPA, sizeof(*bi));
	if (!bi)
		return -EFAULT;
	if (kvm_ioctl_raw(vm->vcpu[0].fd, KVM_GET_MSRS, &m) != 1)
		return -EIO;
	clock_gettime(CLOCK_REALTIME, &now);
	bi->wall_tsc = m.e.data;
	bi->wall_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	return 0;
}

/* Keeps a copy of `s` for the VM's lifetime; NULL when out of memory or
 * out of slots. */
const char *vm_own_string(struct ember_vm *vm, const char *s)
{
	char *copy;

	if (vm->nr_owned == sizeof(vm->owned) / sizeof(vm->owned[0]))
		return NULL;
	copy = strdup(s);
	if (copy)
		vm->owned[vm->nr_owned++] = copy;
	return copy;
}

enum cpu_template vm_pick_template(enum ember_cpu_template t)
{
	static bool said;

	if (t == EMBER_CPU_HOST)
		return CPU_TEMPLATE_HOST;
	if (t == EMBER_CPU_PVM || !kvm_host_is_pvm())
		return t == EMBER_CPU_PVM ? CPU_TEMPLATE_PVM : CPU_TEMPLATE_HOST;
	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED) &&
	    ember_log_get_level() >= EMBER_LOG_WARN)
		fprintf(stderr, "ember: host KVM is kvm-pvm: using the 'pvm' "
			"CPU template\n");
	return CPU_TEMPLATE_PVM;
}

/* The parts of a VM that a boot and a restore (or a shell) build alike:
 * eventfds, the event loop and the vCPUs. */
int vm_create_core(struct ember_vm *vm, char *err, size_t errlen)
{
	int ret = 0;

	vm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->loop = evloop_create(&ret);
	if (vm->wake_fd < 0 || vm->stop_fd < 0 || !vm->loop) {
		ret = ret ? ret : -errno;
		snprintf(err, errlen, "cannot create the event loop: %s",
			 strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_create(vm, i, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int check_config(const struct ember_config *cfg, char *err,
			size_t errlen)
{
	if (!cfg->kernel) {
		snprintf(err, errlen, "no kernel given");
		return -EINVAL;
	}
	if (cfg->mem_mib < 2 || cfg->mem_mib > MAX_MEM_MIB) {
		snprintf(err, errlen, "memory size %llu MiB out of range (2..%llu)",
			 (unsigned long long)cfg->mem_mib, MAX_MEM_MIB);
		return -EINVAL;
	}
	if (cfg->nr_cpus < 1 || cfg->nr_cpus > EMBER_MAX_VCPUS) {
		snprintf(err, errlen, "vCPU count %u out of range (1..%d)",
			 cfg->nr_cpus, EMBER_MAX_VCPUS);
		return -EINVAL;
	}
	if (cfg->cpl != 0 && cfg->cpl != 3) {
		snprintf(err, errlen, "CPL must be 0 or 3");
		return -EINVAL;
	}
	if (cfg->nr_disks > EMBER_MAX_DISKS) {
		snprintf(err, errlen, "at most %d disks", EMBER_MAX_DISKS);
		return -EINVAL;
	}
	return 0;
}

/* A VM with nothing acquired yet: every fd -1, so that ember_vm_destroy()
 * can undo any prefix of the creation. The condition variable waits on
 * CLOCK_MONOTONIC (the --timeout deadline must not move with the wall
 * clock). */
struct ember_vm *vm_alloc(const struct ember_config *cfg)
{
	struct ember_vm *vm = calloc(1, sizeof(*vm));
	pthread_condattr_t ca;

	if (!vm)
		return NULL;
	vm->cfg = *cfg;
	vm->kvm.kvm_fd = vm->kvm.vm_fd = -1;
	vm->wake_fd = vm->stop_fd = vm->serial_fd = -1;
	vm->snapshot_at_ready_fd = -1;
	/* Opened now, while the process may still open files: a working set
	 * is recorded later, when a seccomp filter (or the jail's empty
	 * root) allows no open. -1 without /proc: recording then fails. */
	vm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	/* First, so that ember_vm_stop() works on any VM vm_alloc returned. */
	vm->stop_req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_req_fd < 0) {
		free(vm);
		return NULL;
	}
	for (unsigned i = 0; i < EMBER_MAX_VCPUS; i++)
		vm->vcpu[i].fd = vm->vcpu[i].kick_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	return vm;
}

struct ember_vm *ember_vm_create(const struct ember_config *cfg, int *retp,
				 char *err, size_t errlen)
{
	struct ember_vm *vm;
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t kernel_len = 0, initrd_len = 0;
	struct elf_image img;
	struct cpu_boot boot;
	enum ember_kind kind;
	int ret;

	vcpu_install_kick_handler();
	ret = check_config(cfg, err, errlen);
	if (ret < 0)
		goto out;
	ret = read_file("kernel", cfg->kernel, ELF_MAX_FILE, &kernel,
			&kernel_len, err, errlen);
	if (ret < 0)
		goto out;
	ret = elf_parse(kernel, kernel_len, &img, err, errlen);
	if (ret < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "kernel '%s' is not a loadable x86-64 ELF: %s",
			 cfg->kernel, why);
		ret = -ENOEXEC;
		goto err_free_files;
	}
	if (cfg->initrd) {
		ret = read_file("initrd", cfg->initrd, 1ULL << 30, &initrd,
				&initrd_len, err, errlen);
		if (ret < 0)
			goto err_free_files;
	}
	kind = cfg->kind != EMBER_KIND_AUTO ? cfg->kind : detect_kind(&img);

	vm = vm_alloc(cfg);
	if (!vm) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_free_files;
	}
	/* The VM keeps copies of the strings it needs later (a snapshot
	 * records the disk and socket paths and the command line); the files
	 * are read during creation and their names are not kept. */
	vm->cfg.kernel = vm->cfg.initrd = NULL;
	for (unsigned i = 0; i < cfg->nr_disks; i++)
		if (!(vm->cfg.disks[i].path = vm_own_string(vm, cfg->disks[i].path)))
			ret = -ENOMEM;
	if (cfg->vsock_path &&
	    !(vm->cfg.vsock_path = vm_own_string(vm, cfg->vsock_path)))
		ret = -ENOMEM;
	if (cfg->cmdline && !(vm->cfg.cmdline = vm_own_string(vm, cfg->cmdline)))
		ret = -ENOMEM;
	if (ret < 0) {
		snprintf(err, errlen, "out of memory");
		goto err_destroy;
	}
	vm->boot = kind == EMBER_KIND_LINUX ? BOOT_LINUX : BOOT_PLAIN;
	vm->nr_vcpus = vm->boot == BOOT_PLAIN ? 1 : cfg->nr_cpus;
	if (vm->boot == BOOT_PLAIN && cfg->nr_cpus > 1)
		log_warn("plain ELF guests run on one vCPU; ignoring --cpus %u",
			 cfg->nr_cpus);
	if (vm->boot == BOOT_PLAIN && cfg->mem_mib * 1024 * 1024 > EMBER_LOW_RAM_MAX) {
		ret = -EINVAL;
		snprintf(err, errlen, "plain ELF guests take at most %llu MiB",
			 EMBER_LOW_RAM_MAX >> 20);
		goto err_destroy;
	}
	vm->cpu_template = vm_pick_template(cfg->cpu_template);
	if (vm->boot == BOOT_LINUX) {
		vm->cmdline = linux_cmdline(vm);
		if (!vm->cmdline) {
			ret = -E2BIG;
			snprintf(err, errlen, "kernel command line too long");
			goto err_destroy;
		}
	}

	ret = kvm_open(&vm->kvm, err, errlen);
	if (ret < 0)
		goto err_destroy;
	if (vm->boot == BOOT_LINUX) {
		ret = vm_setup_irqchip(vm, err, errlen);
		if (ret < 0)
			goto err_destroy;
	}
	ret = kvm_map_ram(&vm->kvm, cfg->mem_mib << 20, -1, err, errlen);
	if (ret < 0)
		goto err_destroy;
	ret = cpu_write_boot_tables(&vm->kvm.mem, vm->boot);
	if (ret < 0) {
		snprintf(err, errlen, "RAM too small for the boot tables");
		goto err_destroy;
	}
	ret = vm_create_core(vm, err, errlen);
	if (!ret)
		ret = vm_create_devices(vm, err, errlen);
	if (ret < 0)
		goto err_destroy;

	memset(&boot, 0, sizeof(boot));
	if (vm->boot == BOOT_LINUX)
		ret = load_linux(vm, kernel, kernel_len, initrd, initrd_len,
				 &boot, err, errlen);
	else
		ret = load_plain(vm, &img, initrd, initrd_len, &boot, err,
				 errlen);
	if (ret < 0) {
		if (ret != -EFAULT)
			ret = -ENOEXEC;
		goto err_destroy;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int fd = vm->vcpu[i].fd;

		ret = cpu_setup_cpuid(fd, vm->kvm.supported_cpuid,
				      vm->cpu_template, i, vm->nr_vcpus);
		if (!ret && vm->irqchip)
			ret = cpu_setup_lapic(fd);
		if (!ret && i == 0)
			ret = cpu_setup_bsp(fd, &boot);
		if (ret < 0) {
			snprintf(err, errlen, "cannot set up vCPU %u: %s", i,
				 strerror(-ret));
			goto err_destroy;
		}
	}
	if (vm->boot == BOOT_PLAIN) {
		ret = vm_sync_guest_clock(vm);
		if (ret < 0) {
			snprintf(err, errlen, "cannot set the guest clock: %s",
				 strerror(-ret));
			goto err_destroy;
		}
	}
	free(kernel);
	free(initrd);
	*retp = 0;
	return vm;

err_destroy:
	ember_vm_destroy(vm);
err_free_files:
	free(kernel);
	free(initrd);
out:
	*retp = ret;
	return NULL;
}

int ember_vm_start(struct ember_vm *vm)
{
	struct timespec now;
	bool parked;
	int ret;

	pthread_mutex_lock(&vm->lock);
	if (vm->started) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->started = true;
	parked = vm->threads_parked;
	pthread_mutex_unlock(&vm->lock);
	clock_gettime(CLOCK_MONOTONIC, &now);
	vm->deadline_ns = vm->cfg.timeout_ms ?
		(uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec +
			vm->cfg.timeout_ms * 1000000ULL : 0;
	if (parked) {
		/* A shell's: the threads exist, with their filters; wake them,
		 * the event thread first, as below. */
		evloop_resume(vm->loop);
		pthread_mutex_lock(&vm->lock);
		vm->vcpus_running = vm->nr_vcpus;
		vm->go = true;
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	pthread_mutex_lock(&vm->lock);
	vm->go = true; /* the threads made below need not wait */
	pthread_mutex_unlock(&vm->lock);
	ret = evloop_start(vm->loop);
	if (ret < 0) {
		vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
				"cannot start the event thread: %s",
				strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_running = vm->nr_vcpus;
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_start(&vm->vcpu[i]);
		if (ret < 0) {
			pthread_mutex_lock(&vm->lock);
			vm->vcpus_running -= vm->nr_vcpus - i;
			pthread_mutex_unlock(&vm->lock);
			vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
					"cannot start vCPU thread %u: %s", i,
					strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int vm_prestart_threads(struct ember_vm *vm, char *err, size_t errlen)
{
	int ret;

	/* Paused before it starts: the thread parks at once (evloop.c). */
	evloop_pause(vm->loop);
	ret = evloop_start(vm->loop);
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "cannot start the event "
				   "thread: %s", strerror(-ret));
	pthread_mutex_lock(&vm->lock);
	vm->threads_parked = true;
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_start(&vm->vcpu[i]);
		if (ret < 0)
			return errbuf_fail(err, errlen, ret, "cannot start vCPU "
					   "thread %u: %s", i, strerror(-ret));
	}
	return 0;
}

/* Ends the threads of a shell that never ran a VM (vm_prestart_threads);
 * evloop_destroy() ends the event thread. */
static void end_parked_threads(struct ember_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->threads_parked || vm->go) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpu[i]);
}

/* Milliseconds until the --timeout deadline for poll(2): -1 without one,
 * 0 once it passed. */
static int deadline_poll_ms(const struct ember_vm *vm)
{
	struct timespec now;
	uint64_t t, left;

	if (!vm->deadline_ns)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	t = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	if (t >= vm->deadline_ns)
		return 0;
	left = (vm->deadline_ns - t + 999999) / 1000000;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * The owner's wait: until the VM records why it ends (stop_fd), turn
 * ember_vm_stop()'s eventfd and the deadline into vm_request_stop() here,
 * on a thread where locks and formatting are allowed.
 */
int ember_vm_wait(struct ember_vm *vm, struct ember_exit *exit)
{
	struct pollfd p[2] = {
		{ .fd = vm->stop_fd, .events = POLLIN },
		{ .fd = vm->stop_req_fd, .events = POLLIN },
	};

	pthread_mutex_lock(&vm->lock);
	if (!vm->started || vm->waited) {
		pthread_mutex_unlock(&vm->lock);
		return -EINVAL;
	}
	pthread_mutex_unlock(&vm->lock);
	for (;;) {
		int timeout = deadline_poll_ms(vm);
		int n;

		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			break;
		if (timeout == 0) {
			vm_request_stop(vm, EMBER_EXIT_TIMEOUT, 0, 0,
					"stopped after the %llu ms timeout",
					(unsigned long long)vm->cfg.timeout_ms);
			continue;
		}
		n = poll(p, 2, timeout);
		if (n < 0 && errno != EINTR) {
			vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
					"poll: %s", strerror(errno));
			continue;
		}
		if (n > 0 && (p[1].revents & POLLIN))
			vm_request_stop(vm, EMBER_EXIT_STOPPED, 0, 0,
					"stopped on request");
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpu[i]);
	serial_flush(&vm->serial);
	pthread_mutex_lock(&vm->lock);
	vm->waited = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	*exit = vm->exit;
	return 0;
}

int ember_vm_run(struct ember_vm *vm, struct ember_exit *exit)
{
	int ret = ember_vm_start(vm);

	if (ret == -EBUSY)
		return ret;
	ember_vm_wait(vm, exit);
	return ret;
}

void ember_vm_get_status(struct ember_vm *vm, struct ember_vm_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&vm->lock);
	if (vm->waited)
		st->state = EMBER_VM_STOPPED;
	else if (vm->stopping)
		st->state = EMBER_VM_STOPPING;
	else if (vm->pause_requested &&
		 (!vm->started || vm->vcpus_paused == vm->vcpus_running))
		st->state = EMBER_VM_PAUSED;
	else if (vm->started)
		st->state = EMBER_VM_RUNNING;
	else
		st->state = EMBER_VM_CREATED;
	st->guest_ready = vm->guest_ready;
	st->restored = vm->restored;
	st->exit_reason = vm->stopping ? vm->exit.reason : EMBER_EXIT_NONE;
	pthread_mutex_unlock(&vm->lock);
}

const char *ember_vm_state_name(enum ember_vm_state s)
{
	static const char *const names[] = {
		[EMBER_VM_CREATED] = "created",
		[EMBER_VM_RUNNING] = "running",
		[EMBER_VM_PAUSED] = "paused",
		[EMBER_VM_STOPPING] = "stopping",
		[EMBER_VM_STOPPED] = "stopped",
	};

	if ((unsigned)s < sizeof(names) / sizeof(names[0]))
		return names[s];
	return "invalid";
}

void ember_vm_destroy(struct ember_vm *vm)
{
	if (!vm)
		return;
	end_parked_threads(vm);
	if (vm->loop)
		evloop_destroy(vm->loop); /* no device callback runs after */
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		struct vm_virtio *vd = &vm->virtio[i];

		vmmio_destroy(&vd->transport);
		vd->type->destroy(vd->dev);
		for (unsigned q = 0; q < VMMIO_MAX_QUEUES; q++)
			if (vd->ioeventfd[q] >= 0)
				close(vd->ioeventfd[q]);
		if (vd->irqfd >= 0)
			close(vd->irqfd);
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpu[i]);
	if (vm->serial_ready)
		serial_destroy(&vm->serial);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->stop_req_fd >= 0)
		close(vm->stop_req_fd);
	if (vm->serial_fd >= 0)
		close(vm->serial_fd);
	if (vm->snapshot_at_ready_fd >= 0)
		close(vm->snapshot_at_ready_fd);
	if (vm->pagemap_fd >= 0)
		close(vm->pagemap_fd);
	kvm_close(&vm->kvm);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm->cmdline);
	for (unsigned i = 0; i < vm->nr_owned; i++)
		free(vm->owned[i]);
	free(vm->snapshot_dir);
	free(vm);
}

int ember_vm_pause(struct ember_vm *vm)
{
	int ret;

	pthread_mutex_lock(&vm->lock);
	if (vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return -ESRCH;
	}
	__atomic_store_n(&vm->pause_requested, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->vcpus_paused < vm->vcpus_running && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	ret = vm->stopping ? -ESRCH : 0;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int ember_vm_resume(struct ember_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static bool vm_is_paused(struct ember_vm *vm)
{
	bool paused;

	pthread_mutex_lock(&vm->lock);
	paused = vm->pause_requested && vm->vcpus_paused == vm->vcpus_running;
	pthread_mutex_unlock(&vm->lock);
	return paused;
}

int ember_vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		      size_t errlen)
{
	if (!vm_is_paused(vm))
		return errbuf_fail(err, errlen, -EBUSY,
				   "the VM must be paused first");
	return vm_snapshot(vm, dir, err, errlen);
}

int ember_vm_snapshot_fd(struct ember_vm *vm, int dir_fd, char *err,
			 size_t errlen)
{
	if (!vm_is_paused(vm))
		return errbuf_fail(err, errlen, -EBUSY,
				   "the VM must be paused first");
	return vm_snapshot_at(vm, dir_fd, err, errlen);
}

int ember_vm_snapshot_at_ready(struct ember_vm *vm, const char *dir,
			       char *err, size_t errlen)
{
	int fd;

	/* The directory is opened here, at setup: the vCPU thread that writes
	 * the snapshot then only creates files below this fd (under
	 * --seccomp it may not open paths). */
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return errbuf_fail(err, errlen, -errno, "cannot create '%s': "
				   "%s", dir, strerror(errno));
	fd = snap_open_dir(dir, err, errlen);
	if (fd < 0)
		return fd;
	if (vm->snapshot_at_ready_fd >= 0)
		close(vm->snapshot_at_ready_fd);
	vm->snapshot_at_ready_fd = fd;
	vm->snapshot_at_ready = dir;
	return 0;
}
