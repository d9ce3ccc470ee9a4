#define LOG_MOD "serial"
#include "serial.h"

#include "snapshots/snap.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Register offsets and bits (PC16550D data sheet; Linux's serial_reg.h
 * names). With DLAB set, offsets 0 and 1 are the divisor latch. */
enum {
	UART_RX_TX = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define LCR_DLAB 0x80
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_FIFO 0xc0
#define FCR_FIFO_ENABLE 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define MCR_OUT2 0x08
/* In loopback, MSR's CTS/DSR/RI/DCD mirror MCR's RTS/DTR/OUT1/OUT2. */
#define MSR_DCD 0x80
#define MSR_CTS 0x10
#define MSR_DSR 0x20

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* console gone: keep running the guest */
		p += w;
		n -= (size_t)w;
	}
}

static void flush_locked(struct serial *s)
{
	if (s->buf_len && s->out_fd >= 0)
		write_all(s->out_fd, s->buf, s->buf_len);
	s->buf_len = 0;
}

static void update_irq_locked(struct serial *s)
{
	bool pending = (s->ier & IER_THRI) && s->thri_pending;

	s->iir = (pending ? IIR_THRI : IIR_NO_INT) |
		 ((s->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO : 0);
	/* On a PC, OUT2 gates the UART's interrupt to the PIC. */
	if (s->set_irq)
		s->set_irq(s->irq_opaque, pending && (s->mcr & MCR_OUT2));
}

void serial_init(struct serial *s, int out_fd,
		 void (*set_irq)(void *opaque, int level), void *opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	s->set_irq = set_irq;
	s->irq_opaque = opaque;
	s->iir = IIR_NO_INT;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
}

static void put_byte_locked(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP)
		return; /* loopback: nothing reaches the console */
	s->buf[s->buf_len++] = (char)c;
	if (c == '\n' || s->buf_len == sizeof(s->buf))
		flush_locked(s);
}

static uint8_t msr_value(const struct serial *s)
{
	uint8_t m;

	if (!(s->mcr & MCR_LOOP))
		return s->msr;
	/* RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
	m = (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) |
		      ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
	return m;
}

int serial_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write)
{
	struct serial *s = opaque;
	bool dlab;

	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	dlab = s->lcr & LCR_DLAB;
	if (is_write) {
		uint8_t v = data[0];

		switch (offset) {
		case UART_RX_TX:
			if (dlab) {
				s->dll = v;
			} else {
				put_byte_locked(s, v);
				/* The byte left at once: THR is empty again. */
				s->thri_pending = true;
			}
			break;
		case UART_IER:
			if (dlab) {
				s->dlm = v;
			} else {
				s->ier = v & 0x0f;
				/* Enabling THRI with THR empty interrupts. */
				if (s->ier & IER_THRI)
					s->thri_pending = true;
			}
			break;
		case UART_IIR_FCR:
			s->fcr = v & 0xc9;
			break;
		case UART_LCR:
			s->lcr = v;
			break;
		case UART_MCR:
			s->mcr = v & 0x1f;
			break;
		case UART_SCR:
			s->scr = v;
			break;
		default: /* LSR and MSR are read-only */
			break;
		}
	} else {
		switch (offset) {
		case UART_RX_TX:
			data[0] = dlab ? s->dll : 0; /* no input */
			break;
		case UART_IER:
			data[0] = dlab ? s->dlm : s->ier;
			break;
		case UART_IIR_FCR:
			update_irq_locked(s);
			data[0] = s->iir;
			/* Reading IIR while it reports THRI clears it. */
			if ((s->iir & 0x0f) == IIR_THRI)
				s->thri_pending = false;
			break;
		case UART_LCR:
			data[0] = s->lcr;
			break;
		case UART_MCR:
			data[0] = s->mcr;
			break;
		case UART_LSR:
			data[0] = s->lsr;
			break;
		case UART_MSR:
			data[0] = msr_value(s);
			break;
		default:
			data[0] = s->scr;
			break;
		}
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_destroy(struct serial *s)
{
	serial_flush(s);
	pthread_mutex_destroy(&s->lock);
}

void serial_save(struct serial *s, struct snap_serial *out)
{
	pthread_mutex_lock(&s->lock);
	*out = (struct snap_serial){
		.ier = s->ier, .iir = s->iir, .fcr = s->fcr, .lcr = s->lcr,
		.mcr = s->mcr, .lsr = s->lsr, .msr = s->msr, .scr = s->scr,
		.dll = s->dll, .dlm = s->dlm,
	};
	pthread_mutex_unlock(&s->lock);
}

void serial_restore(struct serial *s, const struct snap_serial *in)
{
	/* The registers a driver programs; LSR and MSR describe the line,
	 * which is ours (always ready, nothing received), not the guest's. */
	pthread_mutex_lock(&s->lock);
	s->ier = in->ier;
	s->iir = in->iir;
	s->fcr = in->fcr;
	s->lcr = in->lcr;
	s->mcr = in->mcr;
	s->scr = in->scr;
	s->dll = in->dll;
	s->dlm = in->dlm;
	pthread_mutex_unlock(&s->lock);
}
