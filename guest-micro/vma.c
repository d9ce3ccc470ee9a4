/*
 * vma.c - the handler's virtual memory above 64 GiB: reservations, and
 * mappings backed page by page when first touched.
 *
 * Low RAM is identity-mapped by the VMM and handed out by mm.c, physical ==
 * virtual. That cannot serve what language runtimes do with address space:
 * Go reserves ~600 MiB of PROT_NONE address space for its page allocator
 * and maps a 64 MiB heap arena at 0xc000000000, glibc reserves each thread
 * stack with PROT_NONE, and all of them expect untouched memory to cost
 * nothing. So mappings that are reservations (PROT_NONE), that ask for an
 * address in this window, or that are large (mm.c decides) live here, in
 * 4 KiB pages of page tables this module builds below the VMM's PML4:
 *
 *   - a mapping is a range with a protection (none, or read-write-execute:
 *     x86 without NX cannot tell R, W and X apart usefully here);
 *   - its pages get RAM (from mm.c) only when touched: a page fault in an
 *     accessible mapping (trap.c) backs the 64 KiB block around it, and a
 *     system call that is handed a buffer here backs it first
 *     (vma_access_ok), so the kernel itself never faults;
 *   - a frame once bound to a virtual page stays bound to it while that
 *     address is in use or may be used again. Changing a translation the
 *     CPU may have cached needs a TLB flush, which a CPL3 guest can only
 *     ask the VMM for (EMBER_HC_FLUSH_TLB), and which is dear under
 *     shadow paging (measured here: ~1.2 ms, and ~11 us for each page
 *     touched after it while KVM rebuilds its shadow tables). So munmap
 *     leaves the entries as they are and only takes the range out of the
 *     table; accessible mappings are placed top-down, where freed ranges
 *     are found first, and a new mapping over bound frames zeroes and
 *     reuses them (same address, same frame: a stale translation is a
 *     right one). MADV_DONTNEED zeroes bound frames in place;
 *   - PROT_NONE mappings (reservations, guard pages) get addresses that
 *     hold no frame (their own arena, below the accessible one), so
 *     nothing stale can reach them and a touch faults; mprotect(PROT_NONE)
 *     of pages that were present clears them and flushes at once (rare);
 *   - frames left bound to unmapped ranges are reclaimed when RAM runs
 *     short (mm.c asks) or their list fills up: the entries are cleared,
 *     the TLB flushed once, and only then do the frames go back to mm.c,
 *     so no stale translation can reach a frame that has a new owner.
 *     Not present -> present needs no flush (x86 caches no not-present
 *     entries). An access right after munmap may still succeed (the entry
 *     is left present until reclaim): a weaker check than Linux's, not a
 *     sandbox matter (the VM is the sandbox).
 *
 * Page-table pages come from mm.c too and are never freed. A new page
 * table is filled before it is linked in: under shadow paging (PVM) writes
 * to a live page table trap to the host, writes to a fresh page do not.
 */
#include "kernel.h"

#define PTE_P 1ULL
#define PTE_RW 2ULL
#define PTE_US 4ULL
#define PTE_PS 0x80ULL
#define PTE_HIDDEN (1ULL << 9) /* software: a frame, not present (PROT_NONE) */
#define PTE_BACKED (PTE_P | PTE_HIDDEN)
#define PTE_ADDR 0x000ffffffffff000ULL
#define PTE_FLAGS (PTE_P | PTE_RW | PTE_US)

#define VMA_MAX 1024
#define DIRTY_MAX 256 /* unmapped ranges that may hold frames */
#define FAULT_AROUND (64u << 10)
/* Accessible mappings are placed top-down above it, reservations below. */
#define VMA_SPLIT (VMA_BASE + (VMA_END - VMA_BASE) / 2)

struct vma {
	uint64_t start, end;
	bool access; /* false: PROT_NONE */
};

static struct vma vmas[VMA_MAX];
static unsigned nr_vmas;
static struct {
	uint64_t start, end;
} dirty[DIRTY_MAX];
static unsigned nr_dirty;
static uint64_t bound_bytes; /* RAM backing this window now */
static uint64_t nr_flushes;

bool vma_window(uint64_t addr, uint64_t len)
{
	return addr >= VMA_BASE && addr <= VMA_END && len <= VMA_END - addr;
}

uint64_t vma_bound_bytes(void)
{
	return bound_bytes;
}

uint64_t vma_flushes(void)
{
	return nr_flushes;
}

/* --- page tables --- */

static uint64_t *table(uint64_t entry)
{
	return (uint64_t *)(uintptr_t)(entry & PTE_ADDR);
}

static uint64_t new_table(void)
{
	return mm_alloc_top(PAGE_SIZE); /* zeroed */
}

/* The page-table page covering va (level 1), creating the levels above
 * it; with `fresh`, a missing level-1 table is allocated but not linked:
 * *link receives the PD entry to write once it is filled. NULL when the
 * table is missing (and !create) or RAM is exhausted. */
static uint64_t *pt_of(uint64_t va, bool create, uint64_t **link)
{
	uint64_t *t = (uint64_t *)(uintptr_t)EMBER_PML4_GPA;
	int shift = 39;

	if (link)
		*link = NULL;
	for (int level = 4; level > 1; level--, shift -= 9) {
		uint64_t *e = &t[(va >> shift) & 511];

		if (!(*e & PTE_P)) {
			uint64_t n;

			if (!create)
				return NULL;
			n = new_table();
			if (!n)
				return NULL;
			if (level == 2 && link) {
				/* The caller fills it, then links it. */
				*link = e;
				return (uint64_t *)(uintptr_t)n;
			}
			*e = n | PTE_FLAGS;
		}
		if (*e & PTE_PS)
			return NULL; /* a large page: not ours */
		t = table(*e);
	}
	return t;
}

static uint64_t *pte_of(uint64_t va)
{
	uint64_t *pt = pt_of(va, false, NULL);

	return pt ? &pt[(va >> 12) & 511] : NULL;
}

/* Gives the pages of [start, end) (page-aligned, within one page table's
 * 2 MiB) that have no frame one, present; hidden ones become present if
 * `show`. 0 or -ENOMEM (what was backed so far stays). */
static int back_block(uint64_t start, uint64_t end, bool show)
{
	uint64_t *link, *pt = pt_of(start, true, &link);
	uint64_t frames = 0, left = 0;
	int ret = 0;

	if (!pt)
		return -ENOMEM;
	for (uint64_t va = start; va < end; va += PAGE_SIZE) {
		uint64_t *e = &pt[(va >> 12) & 511];

		if (*e & PTE_BACKED) {
			if (show && (*e & PTE_HIDDEN))
				*e = (*e & ~PTE_HIDDEN) | PTE_P;
			continue;
		}
		if (!left) {
			/* As contiguous as RAM allows, halving down to one
			 * page (fewer range-table entries in mm.c). */
			uint64_t want = end - va;

			while (want >= PAGE_SIZE &&
			       !(frames = mm_alloc_top(want)))
				want = PAGE_DOWN(want / 2);
			if (!frames) {
				ret = -ENOMEM;
				break;
			}
			left = want / PAGE_SIZE;
			bound_bytes += want;
		}
		*e = frames | PTE_FLAGS;
		frames += PAGE_SIZE;
		left--;
	}
	if (left) {
		/* Part of a chunk was not needed (backed pages in between). */
		mm_release(frames, frames + left * PAGE_SIZE);
		bound_bytes -= left * PAGE_SIZE;
	}
	if (link) /* a fresh page table, filled: now it goes live */
		*link = (uint64_t)(uintptr_t)pt | PTE_FLAGS;
	return ret;
}

/* Backs every page of [start, end). */
static int back(uint64_t start, uint64_t end, bool show)
{
	for (uint64_t va = start; va < end;) {
		uint64_t stop = MIN(end, (va | ((2ULL << 20) - 1)) + 1);
		int ret = back_block(va, stop, show);

		if (ret)
			return ret;
		va = stop;
	}
	return 0;
}

/* Frames taken out of page tables wait here, in contiguous runs, until the
 * TLB flush that makes them unreachable; then they go back to mm.c. */
#define RUNS_MAX 64
struct release {
	uint64_t run[RUNS_MAX][2];
	unsigned nr;
	bool flush;          /* a present entry was cleared */
};

static void flush_tlb(void)
{
	hypercall(EMBER_HC_FLUSH_TLB, 0);
	nr_flushes++;
}

static void release_all(struct release *rl)
{
	if (rl->flush)
		flush_tlb();
	for (unsigned i = 0; i < rl->nr; i++) {
		mm_release(rl->run[i][0], rl->run[i][1]);
		bound_bytes -= rl->run[i][1] - rl->run[i][0];
	}
	rl->nr = 0;
	rl->flush = false;
}

static void release_frame(struct release *rl, uint64_t f)
{
	if (rl->nr && rl->run[rl->nr - 1][1] == f) {
		rl->run[rl->nr - 1][1] += PAGE_SIZE;
		return;
	}
	if (rl->nr == RUNS_MAX)
		release_all(rl); /* an early flush keeps the buffer small */
	rl->run[rl->nr][0] = f;
	rl->run[rl->nr][1] = f + PAGE_SIZE;
	rl->nr++;
}

enum strip_how {
	STRIP_ZERO,      /* zero the frames (a new mapping, DONTNEED) */
	STRIP_ZERO_SHOW, /* ... and make them present (accessible) */
	STRIP_ZERO_HIDE, /* ... and hide them (PROT_NONE) */
	STRIP_HIDE,      /* mprotect(PROT_NONE): hide, flush if present */
	STRIP_SHOW,      /* mprotect to accessible */
	STRIP_FREE,      /* reclaim: clear, flush, free the frames */
};

/* Zeroes the frame of entry e for page va: through va when it is present
 * (its translation is the one in use), else through the identity map. */
static void zero_frame(uint64_t va, uint64_t e)
{
	memset((void *)(uintptr_t)(e & PTE_P ? va : e & PTE_ADDR), 0, PAGE_SIZE);
}

/* Walks the frames bound in [start, end) and does `how` to each. */
static void strip(uint64_t start, uint64_t end, enum strip_how how)
{
	struct release rl;

	rl.nr = 0;
	rl.flush = false;
	for (uint64_t va = start; va < end;) {
		uint64_t *pt = pt_of(va, false, NULL);
		uint64_t stop = MIN(end, (va | ((2ULL << 20) - 1)) + 1);

		for (; pt && va < stop; va += PAGE_SIZE) {
			uint64_t *e = &pt[(va >> 12) & 511], v = *e;

			if (!(v & PTE_BACKED))
				continue;
			switch (how) {
			case STRIP_ZERO:
				zero_frame(va, v);
				break;
			case STRIP_ZERO_SHOW:
				zero_frame(va, v);
				/* fall through */
			case STRIP_SHOW:
				if (v & PTE_HIDDEN)
					*e = (v & ~PTE_HIDDEN) | PTE_P;
				break;
			case STRIP_ZERO_HIDE:
				zero_frame(va, v);
				/* fall through */
			case STRIP_HIDE:
				if (v & PTE_P) {
					*e = (v & ~PTE_P) | PTE_HIDDEN;
					rl.flush = how == STRIP_HIDE;
				}
				break;
			case STRIP_FREE:
				rl.flush |= !!(v & PTE_P);
				release_frame(&rl, v & PTE_ADDR);
				*e = 0;
				break;
			}
		}
		va = stop;
	}
	if (how == STRIP_HIDE && rl.flush)
		flush_tlb(); /* PROT_NONE on used pages: enforced at once */
	else
		release_all(&rl);
}

/* Does [start, end) hold any frame? */
static bool has_frames(uint64_t start, uint64_t end)
{
	for (uint64_t va = start; va < end;) {
		uint64_t *pt = pt_of(va, false, NULL);
		uint64_t stop = MIN(end, (va | ((2ULL << 20) - 1)) + 1);

		for (; pt && va < stop; va += PAGE_SIZE)
			if (pt[(va >> 12) & 511] & PTE_BACKED)
				return true;
		va = stop;
	}
	return false;
}

/* --- the mapping table --- */

static bool table_ins(unsigned i, uint64_t start, uint64_t end, bool access)
{
	if (nr_vmas == VMA_MAX)
		return false;
	memmove(&vmas[i + 1], &vmas[i], (nr_vmas - i) * sizeof(vmas[0]));
	vmas[i] = (struct vma){ start, end, access };
	nr_vmas++;
	return true;
}

static void table_del(unsigned i)
{
	memmove(&vmas[i], &vmas[i + 1], (nr_vmas - i - 1) * sizeof(vmas[0]));
	nr_vmas--;
}

/* Removes [start, end) from the table (splitting). -ENOMEM if a split
 * needs a slot the table does not have (nothing changed then). */
static int table_cut(uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < nr_vmas; i++) {
		struct vma *v = &vmas[i];

		if (v->start < start && v->end > end && nr_vmas == VMA_MAX)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < nr_vmas;) {
		struct vma *v = &vmas[i];

		if (v->end <= start || v->start >= end) {
			i++;
		} else if (v->start < start && v->end > end) {
			uint64_t e = v->end;

			v->end = start;
			table_ins(i + 1, end, e, v->access);
			return 0;
		} else if (v->start < start) {
			v->end = start;
			i++;
		} else if (v->end > end) {
			v->start = end;
			i++;
		} else {
			table_del(i);
		}
	}
	return 0;
}

static int table_add(uint64_t start, uint64_t end, bool access)
{
	unsigned i;
	int ret = table_cut(start, end);

	if (ret)
		return ret;
	for (i = 0; i < nr_vmas && vmas[i].start < start; i++)
		;
	return table_ins(i, start, end, access) ? 0 : -ENOMEM;
}

static const struct vma *find(uint64_t va)
{
	unsigned lo = 0, hi = nr_vmas;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (vmas[mid].end <= va)
			lo = mid + 1;
		else if (vmas[mid].start > va)
			hi = mid;
		else
			return &vmas[mid];
	}
	return NULL;
}

static bool range_free(uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < nr_vmas; i++)
		if (vmas[i].start < end && vmas[i].end > start)
			return false;
	return true;
}

bool vma_range_free(uint64_t addr, uint64_t len)
{
	return range_free(addr, addr + PAGE_UP(len));
}

/* The highest free gap of len bytes in [lo, hi) (top-down, like Linux's
 * mmap), optionally one that holds no frames; 0 if none. */
static uint64_t find_gap_in(uint64_t lo, uint64_t hi, uint64_t len,
			    bool clean)
{
	uint64_t top = hi, bottom;
	unsigned i = nr_vmas;

	for (;;) {
		/* The gap under `top` reaches down to the highest mapping
		 * that starts below it. */
		while (i > 0 && vmas[i - 1].start >= top)
			i--;
		bottom = i > 0 ? MAX(vmas[i - 1].end, lo) : lo;
		while (top > bottom && top - bottom >= len) {
			if (!clean || !has_frames(top - len, top))
				return top - len;
			top -= len; /* frames there: look lower */
		}
		if (i == 0)
			return 0;
		top = MIN(top, vmas[i - 1].start);
		i--;
		if (top <= lo)
			return 0;
	}
}

/* Where a new mapping goes: accessible ones top-down in the upper arena,
 * where freed ranges (and their frames) come first; reservations in the
 * lower one, never where a frame is bound. */
static uint64_t find_gap(uint64_t len, bool access)
{
	uint64_t a = access ? find_gap_in(VMA_SPLIT, VMA_END, len, false) :
			      find_gap_in(VMA_BASE, VMA_SPLIT, len, true);

	if (!a) /* that arena is full: anywhere */
		a = find_gap_in(VMA_BASE, VMA_END, len, !access);
	return a;
}

/* Remembers an unmapped range whose frames stay bound for now. */
static void note_dirty(uint64_t start, uint64_t end)
{
	if (nr_dirty == DIRTY_MAX)
		vma_reclaim();
	if (nr_dirty < DIRTY_MAX) {
		dirty[nr_dirty].start = start;
		dirty[nr_dirty].end = end;
		nr_dirty++;
	}
}

uint64_t vma_reclaim(void)
{
	uint64_t before = bound_bytes;
	struct release rl;

	rl.nr = 0;
	rl.flush = false;
	/* The parts of unmapped ranges that no mapping took again. */
	for (unsigned d = 0; d < nr_dirty; d++) {
		for (uint64_t va = dirty[d].start; va < dirty[d].end;) {
			uint64_t *pt = pt_of(va, false, NULL);
			uint64_t stop = MIN(dirty[d].end,
					    (va | ((2ULL << 20) - 1)) + 1);

			for (; pt && va < stop; va += PAGE_SIZE) {
				uint64_t *e = &pt[(va >> 12) & 511];

				if (!(*e & PTE_BACKED) || find(va))
					continue;
				rl.flush |= !!(*e & PTE_P);
				release_frame(&rl, *e & PTE_ADDR);
				*e = 0;
			}
			va = stop;
		}
	}
	nr_dirty = 0;
	release_all(&rl);
	return before - bound_bytes;
}

long vma_map(uint64_t addr, uint64_t len, bool access, bool fixed)
{
	uint64_t a;
	int ret;

	len = PAGE_UP(len);
	if (!len || len > VMA_END - VMA_BASE)
		return -ENOMEM;
	if (fixed) {
		if ((addr & (PAGE_SIZE - 1)) || !vma_window(addr, len))
			return -EINVAL;
		a = addr;
	} else if (addr && !(addr & (PAGE_SIZE - 1)) &&
		   vma_window(addr, len) && range_free(addr, addr + len) &&
		   (access || !has_frames(addr, addr + len))) {
		a = addr; /* the hint is free: take it (Go's arena hints) */
	} else {
		a = find_gap(len, access);
		if (!a)
			return -ENOMEM;
	}
	ret = table_add(a, a + len, access);
	if (ret)
		return ret;
	/* Frames still bound there (from what was mapped before) serve the
	 * new mapping, as fresh zero pages. */
	strip(a, a + len, access ? STRIP_ZERO_SHOW : STRIP_ZERO_HIDE);
	return (long)a;
}

long vma_unmap(uint64_t addr, uint64_t len)
{
	int ret;

	len = PAGE_UP(len);
	ret = table_cut(addr, addr + len);
	if (ret)
		return ret;
	/* The frames stay where they are: reused if this range is mapped
	 * again, reclaimed when RAM runs short. */
	if (has_frames(addr, addr + len))
		note_dirty(addr, addr + len);
	return 0;
}

long vma_protect(uint64_t addr, uint64_t len, bool access)
{
	uint64_t end = addr + PAGE_UP(len);

	/* Linux: -ENOMEM unless all of the range is mapped. */
	for (uint64_t va = addr; va < end;) {
		const struct vma *v = find(va);

		if (!v)
			return -ENOMEM;
		va = v->end;
	}
	/* Re-add piece by piece, keeping the table's order. */
	for (uint64_t va = addr; va < end;) {
		const struct vma *v = find(va);
		uint64_t stop = MIN(end, v->end);
		int ret;

		if (v->access != access) {
			ret = table_add(va, stop, access);
			if (ret)
				return ret;
		}
		va = stop;
	}
	strip(addr, end, access ? STRIP_SHOW : STRIP_HIDE);
	return 0;
}

long vma_dontneed(uint64_t addr, uint64_t len)
{
	/* Anonymous private memory reads back as zero. The frames stay
	 * (handing them back would cost a TLB flush, see the header). */
	strip(addr, addr + PAGE_UP(len), STRIP_ZERO);
	return 0;
}

bool vma_access_ok(uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len;

	if (!vma_window(addr, len))
		return false;
	if (!len)
		return true;
	for (uint64_t va = PAGE_DOWN(addr); va < end;) {
		const struct vma *v = find(va);
		uint64_t stop;

		if (!v || !v->access)
			return false;
		stop = MIN(PAGE_UP(end), v->end);
		/* Back it now: the kernel never takes faults itself. */
		for (uint64_t p = va; p < stop;) {
			uint64_t *e = pte_of(p);
			uint64_t blk = MIN(stop, (p | ((2ULL << 20) - 1)) + 1);

			if (!e || !(*e & PTE_P)) {
				if (back(p, blk, true))
					return false;
				p = blk;
			} else {
				p += PAGE_SIZE;
			}
		}
		va = stop;
	}
	return true;
}

int vma_fault(uint64_t addr)
{
	const struct vma *v = vma_window(addr, 1) ? find(addr) : NULL;
	uint64_t *e, lo, hi;

	if (!v)
		return VMA_FAULT_SEGV;
	if (!v->access)
		return VMA_FAULT_ACCERR;
	e = pte_of(addr);
	if (e && (*e & PTE_P))
		return VMA_FAULT_DONE; /* a stale miss: just retry */
	/* The aligned block around it, within the mapping. */
	lo = MAX(addr & ~(uint64_t)(FAULT_AROUND - 1), v->start);
	hi = MIN((addr | (FAULT_AROUND - 1)) + 1, v->end);
	return back(lo, hi, true) ? VMA_FAULT_OOM : VMA_FAULT_DONE;
}
