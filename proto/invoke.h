/*
 * proto/invoke.h - Ember's function invocation protocol: the frames.
 *
 * Owns: the wire format spoken between the host (vmm/invoke.c, emberd), the
 * guest (micro guest kernel, guest-init) and the handler (sdk/): the frame
 * header, the frame types and their type-specific argument, the limits, a
 * header validator and an incremental decoder over a byte stream. It does no
 * I/O and never allocates: callers own every buffer.
 *
 * Shared, unchanged, by hosted and freestanding code: C99, only <stddef.h>
 * and <stdint.h>, and the .c file needs nothing beyond memcpy/memset. Errors
 * are therefore this file's own negative codes (EMBER_INV_E*), not errno.
 * docs/function-abi.md is the prose specification; any layout change bumps
 * EMBER_INV_VERSION.
 *
 * Wire format: every frame is a 24-byte header followed by `length` payload
 * bytes. All fields are little-endian and are encoded/decoded byte by byte,
 * so no struct is ever overlaid on wire bytes.
 *
 *   offset size field
 *        0    4 magic    0x46424d45 (the bytes "EMBF")
 *        4    1 version  EMBER_INV_VERSION
 *        5    1 type     enum ember_inv_type
 *        6    2 flags    per-type bits (EMBER_INV_F_*); undefined bits are 0
 *        8    4 arg      per-type argument (see the types); 0 when unused
 *       12    4 length   payload bytes that follow the header
 *       16    8 id       request id (see the types)
 *
 * Lifecycle on one connection (host <-> guest):
 *   guest -> host READY          once, when the handler first waits for work
 *   host -> guest SYNC           only if READY asked for it (F_READY_SYNC)
 *   host -> guest INVOKE         one request at a time
 *   guest -> host LOG*           handler stdout/stderr chunks, interleaved
 *   guest -> host RESULT|ERROR   exactly one per INVOKE, same id
 * Either side may send PING at any time between frames; the peer answers PONG
 * with the same id and payload.
 */
#ifndef EMBER_PROTO_INVOKE_H
#define EMBER_PROTO_INVOKE_H

#include <stddef.h>
#include <stdint.h>

#define EMBER_INV_MAGIC 0x46424d45u /* "EMBF" in memory order */
#define EMBER_INV_VERSION 1
#define EMBER_INV_HDR_SIZE 24

/* The vsock port the guest (micro guest or guest-init) listens on for the
 * host. The host connects with the hybrid vsock handshake
 * "CONNECT 1024\n" -> "OK <n>\n" on the VM's vsock Unix socket. */
#define EMBER_INV_VSOCK_PORT 1024

/* Limits on `length`, per type. INVOKE and RESULT carry up to 6 MiB of
 * function payload (Lambda's synchronous limit); the others are small so a
 * receiver can keep them in a fixed buffer. */
#define EMBER_INV_MAX_PAYLOAD 6291456u /* INVOKE, RESULT */
#define EMBER_INV_MAX_LOG 16384u       /* LOG: one chunk */
#define EMBER_INV_MAX_ERROR 1024u      /* ERROR: message text */
#define EMBER_INV_MAX_READY 256u       /* READY: optional runtime name */
#define EMBER_INV_MAX_PING 256u        /* PING, PONG: opaque echo bytes */
#define EMBER_INV_MAX_SYNC 256u        /* SYNC: see EMBER_INV_SYNC_LEN */

enum ember_inv_type {
	/* guest -> host. arg 0, id 0. Payload: optional runtime name
	 * (text, informational). */
	EMBER_INV_READY = 1,
	/* host -> guest -> handler. arg = deadline in ms from receipt (0 =
	 * none), id = request id chosen by the host (non-zero). Payload: the
	 * request bytes. */
	EMBER_INV_INVOKE = 2,
	/* handler -> guest -> host. arg = status (0 = success, anything else
	 * = the function reported an error; the payload then describes it),
	 * id = the INVOKE's id. Payload: the response bytes. */
	EMBER_INV_RESULT = 3,
	/* guest -> host. arg = stream (EMBER_INV_STREAM_*), id = the request
	 * being served (0 between requests). Payload: raw output bytes. */
	EMBER_INV_LOG = 4,
	/* guest or handler -> host, instead of a RESULT (or, with id 0, about
	 * the connection). arg = code (EMBER_ERR_*), id = the INVOKE's id or 0.
	 * Payload: human-readable message text (not NUL-terminated). */
	EMBER_INV_ERROR = 5,
	/* either way. arg 0, id = anything. PONG returns PING's id/payload. */
	EMBER_INV_PING = 6,
	EMBER_INV_PONG = 7,
	/* host -> guest runtime, never relayed to the handler. arg 0, id 0.
	 * Sent only after a READY carrying EMBER_INV_F_READY_SYNC, before
	 * the first INVOKE on that connection. Payload: the host's wall clock
	 * and fresh entropy (ember_inv_sync_encode), so that a guest restored
	 * from a snapshot steps its clock and reseeds its RNG. */
	EMBER_INV_SYNC = 8,
};
#define EMBER_INV_TYPE_MAX EMBER_INV_SYNC

/* LOG frame arg. */
#define EMBER_INV_STREAM_STDOUT 1
#define EMBER_INV_STREAM_STDERR 2

/* LOG flag: the producer dropped output before this chunk. */
#define EMBER_INV_F_LOG_DROPPED 0x0001u
/* READY flag: "send me a SYNC frame". Set by guest-init (a Linux guest
 * learns the time and entropy from it); the micro guest gets both from its
 * boot info instead and leaves the flag clear. Peers that do not set it
 * never receive SYNC, so adding it changed nothing they can see. */
#define EMBER_INV_F_READY_SYNC 0x0001u

/* SYNC payload: le64 host CLOCK_REALTIME in ns, then 32 bytes from the
 * host's getrandom(). Receivers require at least EMBER_INV_SYNC_LEN bytes
 * and ignore any beyond (room for later fields). */
#define EMBER_INV_SYNC_LEN 40u
#define EMBER_INV_SYNC_ENTROPY 32u

/* ERROR frame codes (arg). Values are part of the ABI. */
#define EMBER_ERR_CRASH 1     /* handler died (signal, exit, fault) */
#define EMBER_ERR_TIMEOUT 2   /* deadline passed before a RESULT */
#define EMBER_ERR_OOM 3       /* out of memory in guest or handler */
#define EMBER_ERR_PROTOCOL 4  /* malformed frame or unexpected type */
#define EMBER_ERR_TOO_LARGE 5 /* a payload over its type's limit */
#define EMBER_ERR_NOSYS 6     /* handler used an unsupported syscall/feature */
#define EMBER_ERR_INTERNAL 7  /* guest-side failure unrelated to the handler */
#define EMBER_ERR_BUSY 8      /* an INVOKE arrived while one is in flight */

/* Error codes of this module: negative, distinct, freestanding. */
#define EMBER_INV_EMAGIC (-1)    /* bad magic */
#define EMBER_INV_EVERSION (-2)  /* unsupported version */
#define EMBER_INV_ETYPE (-3)     /* unknown frame type */
#define EMBER_INV_E2BIG (-4)     /* length over the type's limit */
#define EMBER_INV_ERESERVED (-5) /* undefined flag bit or unused arg set */
#define EMBER_INV_ETRUNC (-6)    /* input ended inside a frame */
#define EMBER_INV_ENOSPC (-7)    /* caller's buffer smaller than needed */
#define EMBER_INV_EINVAL (-8)    /* bad argument from the caller */
#define EMBER_INV_ESTATE (-9)    /* decoder used after an error */

/* A decoded header: host-order copy of the wire fields. */
struct ember_inv_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t arg;
	uint32_t length;
	uint64_t id;
};

/* Largest `length` allowed for frame `type`; 0 for unknown types (and for
 * types whose payload must be empty). */
uint32_t ember_inv_max_len(uint8_t type);

/* Fills `out` (EMBER_INV_HDR_SIZE bytes) with a header of this type, flags,
 * arg, length and id. Returns 0, or EMBER_INV_EINVAL for an unknown type or a
 * length over its limit: an encoder never emits what a decoder rejects. */
int ember_inv_hdr_encode(uint8_t out[EMBER_INV_HDR_SIZE], uint8_t type,
			 uint16_t flags, uint32_t arg, uint32_t length,
			 uint64_t id);

/* Decodes and validates EMBER_INV_HDR_SIZE bytes at `in` into *hdr, checking
 * in this order: magic, version, type, reserved bits (flags, unused arg),
 * length against the type's limit. Returns 0 or the first failing check's
 * code (EMBER_INV_EMAGIC, _EVERSION, _ETYPE, _ERESERVED, _E2BIG). *hdr is
 * filled even on failure so a caller can report the id and length. */
int ember_inv_hdr_decode(const uint8_t in[EMBER_INV_HDR_SIZE],
			 struct ember_inv_hdr *hdr);

/* Encodes a whole frame (header + payload copy) into out[cap]. Returns the
 * frame size (> 0), EMBER_INV_ENOSPC if cap is too small, EMBER_INV_EINVAL as
 * for ember_inv_hdr_encode or for payload == NULL with len > 0. */
long ember_inv_frame_encode(uint8_t *out, size_t cap, uint8_t type,
			    uint16_t flags, uint32_t arg, uint64_t id,
			    const void *payload, uint32_t len);

/* Fills out[EMBER_INV_SYNC_LEN] with a SYNC payload. */
void ember_inv_sync_encode(uint8_t out[EMBER_INV_SYNC_LEN],
			   uint64_t realtime_ns,
			   const uint8_t entropy[EMBER_INV_SYNC_ENTROPY]);

/* Parses a SYNC payload of len bytes: 0, or EMBER_INV_ETRUNC when it is
 * shorter than EMBER_INV_SYNC_LEN. */
int ember_inv_sync_decode(const uint8_t *p, uint32_t len,
			  uint64_t *realtime_ns,
			  uint8_t entropy[EMBER_INV_SYNC_ENTROPY]);

/* A short static description of an EMBER_INV_E* code, an EMBER_ERR_* code
 * (ember_inv_err_name) or a frame type (ember_inv_type_name). Never NULL. */
const char *ember_inv_strerror(int code);
const char *ember_inv_err_name(uint32_t err_code);
const char *ember_inv_type_name(uint8_t type);

/*
 * Incremental decoder for frames arriving over a byte stream in arbitrary
 * pieces. It never allocates: the header goes into an internal 24-byte
 * buffer; the payload goes into a buffer the caller provides after seeing the
 * validated header, so a caller never sizes memory by an unchecked length.
 *
 *   struct ember_inv_dec d; ember_inv_dec_init(&d);
 *   loop: r = ember_inv_dec_feed(&d, p, n, &used); p += used; n -= used;
 *     r == EMBER_INV_DEC_HEADER: d.hdr is valid and d.hdr.length > 0
 *         (empty frames go straight to FRAME). Optionally call
 *         ember_inv_dec_set_buf(&d, buf, cap) with cap >= d.hdr.length;
 *         without a buffer the payload is consumed and discarded.
 *     r == EMBER_INV_DEC_FRAME: a whole frame arrived: d.hdr is valid and
 *         the payload is in the buffer given (if any). The next feed
 *         starts a new frame.
 *     r == EMBER_INV_DEC_MORE: all n bytes consumed, frame incomplete.
 *     r < 0: the header was invalid (codes as ember_inv_hdr_decode; d.hdr
 *         holds what was read). The stream cannot be resynchronised: the
 *         decoder stays failed (EMBER_INV_ESTATE) until ember_inv_dec_init.
 * feed consumes at most up to the end of the current header or frame, so a
 * caller sees every HEADER and FRAME event.
 */
enum {
	EMBER_INV_DEC_MORE = 0,
	EMBER_INV_DEC_HEADER = 1,
	EMBER_INV_DEC_FRAME = 2,
};

struct ember_inv_dec {
	struct ember_inv_hdr hdr; /* valid after EMBER_INV_DEC_HEADER */
	uint8_t hbuf[EMBER_INV_HDR_SIZE];
	uint32_t hgot;   /* header bytes gathered */
	uint32_t pgot;   /* payload bytes consumed */
	uint8_t *buf;    /* payload destination or NULL (discard) */
	uint32_t cap;
	int state;       /* internal */
	int err;         /* first error, sticky */
};

void ember_inv_dec_init(struct ember_inv_dec *d);
/* Only valid right after an EMBER_INV_DEC_HEADER event. Returns 0, or
 * EMBER_INV_ENOSPC if cap < d->hdr.length (nothing changed; the payload
 * will be discarded unless a large enough buffer is set), EMBER_INV_ESTATE
 * if not after a HEADER event. */
int ember_inv_dec_set_buf(struct ember_inv_dec *d, uint8_t *buf, uint32_t cap);
/* See above. `used` receives the number of bytes consumed. */
int ember_inv_dec_feed(struct ember_inv_dec *d, const void *data, size_t n,
		       size_t *used);
/* True when the decoder sits exactly between frames (no partial frame). */
int ember_inv_dec_idle(const struct ember_inv_dec *d);
/* For end of stream: 0 if between frames, EMBER_INV_ETRUNC if a frame was
 * cut short, the sticky error if the decoder failed. */
int ember_inv_dec_finish(const struct ember_inv_dec *d);

#endif
