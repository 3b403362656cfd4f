/* Internal to plugin/broker: the request and reply formats of the open()
 * broker (docs/broker.md, "Wire format"), encoded and decoded with no I/O.
 * Shared by the client (module side) and the server (host side). */

#ifndef PLUGIN_BROKER_BROKER_WIRE_H_
#define PLUGIN_BROKER_BROKER_WIRE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BROKER_REQUEST_MAGIC 0x31515242u /* "BRQ1" */
#define BROKER_REPLY_MAGIC 0x31505242u   /* "BRP1" */

/* Longest path, in bytes, without a terminating NUL. */
#define BROKER_MAX_PATH 4095

#define BROKER_REQUEST_HEADER_BYTES 20
#define BROKER_REQUEST_MAX_BYTES (BROKER_REQUEST_HEADER_BYTES + BROKER_MAX_PATH)
#define BROKER_REPLY_HEADER_BYTES 8
#define BROKER_STAT_BYTES 104
#define BROKER_REPLY_MAX_BYTES (BROKER_REPLY_HEADER_BYTES + BROKER_STAT_BYTES)

typedef enum BrokerOp {
  BROKER_OP_OPEN = 1,   /* flags: open(2) flags; mode: creation mode */
  BROKER_OP_STAT = 2,   /* flags: 0 or AT_SYMLINK_NOFOLLOW */
  BROKER_OP_ACCESS = 3, /* flags: access(2) mode (F_OK, R_OK, W_OK) */
} BrokerOp;

typedef struct BrokerRequest {
  uint32_t op;
  uint32_t flags;
  uint32_t mode;
  char path[BROKER_MAX_PATH + 1]; /* NUL-terminated */
  size_t path_len;
} BrokerRequest;

/* Encodes a request into out[BROKER_REQUEST_MAX_BYTES]; returns its length,
 * or 0 if the path is too long or contains a NUL. */
size_t broker_encode_request(uint32_t op,
                             uint32_t flags,
                             uint32_t mode,
                             const char* path,
                             size_t path_len,
                             uint8_t* out);

/* Decodes a request. Returns 0, or EPROTO (wrong size or magic), EINVAL
 * (unknown op), ENAMETOOLONG, or EINVAL for a NUL inside the path. */
int broker_decode_request(const uint8_t* data, size_t len, BrokerRequest* out);

/* A reply: the result (>= 0, or -errno) and, for a successful stat, the
 * file's status. Returns the encoded length. */
size_t broker_encode_reply(int32_t result, const struct stat* st, uint8_t* out);

/* Decodes a reply; `st` (may be NULL) gets the status if present. Returns
 * 0 and *result, or EPROTO. */
int broker_decode_reply(const uint8_t* data,
                        size_t len,
                        int32_t* result,
                        struct stat* st);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_BROKER_BROKER_WIRE_H_ */
