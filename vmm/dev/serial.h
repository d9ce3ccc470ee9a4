/*
 * serial.h - a 16550A UART (8250 family) at COM1, output only.
 *
 * Owns: the UART registers and the console output. Bytes the guest writes
 * to THR go to an fd (stdout, a file) through a small line buffer; input is
 * not supported (the receive buffer is always empty). Called from vCPU
 * threads through the bus; a mutex serialises them.
 */
#ifndef EMBER_SERIAL_H
#define EMBER_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SERIAL_BUF 256

struct serial {
	pthread_mutex_t lock;
	int out_fd;                 /* -1: output discarded */
	/* Raises (level 1) or lowers the UART's interrupt line; NULL when the
	 * guest takes no interrupts. */
	void (*set_irq)(void *opaque, int level);
	void *irq_opaque;
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thri_pending;          /* THR-empty interrupt not yet read */
	size_t buf_len;
	char buf[SERIAL_BUF];
};

void serial_init(struct serial *s, int out_fd,
		 void (*set_irq)(void *opaque, int level), void *opaque);
/* The bus handler for the 8 ports at EMBER_PORT_COM1. */
int serial_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write);
/* Writes out anything buffered. */
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);

/* Persistence: the registers into / from a snapshot's struct snap_serial
 * (snapshots/snap.h). Any thread; takes the UART's lock. */
struct snap_serial;
void serial_save(struct serial *s, struct snap_serial *out);
void serial_restore(struct serial *s, const struct snap_serial *in);

#endif
