/*
 * blk.c - guest driver for virtio-blk (virtio 1.2, 5.2), polling.
 * See blk.h for the contract.
 */
#include "blk.h"

#define GBLK_DEFAULT_QSIZE 128
#define GBLK_DEFAULT_SPINS 2000

int gblk_init(struct gblk *b, uintptr_t base, uint16_t qsize)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->spins = GBLK_DEFAULT_SPINS;
	ret = gmmio_probe(&b->dev, base);
	if (ret)
		return ret;
	if (b->dev.device_id != GBLK_DEVICE_ID)
		return -GD_ENODEV;
	ret = gmmio_begin(&b->dev);
	if (ret)
		return ret;
	/* Only what we use (5.2.3): RO must be honoured, FLUSH is how writes
	 * become durable when the device caches them (5.2.6.2). */
	ret = gmmio_negotiate(&b->dev, (1ULL << GBLK_F_RO) |
					       (1ULL << GBLK_F_FLUSH));
	if (ret)
		return ret;
	b->read_only = gmmio_has(&b->dev, GBLK_F_RO);
	b->has_flush = gmmio_has(&b->dev, GBLK_F_FLUSH);
	/* 5.2.4: capacity is le64 at offset 0, in 512-byte sectors. */
	b->capacity = gmmio_config64(&b->dev, 0);

	ret = gvq_init(&b->vq, &b->dev, 0, qsize ? qsize : GBLK_DEFAULT_QSIZE);
	if (ret)
		goto err_fail;
	b->slot = gd_alloc(sizeof(*b->slot) * b->vq.size, 16);
	if (!b->slot) {
		ret = -GD_ENOMEM;
		goto err_fail;
	}
	ret = gmmio_driver_ok(&b->dev);
	if (ret)
		goto err_fail;
	return 0;

err_fail:
	gmmio_fail(&b->dev);
	return ret;
}

static int status_to_err(uint8_t status)
{
	switch (status) {
	case GBLK_S_OK:
		return 0;
	case GBLK_S_UNSUPP:
		return -GD_ENOTSUP;
	default: /* IOERR, or a value the device should never write */
		return -GD_EIO;
	}
}

static struct gblk_slot *get_slot(struct gblk *b)
{
	unsigned i;

	for (i = 0; i < b->vq.size; i++)
		if (!b->slot[i].busy)
			return &b->slot[i];
	return NULL;
}

int gblk_submit(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
		uint32_t len, void *cookie, unsigned flags)
{
	struct gvq_buf out[2], in[2];
	unsigned n_out = 1, n_in = 0;
	struct gblk_slot *s;
	uint64_t nsect = len / GBLK_SECTOR;
	int ret;

	switch (type) {
	case GBLK_T_IN:
	case GBLK_T_OUT:
		if (len == 0 || len % GBLK_SECTOR || len > GBLK_MAX_REQ_BYTES ||
		    !buf)
			return -GD_EINVAL;
		/* sector + nsect must neither wrap nor pass the end. */
		if (sector > b->capacity || nsect > b->capacity - sector)
			return -GD_EINVAL;
		if (type == GBLK_T_OUT && b->read_only &&
		    !(flags & GBLK_F_IGNORE_RO))
			return -GD_EROFS;
		break;
	case GBLK_T_FLUSH:
		if (len != 0)
			return -GD_EINVAL;
		sector = 0; /* 5.2.6: sector is reserved (0) for FLUSH */
		break;
	default:
		return -GD_EINVAL;
	}
	s = get_slot(b);
	if (!s || b->vq.num_free < 3)
		return -GD_ENOSPC;

	s->type = type;
	s->reserved = 0;
	s->sector = sector;
	s->status = 0xff;
	s->cookie = cookie;
	/* 5.2.6: header (readable), data (readable for OUT, writable for
	 * IN), status byte (writable), as three descriptors. */
	out[0].addr = s;
	out[0].len = 16;
	if (type == GBLK_T_OUT) {
		out[1].addr = buf;
		out[1].len = len;
		n_out = 2;
	} else if (type == GBLK_T_IN) {
		in[n_in].addr = buf;
		in[n_in++].len = len;
	}
	in[n_in].addr = &s->status;
	in[n_in++].len = 1;
	ret = gvq_add(&b->vq, out, n_out, in, n_in, s);
	if (ret < 0)
		return ret;
	s->busy = 1;
	b->inflight++;
	return 0;
}

void gblk_kick(struct gblk *b)
{
	gvq_kick(&b->vq);
}

int gblk_reap(struct gblk *b, void **cookie, int *result, bool wait)
{
	struct gblk_slot *s;
	void *c;
	uint32_t len;
	int ret;

	if (b->inflight == 0)
		return 0;
	if (wait)
		ret = gvq_wait_used(&b->vq, &c, &len, b->spins, 0);
	else
		ret = gvq_get_used(&b->vq, &c, &len);
	if (ret <= 0)
		return ret;
	s = c;
	/* gvq_get_used() vouches that c is one of our in-flight cookies. */
	*cookie = s->cookie;
	/* The status byte was preset to 0xff, which no device writes
	 * (5.2.6): if it is still there the device did not complete the
	 * request properly. The used length is not trusted for this, as
	 * Linux does not rely on it either. */
	(void)len;
	*result = status_to_err(*(volatile uint8_t *)&s->status);
	s->busy = 0;
	b->inflight--;
	return 1;
}

/* One synchronous request: submit, kick, wait for exactly it. */
static int do_sync(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
		   uint32_t len, unsigned flags)
{
	void *cookie;
	int result, ret;

	if (b->inflight)
		return -GD_EBUSY;
	ret = gblk_submit(b, type, sector, buf, len, b, flags);
	if (ret)
		return ret;
	gblk_kick(b);
	ret = gblk_reap(b, &cookie, &result, true);
	if (ret < 0)
		return ret;
	return result;
}

static int do_rw(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
		 uint64_t nsect)
{
	uint8_t *p = buf;
	int ret;

	if (sector > b->capacity || nsect > b->capacity - sector)
		return -GD_EINVAL;
	while (nsect) {
		uint64_t n = nsect;

		if (n > GBLK_MAX_REQ_BYTES / GBLK_SECTOR)
			n = GBLK_MAX_REQ_BYTES / GBLK_SECTOR;
		ret = do_sync(b, type, sector, p, (uint32_t)(n * GBLK_SECTOR), 0);
		if (ret)
			return ret;
		sector += n;
		p += n * GBLK_SECTOR;
		nsect -= n;
	}
	return 0;
}

int gblk_read(struct gblk *b, uint64_t sector, void *buf, uint64_t nsect)
{
	return do_rw(b, GBLK_T_IN, sector, buf, nsect);
}

int gblk_write(struct gblk *b, uint64_t sector, const void *buf,
	       uint64_t nsect)
{
	if (b->read_only)
		return -GD_EROFS;
	/* The device only reads the buffer; gvq_buf carries const. */
	return do_rw(b, GBLK_T_OUT, sector, (void *)(uintptr_t)buf, nsect);
}

int gblk_flush(struct gblk *b)
{
	if (!b->has_flush)
		return 0;
	return do_sync(b, GBLK_T_FLUSH, 0, NULL, 0, 0);
}
