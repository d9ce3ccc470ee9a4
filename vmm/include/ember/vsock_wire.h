/*
 * ember/vsock_wire.h - the virtio-vsock wire format (virtio 1.2, 5.10).
 *
 * One definition of the packet header and its constants, shared by the
 * VMM's device (vmm/virtio/vsock.c) and the guest driver
 * (guest-drivers/vsock.c). C99, fixed-width types, no host headers.
 */
#ifndef EMBER_VSOCK_WIRE_H
#define EMBER_VSOCK_WIRE_H

#include <stdint.h>

/* Well-known CIDs (virtio 1.2, 5.10.4): the host is always 2. */
#define VSOCK_HOST_CID 2
/* Guest CIDs the device accepts: 3 .. 0xfffffffe (0xffffffff is "any"; only
 * the low 32 bits are used by drivers, 5.10.4). */
#define VSOCK_MIN_GUEST_CID 3
#define VSOCK_MAX_GUEST_CID 0xfffffffeULL

/* Packet header, little-endian, packed: 44 bytes (5.10.6). */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

#define VSOCK_HDR_SIZE 44

#define VSOCK_TYPE_STREAM 1
#define VSOCK_TYPE_SEQPACKET 2

#define VSOCK_OP_INVALID 0
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7

/* SHUTDOWN flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

/* Event queue (5.10.6.7): struct { le32 id; }. */
#define VSOCK_EVENT_TRANSPORT_RESET 0

#endif
