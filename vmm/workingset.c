/*
 * workingset.c - the pages a restored guest touches: recorded after its
 * first invocation from /proc/self/pagemap, and brought in before the vCPU
 * runs on later restores (prefetch).
 */
#define LOG_MOD "workingset"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "snapshots/snap.h"
#include "virtio/blk.h"
#include "virtio/vsock.h"

/* /proc/self/pagemap: one u64 per page (Documentation/admin-guide/mm/
 * pagemap.rst). Bit 63: present in our page tables, which for guest RAM
 * means the guest (through KVM) touched it since the mapping was made. Bit
 * 61: a file page; a page the guest wrote was copied on write and is then
 * anonymous, so "present and not file" means written. */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_FILE (1ULL << 61)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* The pages of guest RAM present in our page tables (*pages) and, of
 * those, the ones no longer file pages (*written), from pagemap. */
static int scan_pagemap(struct ember_vm *vm, uint64_t **pages_out,
			uint64_t *n_out, uint64_t **written_out,
			uint64_t *nw_out, char *err, size_t errlen)
{
	uint64_t npages = vm->kvm.ram_size / SNAP_PAGE_SIZE, n = 0, nw = 0;
	uint64_t *pages, *written, *entries;
	const uint64_t chunk = 4096;
	int fd, ret = 0;

	/* Opened at setup (vm_alloc): no path is opened here. */
	fd = vm->pagemap_fd;
	if (fd < 0)
		errno = ENOENT;
	pages = malloc(npages * sizeof(*pages));
	written = malloc(npages * sizeof(*written));
	entries = malloc(chunk * sizeof(*entries));
	if (fd < 0 || !pages || !written || !entries) {
		ret = fd < 0 ? -errno : -ENOMEM;
		snprintf(err, errlen, "cannot read pagemap: %s", strerror(-ret));
		goto out;
	}
	for (uint64_t first = 0; first < npages; first += chunk) {
		uint64_t cnt = npages - first < chunk ? npages - first : chunk;
		off_t off = (off_t)(((uintptr_t)vm->kvm.ram / SNAP_PAGE_SIZE +
				     first) * sizeof(uint64_t));
		ssize_t got = pread(fd, entries, cnt * sizeof(uint64_t), off);

		if (got != (ssize_t)(cnt * sizeof(uint64_t))) {
			ret = -EIO;
			snprintf(err, errlen, "short pagemap read");
			goto out;
		}
		for (uint64_t i = 0; i < cnt; i++) {
			if (!(entries[i] & PAGEMAP_PRESENT))
				continue;
			pages[n++] = first + i;
			if (!(entries[i] & PAGEMAP_FILE))
				written[nw++] = first + i;
		}
	}
out:
	free(entries);
	if (ret < 0) {
		free(pages);
		free(written);
		return ret;
	}
	*pages_out = pages;
	*n_out = n;
	*written_out = written;
	*nw_out = nw;
	log_info("working set: %llu pages, %llu of them written",
		 (unsigned long long)n, (unsigned long long)nw);
	return 0;
}

/* To the snapshot directory (dir_mode) or to the open files fd/dirty_fd. */
static int record(struct ember_vm *vm, bool dir_mode, int fd, int dirty_fd,
		  char *err, size_t errlen)
{
	uint64_t *pages, *written, n, nw;
	int ret;

	if (!vm->restored || !vm->kvm.ram_is_file)
		return errbuf_fail(err, errlen, -EINVAL, "the VM was not "
				   "restored from a snapshot");
	if (dir_mode && !vm->snapshot_dir)
		return errbuf_fail(err, errlen, -EINVAL, "the VM was restored "
				   "from fds: give files to write to");
	ret = scan_pagemap(vm, &pages, &n, &written, &nw, err, errlen);
	if (ret < 0)
		return ret;
	if (dir_mode) {
		ret = snap_write_workingset(vm->snapshot_dir, pages, n,
					    vm->kvm.ram_size, err, errlen);
		if (!ret)
			ret = snap_write_pagelist(vm->snapshot_dir,
						  SNAP_WORKINGSET_DIRTY_FILE,
						  written, nw, vm->kvm.ram_size,
						  err, errlen);
	} else {
		ret = snap_write_pagelist_fd(fd, pages, n, vm->kvm.ram_size,
					     err, errlen);
		if (!ret && dirty_fd >= 0)
			ret = snap_write_pagelist_fd(dirty_fd, written, nw,
						     vm->kvm.ram_size, err,
						     errlen);
	}
	free(pages);
	free(written);
	return ret;
}

/* One madvise per run of consecutive pages of a list; false on failure. */
static bool populate(struct ember_vm *vm, const uint64_t *pages, size_t n,
		     int advice)
{
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && pages[j] == pages[j - 1] + 1)
			j++;
		if (madvise(vm->kvm.ram + pages[i] * SNAP_PAGE_SIZE,
			    (j - i) * SNAP_PAGE_SIZE, advice) < 0) {
			log_warn_errno("working-set prefetch");
			return false;
		}
		i = j;
	}
	return true;
}

/*
 * Brings the recorded working set into our page tables before the vCPU
 * runs, so that the guest's first touches do not each take a host page
 * fault: pages the recording run only read are mapped from the page cache
 * (MADV_POPULATE_READ); pages it wrote get their private copy now
 * (MADV_POPULATE_WRITE) instead of a copy-on-write fault each. Best effort:
 * without a working set, or on a kernel without these advices, restore
 * just goes on lazily.
 */
void vm_prefetch_workingset(struct ember_vm *vm, const struct ember_restore *r)
{
	uint64_t *pages, *written = NULL;
	size_t n, nw = 0;
	char err[256];
	int ret;

	ret = r->dir ? snap_read_workingset(r->dir, vm->kvm.ram_size, &pages,
					    &n, err, sizeof(err)) :
	      r->workingset_fd >= 0 ?
		     snap_read_pagelist_fd(r->workingset_fd, "working set",
					   vm->kvm.ram_size, &pages, &n, err,
					   sizeof(err)) : -ENOENT;
	if (ret < 0) {
		if (ret != -ENOENT)
			log_warn("no prefetch: %s", err);
		return;
	}
	ret = r->dir ? snap_read_pagelist(r->dir, SNAP_WORKINGSET_DIRTY_FILE,
					  vm->kvm.ram_size, &written, &nw, err,
					  sizeof(err)) :
	      r->workingset_dirty_fd >= 0 ?
		     snap_read_pagelist_fd(r->workingset_dirty_fd,
					   "working set (written)",
					   vm->kvm.ram_size, &written, &nw,
					   err, sizeof(err)) : -ENOENT;
	if (ret < 0)
		nw = 0;
	/* Written pages first: the read pass then skips them (present). */
	if (!nw || populate(vm, written, nw, MADV_POPULATE_WRITE))
		populate(vm, pages, n, MADV_POPULATE_READ);
	free(pages);
	free(written);
}

int ember_vm_record_workingset(struct ember_vm *vm, char *err, size_t errlen)
{
	return record(vm, true, -1, -1, err, errlen);
}

int ember_vm_record_workingset_fd(struct ember_vm *vm, int fd, int dirty_fd,
				  char *err, size_t errlen)
{
	if (fd < 0)
		return errbuf_fail(err, errlen, -EBADF, "no working-set file");
	return record(vm, false, fd, dirty_fd, err, errlen);
}
