/* imc: message sockets with descriptor passing.
 *
 * The inter-module communication calls of Native Client, for Linux. An IMC
 * socket is one end of an AF_UNIX SOCK_SEQPACKET pair: every send is one
 * message, delivered whole and in order, with up to IMC_MAX_DESCRIPTORS
 * descriptors attached. A BoundSocket / SocketAddress pair lets a process
 * hand out a capability to connect to it; docs/imc.md gives the connect
 * protocol byte by byte.
 *
 * Conventions, for every call here:
 *  - failure returns -1 and sets errno; nothing else is ever -1;
 *  - no call raises SIGPIPE (every send uses MSG_NOSIGNAL);
 *  - every descriptor the layer creates or receives is close-on-exec;
 *  - a blocking call interrupted by a signal is restarted (never EINTR);
 *  - on failure the layer holds no descriptor it created or received.
 *
 * Thread safety: any call may be made from any thread. Concurrent sends on
 * one socket never interleave (each message is atomic); concurrent receives
 * each take whole messages; concurrent imc_accept() calls on one BoundSocket
 * each take whole connections.
 */

#ifndef IMC_IMC_H_
#define IMC_IMC_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMC_EXPORT __attribute__((visibility("default")))

/* Limits. Every process using this layer sees the same ones. */

/* At most this many entries in NaClImcMsgHdr.iov (Native Client's value). */
#define IMC_MAX_IOVECS 256

/* At most this many descriptors per message: the most Linux carries in one
 * SCM_RIGHTS message (SCM_MAX_FD). Native Client's 8 was a limit its own
 * authors called too small; a lower cap than the kernel's buys nothing,
 * because a receiver already bounds what it accepts by the capacity it
 * offers (see imc_recvmsg). */
#define IMC_MAX_DESCRIPTORS 253

/* At most this many bytes of user data per message (Native Client's value).
 * Fixed, not whatever the socket buffer allows, so that the limit is the
 * same on every machine. */
#define IMC_MAX_DATA_BYTES (128 * 1024)

/* Shared memory objects are a whole number of these bytes. */
#define IMC_MEM_OBJ_GRANULARITY (64 * 1024)

/* The descriptor number that travels as "no descriptor": -1 in descv on
 * send arrives as -1 in descv on receive. */
#define IMC_INVALID_DESCRIPTOR (-1)

/* Flags for imc_sendmsg, imc_recvmsg and imc_connect_ex: fail with EAGAIN
 * instead of waiting. */
#define IMC_NONBLOCK 0x1

/* Flag for imc_connect_ex: wait until the connection is accepted. */
#define IMC_CONNECT_CONFIRM 0x2

/* Set in NaClImcMsgHdr.flags by imc_recvmsg. */
#define RECVMSG_DATA_TRUNCATED 0x1 /* the message had more bytes than iov */
#define RECVMSG_DESC_TRUNCATED 0x2 /* ... more descriptors than descv */

struct NaClImcMsgIoVec {
  void* base;
  size_t length;
};

struct NaClImcMsgHdr {
  struct NaClImcMsgIoVec* iov; /* the message bytes, gathered or scattered */
  size_t iov_length;           /* entries in iov, at most IMC_MAX_IOVECS */
  int* descv;                  /* the descriptors */
  size_t desc_length;          /* entries in descv; see imc_recvmsg */
  int flags;                   /* RECVMSG_* on return from imc_recvmsg */
};

/* Creates a connected pair of IMC sockets in pair[0] and pair[1].
 * Returns 0. Errors: EMFILE, ENFILE, ENOMEM, EINVAL (pair is NULL). */
IMC_EXPORT int imc_socketpair(int pair[2]);

/* Creates a BoundSocket in sock_and_addr[0] and its SocketAddress in
 * sock_and_addr[1]. The SocketAddress is an ordinary descriptor: pass it to
 * other processes with imc_sendmsg (or inheritance) to let them connect.
 * When every copy of the SocketAddress is closed, imc_accept on the
 * BoundSocket fails with EPIPE once the pending requests are taken; when the
 * BoundSocket is closed, imc_connect on any copy of the address fails with
 * ECONNREFUSED.
 * Returns 0. Errors: EMFILE, ENFILE, ENOMEM, EINVAL (sock_and_addr NULL). */
IMC_EXPORT int imc_makeboundsock(int sock_and_addr[2]);

/* Connects to `address` (a SocketAddress): the same as
 * imc_connect_ex(address, 0, -1). The request is queued and the new socket
 * returned at once; a connection that is never accepted reads end of stream
 * once the BoundSocket is closed. Returns the new connected socket. */
IMC_EXPORT int imc_connect(int address);

/* Connects to `address` (a SocketAddress) and returns the connected socket.
 * Requests queue on the address without limit other than the kernel's socket
 * buffer (docs/imc.md gives the measured number); when it is full the call
 * waits, or with IMC_NONBLOCK fails with EAGAIN. Each pending request also
 * keeps one descriptor in flight, counted against the caller's
 * RLIMIT_NOFILE: past that the call fails with ETOOMANYREFS.
 * With IMC_CONNECT_CONFIRM, the call also waits up to `timeout_ms`
 * milliseconds (negative: no limit) until an acceptor has taken the request;
 * the confirmation is consumed here and never seen by the caller's reads.
 * Errors: ECONNREFUSED (the BoundSocket is closed, or was closed before it
 * accepted a confirmed request), ETIMEDOUT (confirmation not in time),
 * EAGAIN (IMC_NONBLOCK and the queue is full), EPROTO (the acceptor answered
 * something other than the confirmation), ENOTSOCK / EBADF / EINVAL (address
 * is not a SocketAddress, or unknown flags), ETOOMANYREFS, EMFILE, ENFILE,
 * ENOMEM. */
IMC_EXPORT int imc_connect_ex(int address, int flags, int timeout_ms);

/* Waits for and returns the next connection made to BoundSocket `bound`.
 * A request that is not a well-formed connect request (not exactly the byte
 * 'c' or 'C' with exactly one descriptor, which must be a connected AF_UNIX
 * SOCK_SEQPACKET socket) is discarded: its descriptors are closed and accept
 * goes on waiting, so a hostile connector can neither fail nor stall another
 * connector's accept, nor make the acceptor hold a descriptor.
 * Errors: EPIPE (every SocketAddress of `bound` is closed and no request is
 * left: no connection can ever arrive), EAGAIN (`bound` is non-blocking and
 * no request is queued), EMFILE / ENFILE (the request's descriptor could not
 * be received; the request is lost and its connector sees end of stream),
 * EBADF, ENOTSOCK, EINVAL. */
IMC_EXPORT int imc_accept(int bound);

/* Sends one message: the bytes of msg->iov, in order, and the descriptors of
 * msg->descv (copies; the caller keeps its own). IMC_INVALID_DESCRIPTOR
 * entries travel as placeholders. msg->flags is ignored.
 * A message must carry at least one byte or one descriptor: an empty message
 * could not be told apart from the peer closing.
 * Returns the number of bytes sent (all of them).
 * Errors: EPIPE (the peer has closed), ECONNRESET (the peer closed with
 * messages unread), EAGAIN (IMC_NONBLOCK and the socket buffer is full),
 * EMSGSIZE (more than IMC_MAX_DATA_BYTES), EINVAL (msg NULL, too many iovecs
 * or descriptors, an empty message, unknown flags), EBADF (fd, or a
 * descriptor in descv, is not open), ENOTSOCK, ENOTCONN, ETOOMANYREFS (the
 * kernel's limit on descriptors in flight), ENOMEM, ENOBUFS. */
IMC_EXPORT int imc_sendmsg(int fd, const struct NaClImcMsgHdr* msg, int flags);

/* Receives one message into msg->iov and msg->descv.
 * On entry msg->desc_length is the capacity of descv; on return it is the
 * number of descriptors stored there (each new and close-on-exec, or -1 for
 * a placeholder). msg->flags gets RECVMSG_DATA_TRUNCATED if the message had
 * more bytes than iov holds (the rest is discarded) and
 * RECVMSG_DESC_TRUNCATED if it had more descriptors than descv holds (the
 * first ones are stored, the rest closed).
 * Returns the number of bytes stored. 0 with desc_length 0 and flags 0
 * means end of stream: the peer has closed and every message has been read.
 * (ECONNRESET, which the kernel reports once when our own sends went unread
 * at the peer's close, is absorbed: queued messages are still returned.)
 * Errors: EAGAIN (IMC_NONBLOCK and nothing to read), EMFILE / ENFILE (the
 * message's descriptors could not all be received: the message is dropped
 * and every descriptor of it closed), EINVAL (msg NULL, too many iovecs,
 * unknown flags), EBADF, ENOTSOCK, ENOMEM. */
IMC_EXPORT int imc_recvmsg(int fd, struct NaClImcMsgHdr* msg, int flags);

/* Creates a shared memory object of `size` bytes, zero-filled, as a
 * close-on-exec descriptor to pass with imc_sendmsg and map with mmap. Its
 * size is sealed: no holder can shrink or grow it, so a receiver that checks
 * the size (imc_mem_obj_size) can map it without risk of SIGBUS. Mappings in
 * different processes see each other's writes.
 * Returns the descriptor. Errors: EINVAL (size 0 or not a multiple of
 * IMC_MEM_OBJ_GRANULARITY), EFBIG / ENOMEM (too large), EMFILE, ENFILE. */
IMC_EXPORT int imc_mem_obj_create(size_t size);

/* Stores in *out_size the size of shared memory object `fd`, after checking
 * that its size is sealed (as imc_mem_obj_create makes it). Returns 0.
 * Errors: EINVAL (not a memory object with a sealed size), EBADF. */
IMC_EXPORT int imc_mem_obj_size(int fd, size_t* out_size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* IMC_IMC_H_ */
