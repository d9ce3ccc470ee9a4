/*
 * mm.c - the handler's memory: brk and anonymous mmap over guest RAM.
 *
 * The VMM identity-maps all RAM with user pages and the micro guest cannot
 * change page tables cheaply (no INVLPG at CPL3), so "mapping" is bookkeeping
 * over physical == virtual addresses: a sorted table of free ranges. brk
 * grows up from the end of the handler's image; mmap allocates top-down
 * below the handler's stack. Documented limits (docs/micro-guest.md):
 * mprotect succeeds without changing protections, PROT_NONE memory is
 * accessible, nothing is ever swapped or overcommitted: a mapping takes RAM
 * at once (pages are only touched, and so backed by the host, when used).
 *
 * RAM fresh from the VMM reads as zero, so a range is zeroed on allocation
 * only if it was used before (the `dirty` flag), which keeps first
 * allocations from touching every page.
 */
#include "kernel.h"

#define MM_MAX_RANGES 1024

struct range {
	uint64_t start, end;
	bool dirty;
};

extern char __image_end[]; /* micro.ld: end of this kernel */

static struct range ranges[MM_MAX_RANGES];
static unsigned nr_ranges;
static uint64_t user_lo, ram_top;
static uint64_t brk_base, brk_cur, brk_end; /* brk_end: page-aligned */

/* Linux mmap/madvise constants (uapi/asm-generic/mman*.h). */
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define MADV_DONTNEED 4
#define MADV_FREE 8

/* Removes entry i. */
static void range_del(unsigned i)
{
	memmove(&ranges[i], &ranges[i + 1],
		(nr_ranges - i - 1) * sizeof(ranges[0]));
	nr_ranges--;
}

/* Inserts at index i; false when the table is full (the memory leaks). */
static bool range_ins(unsigned i, uint64_t start, uint64_t end, bool dirty)
{
	if (nr_ranges == MM_MAX_RANGES)
		return false;
	memmove(&ranges[i + 1], &ranges[i],
		(nr_ranges - i) * sizeof(ranges[0]));
	ranges[i] = (struct range){ start, end, dirty };
	nr_ranges++;
	return true;
}

/* Takes [start, end) out of the free table; returns whether any of it was
 * dirty (must be zeroed before the handler sees it). */
static bool carve(uint64_t start, uint64_t end)
{
	bool dirty = false;

	for (unsigned i = 0; i < nr_ranges;) {
		struct range *r = &ranges[i];

		if (r->end <= start || r->start >= end) {
			i++;
			continue;
		}
		dirty |= r->dirty;
		if (r->start < start && r->end > end) {
			/* Split in two. If the table is full the upper part
			 * is lost (leaked), never handed out twice. */
			uint64_t e = r->end;
			bool d = r->dirty;
			r->end = start;
			range_ins(i + 1, end, e, d);
			return dirty;
		}
		if (r->start < start) {
			r->end = start;
			i++;
		} else if (r->end > end) {
			r->start = end;
			i++;
		} else {
			range_del(i);
		}
	}
	return dirty;
}

void mm_reserve(uint64_t start, uint64_t end)
{
	carve(PAGE_DOWN(start), PAGE_UP(end));
}

void mm_release(uint64_t start, uint64_t end)
{
	unsigned i;

	start = MAX(PAGE_DOWN(start), user_lo);
	end = MIN(PAGE_UP(end), ram_top);
	if (start >= end)
		return;
	carve(start, end); /* never list a byte twice */
	for (i = 0; i < nr_ranges && ranges[i].start < start; i++)
		;
	/* Merge with dirty neighbours (clean ones stay apart so that clean
	 * memory is never zeroed needlessly). */
	if (i > 0 && ranges[i - 1].end == start && ranges[i - 1].dirty) {
		ranges[i - 1].end = end;
		if (i < nr_ranges && ranges[i].start == end && ranges[i].dirty) {
			ranges[i - 1].end = ranges[i].end;
			range_del(i);
		}
		return;
	}
	if (i < nr_ranges && ranges[i].start == end && ranges[i].dirty) {
		ranges[i].start = start;
		return;
	}
	range_ins(i, start, end, true);
}

void mm_init(void)
{
	/* Low RAM only (below 3 GiB): enough for a function sandbox. Free
	 * memory starts past the image and the boot module (image_end). */
	ram_top = PAGE_DOWN(boot_info->low_ram_size);
	user_lo = PAGE_UP((uint64_t)(uintptr_t)__image_end);
	nr_ranges = 0;
	if (boot_info->image_end < ram_top)
		range_ins(0, PAGE_UP(boot_info->image_end), ram_top, false);
}

bool mm_user_range(uint64_t addr, uint64_t len)
{
	return addr >= user_lo && addr <= ram_top && len <= ram_top - addr;
}

bool mm_access_ok(const void *p, uint64_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)p;

	/* Any RAM the handler can reach (it may pass pointers into its own
	 * image or stack); page 0 and the low boot pages are refused. Above
	 * 64 GiB: mapped pages, backed now if they were not. */
	if (a >= EMBER_CMDLINE_GPA && a <= ram_top && len <= ram_top - a)
		return true;
	return a >= VMA_BASE && vma_access_ok(a, len);
}

bool mm_is_low(const void *p, uint64_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)p;

	return a <= ram_top && len <= ram_top - a;
}

uint64_t mm_free_bytes(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < nr_ranges; i++)
		n += ranges[i].end - ranges[i].start;
	return n;
}

static uint64_t alloc_top(uint64_t len);

uint64_t mm_alloc_top(uint64_t len)
{
	uint64_t a = alloc_top(len);

	/* Short of RAM: frames left bound to unmapped ranges of the window
	 * are the reserve (vma.c). */
	if (!a && vma_reclaim())
		a = alloc_top(len);
	return a;
}

static uint64_t alloc_top(uint64_t len)
{
	for (unsigned i = nr_ranges; i-- > 0;) {
		struct range *r = &ranges[i];

		if (r->end - r->start >= len) {
			uint64_t a = r->end - len;
			bool dirty = r->dirty;

			/* Highest first: brk, growing up from the low
			 * end, keeps its room as long as possible. */
			carve(a, a + len);
			if (dirty)
				memset((void *)a, 0, len);
			return a;
		}
	}
	return 0;
}

/* True if all of [start, end) is free. */
static bool range_is_free(uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < nr_ranges; i++)
		if (ranges[i].start <= start && ranges[i].end >= end)
			return true;
	return false;
}

void mm_set_brk_base(uint64_t base)
{
	brk_base = brk_cur = brk_end = PAGE_UP(base);
}

long sys_brk(uint64_t addr)
{
	uint64_t want;

	if (addr < brk_base || addr > ram_top)
		return (long)brk_cur;
	want = PAGE_UP(addr);
	if (want > brk_end) {
		if (!range_is_free(brk_end, want))
			return (long)brk_cur; /* Linux: unchanged = failure */
		if (carve(brk_end, want))
			memset((void *)brk_end, 0, want - brk_end);
	} else if (want < brk_end) {
		mm_release(want, brk_end);
	}
	brk_end = want;
	brk_cur = addr;
	return (long)brk_cur;
}

static long mmap_file(uint64_t addr, uint64_t len, int fd, uint64_t off)
{
	long n;

	/* A private copy: read the file into the fresh anonymous pages. The
	 * tail past the end of file stays zero, as Linux shows it. */
	n = fs_pread(fd, (void *)addr, len, (int64_t)off);
	if (n < 0) {
		mm_release(addr, addr + len);
		return n;
	}
	return (long)addr;
}

/* Whether an mmap goes to the lazily backed window (vma.c). */
static bool goes_high(uint64_t addr, uint64_t len, int prot, int flags)
{
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
		return vma_window(addr, len);
	return prot == PROT_NONE || (addr && vma_window(addr, len)) ||
	       ((flags & MAP_ANONYMOUS) && len >= VMA_LAZY_MIN);
}

static long mmap_high(uint64_t addr, uint64_t len, int prot, int flags,
		      int fd, uint64_t off)
{
	bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	long a;

	/* Linux's heuristic overcommit: an accessible private mapping larger
	 * than all of RAM is refused; reservations cost nothing. */
	if (prot != PROT_NONE && len > ram_top)
		return -ENOMEM;

	if ((flags & MAP_FIXED_NOREPLACE) && !vma_range_free(addr, len))
		return -EEXIST;
	a = vma_map(addr, len, prot != PROT_NONE || !(flags & MAP_ANONYMOUS),
		    fixed);
	if (a < 0 || (flags & MAP_ANONYMOUS))
		return a;
	/* A private file mapping: a copy, read in now. */
	long n = fs_pread(fd, (void *)(uintptr_t)a, len, (int64_t)off);
	if (n < 0) {
		vma_unmap((uint64_t)a, len);
		return n;
	}
	if (prot == PROT_NONE)
		vma_protect((uint64_t)a, len, false);
	return a;
}

long sys_mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd,
	      uint64_t off)
{
	uint64_t a;

	if (len == 0 || (off & (PAGE_SIZE - 1)))
		return -EINVAL;
	if (!(flags & (MAP_PRIVATE | MAP_SHARED)))
		return -EINVAL;
	if (!(flags & MAP_ANONYMOUS)) {
		/* Shared file mappings would need write-back: read-only
		 * image, so only private ones (copies) are offered. */
		if ((flags & MAP_SHARED) && (prot & PROT_WRITE))
			return -EACCES;
		if (fd < 0)
			return -EBADF;
	}
	if (len > VMA_END - VMA_BASE)
		return -ENOMEM;
	len = PAGE_UP(len);
	if (goes_high(addr, len, prot, flags))
		return mmap_high(addr, len, prot, flags, fd, off);
	if (len > ram_top)
		return -ENOMEM; /* more than all of RAM: as Linux without swap */
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if ((addr & (PAGE_SIZE - 1)) || !mm_user_range(addr, len))
			return (flags & MAP_FIXED_NOREPLACE) ? -EEXIST :
							       -ENOMEM;
		if ((flags & MAP_FIXED_NOREPLACE) &&
		    !range_is_free(addr, addr + len))
			return -EEXIST;
		/* MAP_FIXED replaces whatever was there: fresh zero pages. */
		carve(addr, addr + len);
		memset((void *)addr, 0, len);
		a = addr;
	} else {
		a = mm_alloc_top(len);
		if (!a)
			return -ENOMEM;
	}
	if (!(flags & MAP_ANONYMOUS))
		return mmap_file(a, len, fd, off);
	return (long)a;
}

long sys_munmap(uint64_t addr, uint64_t len)
{
	if ((addr & (PAGE_SIZE - 1)) || len == 0 || addr + len < addr)
		return -EINVAL;
	if (addr >= VMA_BASE)
		return vma_window(addr, len) ? vma_unmap(addr, len) : -EINVAL;
	mm_release(addr, addr + len);
	return 0;
}

/* mremap in the window: shrink, grow in place, or move (copy; the old
 * frames stay bound to their addresses, see vma.c). */
static long mremap_high(uint64_t old, uint64_t old_len, uint64_t new_len,
			int flags)
{
	long a;

	old_len = PAGE_UP(old_len);
	new_len = PAGE_UP(new_len);
	if (!vma_window(old, old_len) || !vma_window(old, new_len))
		return -EINVAL;
	if (!vma_access_ok(old, old_len))
		return -EFAULT;
	if (new_len <= old_len) {
		vma_unmap(old + new_len, old_len - new_len);
		return (long)old;
	}
	if (vma_map(old + old_len, new_len - old_len, true, false) ==
	    (long)(old + old_len)) {
		/* The hint was free: it grew in place. */
		return (long)old;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	a = vma_map(0, new_len, true, false);
	if (a < 0)
		return a;
	if (!vma_access_ok((uint64_t)a, old_len)) {
		vma_unmap((uint64_t)a, new_len);
		return -ENOMEM;
	}
	memcpy((void *)(uintptr_t)a, (void *)(uintptr_t)old, old_len);
	vma_unmap(old, old_len);
	return a;
}

long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, int flags,
		uint64_t new_addr)
{
	uint64_t a;

	(void)new_addr;
	if ((old & (PAGE_SIZE - 1)) || new_len == 0 || (flags & MREMAP_FIXED))
		return -EINVAL;
	if (old >= VMA_BASE)
		return mremap_high(old, old_len, new_len, flags);
	if (!mm_user_range(old, old_len))
		return -EINVAL;
	old_len = PAGE_UP(old_len);
	new_len = PAGE_UP(new_len);
	if (new_len <= old_len) {
		mm_release(old + new_len, old + old_len);
		return (long)old;
	}
	/* Grow in place when the pages above are free. */
	if (range_is_free(old + old_len, old + new_len)) {
		if (carve(old + old_len, old + new_len))
			memset((void *)(old + old_len), 0, new_len - old_len);
		return (long)old;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	a = mm_alloc_top(new_len);
	if (!a)
		return -ENOMEM;
	memcpy((void *)a, (void *)old, old_len);
	mm_release(old, old + old_len);
	return (long)a;
}

long sys_madvise(uint64_t addr, uint64_t len, int advice)
{
	if (addr & (PAGE_SIZE - 1))
		return -EINVAL;
	len = PAGE_UP(len);
	if (addr >= VMA_BASE) {
		if (!vma_window(addr, len))
			return -ENOMEM;
		return advice == MADV_DONTNEED ? vma_dontneed(addr, len) : 0;
	}
	if (!mm_user_range(addr, len))
		return -ENOMEM;
	/* Anonymous private memory reads back as zero after DONTNEED. FREE
	 * may keep the contents, so it is a no-op like the other hints. */
	if (advice == MADV_DONTNEED)
		memset((void *)addr, 0, len);
	return 0;
}

long sys_mprotect(uint64_t addr, uint64_t len, int prot)
{
	/* In low RAM accepted and ignored: every page stays readable,
	 * writable and executable (glibc's start-up requires success here).
	 * In the window PROT_NONE is real (reservations, guard pages). */
	if (addr & (PAGE_SIZE - 1))
		return -EINVAL;
	if (addr >= VMA_BASE) {
		if (!vma_window(addr, PAGE_UP(len)))
			return -ENOMEM;
		if (prot != PROT_NONE && len > ram_top)
			return -ENOMEM; /* as mmap: more than all of RAM */
		return vma_protect(addr, len, prot != PROT_NONE);
	}
	if (!mm_user_range(addr, PAGE_UP(len)))
		return -ENOMEM;
	return 0;
}
