/*
 * proto/invoke.c - frame header codec and incremental decoder.
 *
 * Freestanding-safe: uses memcpy only (the micro guest provides it). Every
 * field is (de)serialised byte by byte in little-endian order, so the code
 * is independent of host endianness and alignment.
 */
#include <string.h>

#include "proto/invoke.h"

enum { DEC_HEADER = 0, DEC_PAYLOAD, DEC_FAILED };

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

uint32_t ember_inv_max_len(uint8_t type)
{
	switch (type) {
	case EMBER_INV_READY:
		return EMBER_INV_MAX_READY;
	case EMBER_INV_INVOKE:
	case EMBER_INV_RESULT:
		return EMBER_INV_MAX_PAYLOAD;
	case EMBER_INV_LOG:
		return EMBER_INV_MAX_LOG;
	case EMBER_INV_ERROR:
		return EMBER_INV_MAX_ERROR;
	case EMBER_INV_PING:
	case EMBER_INV_PONG:
		return EMBER_INV_MAX_PING;
	case EMBER_INV_SYNC:
		return EMBER_INV_MAX_SYNC;
	default:
		return 0;
	}
}

/* Flag bits defined for each type; everything else is reserved (must be 0). */
static uint16_t allowed_flags(uint8_t type)
{
	switch (type) {
	case EMBER_INV_LOG:
		return EMBER_INV_F_LOG_DROPPED;
	case EMBER_INV_READY:
		return EMBER_INV_F_READY_SYNC;
	default:
		return 0;
	}
}

/* Is `arg` meaningful for this type? Unused args are reserved and must be 0
 * so that a later version can give them a meaning. */
static int arg_ok(uint8_t type, uint32_t arg)
{
	switch (type) {
	case EMBER_INV_INVOKE: /* deadline ms */
	case EMBER_INV_RESULT: /* function status */
	case EMBER_INV_ERROR:  /* code; unknown codes are tolerated */
		return 1;
	case EMBER_INV_LOG:
		return arg == EMBER_INV_STREAM_STDOUT ||
		       arg == EMBER_INV_STREAM_STDERR;
	default:
		return arg == 0;
	}
}

static int type_known(uint8_t type)
{
	return type >= EMBER_INV_READY && type <= EMBER_INV_TYPE_MAX;
}

int ember_inv_hdr_encode(uint8_t out[EMBER_INV_HDR_SIZE], uint8_t type,
			 uint16_t flags, uint32_t arg, uint32_t length,
			 uint64_t id)
{
	if (!type_known(type) || (flags & ~allowed_flags(type)) ||
	    !arg_ok(type, arg) || length > ember_inv_max_len(type))
		return EMBER_INV_EINVAL;
	put_le32(out, EMBER_INV_MAGIC);
	out[4] = EMBER_INV_VERSION;
	out[5] = type;
	put_le16(out + 6, flags);
	put_le32(out + 8, arg);
	put_le32(out + 12, length);
	put_le64(out + 16, id);
	return 0;
}

int ember_inv_hdr_decode(const uint8_t in[EMBER_INV_HDR_SIZE],
			 struct ember_inv_hdr *hdr)
{
	hdr->magic = get_le32(in);
	hdr->version = in[4];
	hdr->type = in[5];
	hdr->flags = get_le16(in + 6);
	hdr->arg = get_le32(in + 8);
	hdr->length = get_le32(in + 12);
	hdr->id = get_le64(in + 16);

	/* Magic first: anything else is not our protocol at all (or the
	 * stream lost sync), and the remaining fields mean nothing. */
	if (hdr->magic != EMBER_INV_MAGIC)
		return EMBER_INV_EMAGIC;
	if (hdr->version != EMBER_INV_VERSION)
		return EMBER_INV_EVERSION;
	if (!type_known(hdr->type))
		return EMBER_INV_ETYPE;
	if ((hdr->flags & ~allowed_flags(hdr->type)) ||
	    !arg_ok(hdr->type, hdr->arg))
		return EMBER_INV_ERESERVED;
	if (hdr->length > ember_inv_max_len(hdr->type))
		return EMBER_INV_E2BIG;
	return 0;
}

long ember_inv_frame_encode(uint8_t *out, size_t cap, uint8_t type,
			    uint16_t flags, uint32_t arg, uint64_t id,
			    const void *payload, uint32_t len)
{
	int ret;

	if (!out || (len && !payload))
		return EMBER_INV_EINVAL;
	if (cap < EMBER_INV_HDR_SIZE || cap - EMBER_INV_HDR_SIZE < len)
		return EMBER_INV_ENOSPC;
	ret = ember_inv_hdr_encode(out, type, flags, arg, len, id);
	if (ret)
		return ret;
	if (len)
		memcpy(out + EMBER_INV_HDR_SIZE, payload, len);
	return (long)EMBER_INV_HDR_SIZE + (long)len;
}

void ember_inv_sync_encode(uint8_t out[EMBER_INV_SYNC_LEN],
			   uint64_t realtime_ns,
			   const uint8_t entropy[EMBER_INV_SYNC_ENTROPY])
{
	put_le64(out, realtime_ns);
	memcpy(out + 8, entropy, EMBER_INV_SYNC_ENTROPY);
}

int ember_inv_sync_decode(const uint8_t *p, uint32_t len,
			  uint64_t *realtime_ns,
			  uint8_t entropy[EMBER_INV_SYNC_ENTROPY])
{
	if (!p || len < EMBER_INV_SYNC_LEN)
		return EMBER_INV_ETRUNC;
	*realtime_ns = get_le64(p);
	memcpy(entropy, p + 8, EMBER_INV_SYNC_ENTROPY);
	return 0;
}

const char *ember_inv_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case EMBER_INV_EMAGIC:
		return "bad frame magic";
	case EMBER_INV_EVERSION:
		return "unsupported protocol version";
	case EMBER_INV_ETYPE:
		return "unknown frame type";
	case EMBER_INV_E2BIG:
		return "frame payload over the limit for its type";
	case EMBER_INV_ERESERVED:
		return "reserved frame field not zero";
	case EMBER_INV_ETRUNC:
		return "stream ended inside a frame";
	case EMBER_INV_ENOSPC:
		return "buffer too small for frame";
	case EMBER_INV_EINVAL:
		return "invalid argument";
	case EMBER_INV_ESTATE:
		return "decoder failed earlier";
	default:
		return "unknown protocol error";
	}
}

const char *ember_inv_err_name(uint32_t err_code)
{
	switch (err_code) {
	case EMBER_ERR_CRASH:
		return "crash";
	case EMBER_ERR_TIMEOUT:
		return "timeout";
	case EMBER_ERR_OOM:
		return "out of memory";
	case EMBER_ERR_PROTOCOL:
		return "protocol error";
	case EMBER_ERR_TOO_LARGE:
		return "payload too large";
	case EMBER_ERR_NOSYS:
		return "unsupported by the runtime";
	case EMBER_ERR_INTERNAL:
		return "internal error";
	case EMBER_ERR_BUSY:
		return "busy";
	default:
		return "unknown error";
	}
}

const char *ember_inv_type_name(uint8_t type)
{
	static const char *const names[EMBER_INV_TYPE_MAX + 1] = {
		[EMBER_INV_READY] = "READY", [EMBER_INV_INVOKE] = "INVOKE",
		[EMBER_INV_RESULT] = "RESULT", [EMBER_INV_LOG] = "LOG",
		[EMBER_INV_ERROR] = "ERROR", [EMBER_INV_PING] = "PING",
		[EMBER_INV_PONG] = "PONG", [EMBER_INV_SYNC] = "SYNC",
	};
	return type_known(type) ? names[type] : "UNKNOWN";
}

void ember_inv_dec_init(struct ember_inv_dec *d)
{
	memset(d, 0, sizeof(*d));
	d->state = DEC_HEADER;
}

int ember_inv_dec_idle(const struct ember_inv_dec *d)
{
	return d->state == DEC_HEADER && d->hgot == 0;
}

int ember_inv_dec_finish(const struct ember_inv_dec *d)
{
	if (d->state == DEC_FAILED)
		return d->err;
	return ember_inv_dec_idle(d) ? 0 : EMBER_INV_ETRUNC;
}

int ember_inv_dec_set_buf(struct ember_inv_dec *d, uint8_t *buf, uint32_t cap)
{
	/* Only between the HEADER event and the first payload byte, so the
	 * payload never straddles two buffers. */
	if (d->state != DEC_PAYLOAD || d->pgot != 0)
		return EMBER_INV_ESTATE;
	if (!buf || cap < d->hdr.length)
		return EMBER_INV_ENOSPC;
	d->buf = buf;
	d->cap = cap;
	return 0;
}

int ember_inv_dec_feed(struct ember_inv_dec *d, const void *data, size_t n,
		       size_t *used)
{
	const uint8_t *p = data;
	size_t take;
	int ret;

	*used = 0;
	if (d->state == DEC_FAILED)
		return EMBER_INV_ESTATE;

	if (d->state == DEC_HEADER) {
		take = EMBER_INV_HDR_SIZE - d->hgot;
		if (take > n)
			take = n;
		memcpy(d->hbuf + d->hgot, p, take);
		d->hgot += (uint32_t)take;
		*used = take;
		if (d->hgot < EMBER_INV_HDR_SIZE)
			return EMBER_INV_DEC_MORE;
		/* The whole header is checked before a single payload byte is
		 * looked at; a bad header fails the stream for good. */
		ret = ember_inv_hdr_decode(d->hbuf, &d->hdr);
		if (ret) {
			d->state = DEC_FAILED;
			d->err = ret;
			return ret;
		}
		d->pgot = 0;
		d->buf = NULL;
		d->cap = 0;
		/* An empty frame is complete with its header: one FRAME event
		 * and no HEADER event, so callers never need a zero-length feed
		 * to make progress. */
		if (d->hdr.length == 0) {
			d->hgot = 0;
			return EMBER_INV_DEC_FRAME;
		}
		d->state = DEC_PAYLOAD;
		return EMBER_INV_DEC_HEADER;
	}

	/* DEC_PAYLOAD */
	take = d->hdr.length - d->pgot;
	if (take > n)
		take = n;
	if (take && d->buf)
		memcpy(d->buf + d->pgot, p, take);
	d->pgot += (uint32_t)take;
	*used = take;
	if (d->pgot < d->hdr.length)
		return EMBER_INV_DEC_MORE;
	d->state = DEC_HEADER;
	d->hgot = 0;
	return EMBER_INV_DEC_FRAME;
}
