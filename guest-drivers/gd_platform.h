/*
 * gd_platform.h - what Ember's guest drivers need from their environment.
 *
 * Owns: the seam between the freestanding virtio drivers in guest-drivers/
 * and whatever runs them (guests/rt for the test guests, guest-micro/ for the
 * micro guest, a cmocka test on the host). The environment implements the
 * four gd_* functions below; barriers and MMIO accessors are inline here.
 * The drivers take no interrupts and never block except through gd_idle().
 * They are single-threaded: the caller serialises all calls on one device.
 */
#ifndef EMBER_GD_PLATFORM_H
#define EMBER_GD_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if __STDC_HOSTED__
#include <string.h>
#else
/* Freestanding: gd_string.c provides these. */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
#endif

/* Error numbers (Linux values): drivers return 0 / n >= 0 or -GD_E*. */
#define GD_EIO 5
#define GD_EAGAIN 11
#define GD_ENOMEM 12
#define GD_EBUSY 16
#define GD_ENODEV 19
#define GD_EINVAL 22
#define GD_ENOSPC 28
#define GD_EPIPE 32
#define GD_EROFS 30
#define GD_ENOTSUP 95
#define GD_EADDRINUSE 98
#define GD_ECONNRESET 104
#define GD_ENOTCONN 107
#define GD_ETIMEDOUT 110
#define GD_ECONNREFUSED 111

/* --- implemented by the environment --- */

/* Zeroed, physically contiguous memory aligned to `align` (a power of two,
 * at most 4096), that devices may DMA to; NULL when exhausted. Never freed:
 * drivers allocate at init only. */
void *gd_alloc(size_t size, size_t align);
/* Guest-physical address of a pointer from gd_alloc or of a caller buffer
 * (which must be physically contiguous). */
uint64_t gd_virt_to_phys(const void *p);
/* Called by polling loops that found nothing to do for a while: spin, or
 * sleep in the VMM (EMBER_HC_WAIT) until a device pushes a used buffer. */
void gd_idle(void);
/* A monotonic clock in ns (0 if unknown: timeouts then never fire). */
uint64_t gd_now_ns(void);

/* --- barriers (x86-64, TSO) ---
 * Rings live in ordinary write-back memory. x86 keeps stores ordered with
 * stores and loads with loads, so the virtio "write memory barrier" before
 * publishing avail->idx and the "read barrier" after reading used->idx only
 * have to stop the compiler (as Linux's virt_wmb/virt_rmb on x86). A store
 * followed by a load of another location (avail->idx, then used->flags for
 * notification suppression, virtio 1.2 2.7.13) needs a full fence. */
#define gd_wmb() __asm__ volatile("" ::: "memory")
#define gd_rmb() __asm__ volatile("" ::: "memory")
#define gd_mb() __asm__ volatile("mfence" ::: "memory")

/* --- MMIO --- virtio-mmio registers are 32-bit; config space also 8/16
 * (virtio 1.2, 4.2.2.2: each field accessed at its own width). Unit tests
 * (built with EMBER_TESTING) provide these as functions over a fake device. */
#if defined(GD_FAKE_MMIO) || defined(EMBER_TESTING)
uint32_t gd_mmio_read32(uintptr_t addr);
void gd_mmio_write32(uintptr_t addr, uint32_t v);
uint16_t gd_mmio_read16(uintptr_t addr);
uint8_t gd_mmio_read8(uintptr_t addr);
#else
static inline uint32_t gd_mmio_read32(uintptr_t addr)
{
	return *(volatile uint32_t *)addr;
}
static inline void gd_mmio_write32(uintptr_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}
static inline uint16_t gd_mmio_read16(uintptr_t addr)
{
	return *(volatile uint16_t *)addr;
}
static inline uint8_t gd_mmio_read8(uintptr_t addr)
{
	return *(volatile uint8_t *)addr;
}
#endif

#endif
