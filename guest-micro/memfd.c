/*
 * memfd.c - memfd_create: anonymous files in guest memory, readable and
 * writable (read, write, pread, pwrite, lseek, ftruncate, fstat), the one
 * kind of writable file the micro guest has.
 *
 * The contents live in a mapping of the vma.c window reserved at creation
 * (MEMFD_MAX), so the file grows in place and costs RAM only for the pages
 * written. mmap of a memfd gives a private copy (as for image files);
 * MAP_SHARED with write access is refused, so memfds cannot serve as
 * shared memory between mappings. Sealing (F_ADD_SEALS) is not offered:
 * MFD_ALLOW_SEALING is accepted and the seals fcntl fails with -EINVAL.
 */
#include "kernel.h"

#define MFD_CLOEXEC 1u
#define MFD_ALLOW_SEALING 2u
#define MFD_HUGETLB 4u
#define MEMFD_MAX (1ULL << 30) /* the reservation: the largest size */
#define MEMFD_NAME 250         /* Linux's limit: 249 bytes + NUL */

struct memfd {
	uint64_t base, size;
	bool in_use;
};

static struct memfd memfds[FS_MAX_FDS];

static long memfd_pread(struct ofd *d, void *buf, uint64_t len, uint64_t off)
{
	struct memfd *m = d->obj;
	uint64_t n;

	if (off >= m->size || !len)
		return 0;
	n = MIN(len, m->size - off);
	if (!mm_access_ok((void *)(uintptr_t)(m->base + off), n))
		return -EIO;
	memcpy(buf, (const void *)(uintptr_t)(m->base + off), n);
	return (long)n;
}

static long memfd_pwrite(struct ofd *d, const void *buf, uint64_t len,
			 uint64_t off)
{
	struct memfd *m = d->obj;

	if (off >= MEMFD_MAX)
		return len ? -EFBIG : 0;
	len = MIN(len, MEMFD_MAX - off);
	if (!len)
		return 0;
	if (!mm_access_ok((void *)(uintptr_t)(m->base + off), len))
		return -ENOSPC; /* no RAM left to back it */
	memcpy((void *)(uintptr_t)(m->base + off), buf, len);
	m->size = MAX(m->size, off + len);
	return (long)len;
}

static int64_t memfd_size(struct ofd *d)
{
	return (int64_t)((struct memfd *)d->obj)->size;
}

static void memfd_release(struct ofd *d)
{
	struct memfd *m = d->obj;

	vma_unmap(m->base, MEMFD_MAX);
	memset(m, 0, sizeof(*m));
}

static const struct file_ops memfd_ops = {
	.mode = S_IFREG | 0777, /* as Linux shows a memfd */
	.pread = memfd_pread,
	.pwrite = memfd_pwrite,
	.size = memfd_size,
	.release = memfd_release,
};

long sys_memfd_create(const char *uname, unsigned flags)
{
	struct memfd *m = NULL;
	size_t n = 0;
	long a, fd;

	if (flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB))
		return -EINVAL;
	if (flags & MFD_HUGETLB)
		return -EINVAL; /* no huge pages here */
	/* The name is only for /proc, which does not exist here; check it
	 * as Linux does. */
	for (;; n++) {
		if (!mm_access_ok(uname + n, 1))
			return -EFAULT;
		if (!uname[n])
			break;
		if (n + 1 >= MEMFD_NAME)
			return -EINVAL;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(memfds) && !m; i++)
		if (!memfds[i].in_use)
			m = &memfds[i];
	if (!m)
		return -ENFILE;
	a = vma_map(0, MEMFD_MAX, true, false);
	if (a < 0)
		return a;
	m->base = (uint64_t)a;
	m->size = 0;
	m->in_use = true;
	fd = fs_install(&memfd_ops, m, 2 /* O_RDWR */, flags & MFD_CLOEXEC);
	if (fd < 0) {
		vma_unmap(m->base, MEMFD_MAX);
		memset(m, 0, sizeof(*m));
	}
	return fd;
}

long sys_ftruncate(int fd, int64_t len)
{
	struct ofd *d = fs_get(fd);
	struct memfd *m;

	if (!d)
		return -EBADF;
	if (d->ops != &memfd_ops)
		return d->ops == &image_ops ? -EROFS : -EINVAL;
	if ((d->flags & 3) == 0)
		return -EINVAL; /* not open for writing */
	if (len < 0)
		return -EINVAL;
	if ((uint64_t)len > MEMFD_MAX)
		return -EFBIG;
	m = d->obj;
	if ((uint64_t)len < m->size)
		/* What is cut off reads back as zero if the file grows. */
		vma_dontneed(PAGE_UP(m->base + (uint64_t)len),
			     PAGE_UP(m->base + m->size) -
				     PAGE_UP(m->base + (uint64_t)len));
	if ((uint64_t)len < m->size && (len & (PAGE_SIZE - 1)) &&
	    mm_access_ok((void *)(uintptr_t)(m->base + (uint64_t)len), 1))
		memset((void *)(uintptr_t)(m->base + (uint64_t)len), 0,
		       PAGE_SIZE - ((uint64_t)len & (PAGE_SIZE - 1)));
	m->size = (uint64_t)len;
	return 0;
}
