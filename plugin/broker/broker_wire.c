/* The broker's request and reply formats: little-endian, fixed fields. */

#include "plugin/broker/broker_wire.h"

#include <errno.h>
#include <string.h>

static void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t* p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

size_t broker_encode_request(uint32_t op,
                             uint32_t flags,
                             uint32_t mode,
                             const char* path,
                             size_t path_len,
                             uint8_t* out) {
  if (path_len > BROKER_MAX_PATH || memchr(path, '\0', path_len) != NULL)
    return 0;
  put32(out, BROKER_REQUEST_MAGIC);
  put32(out + 4, op);
  put32(out + 8, flags);
  put32(out + 12, mode);
  put32(out + 16, (uint32_t)path_len);
  memcpy(out + BROKER_REQUEST_HEADER_BYTES, path, path_len);
  return BROKER_REQUEST_HEADER_BYTES + path_len;
}

int broker_decode_request(const uint8_t* data, size_t len, BrokerRequest* out) {
  if (len < BROKER_REQUEST_HEADER_BYTES || get32(data) != BROKER_REQUEST_MAGIC)
    return EPROTO;
  uint32_t path_len = get32(data + 16);
  if (path_len > BROKER_MAX_PATH)
    return ENAMETOOLONG;
  if (len != BROKER_REQUEST_HEADER_BYTES + (size_t)path_len)
    return EPROTO;
  out->op = get32(data + 4);
  if (out->op < BROKER_OP_OPEN || out->op > BROKER_OP_ACCESS)
    return EINVAL;
  out->flags = get32(data + 8);
  out->mode = get32(data + 12);
  const uint8_t* path = data + BROKER_REQUEST_HEADER_BYTES;
  if (memchr(path, '\0', path_len) != NULL)
    return EINVAL;
  memcpy(out->path, path, path_len);
  out->path[path_len] = '\0';
  out->path_len = path_len;
  return 0;
}

size_t broker_encode_reply(int32_t result,
                           const struct stat* st,
                           uint8_t* out) {
  put32(out, BROKER_REPLY_MAGIC);
  put32(out + 4, (uint32_t)result);
  if (st == NULL)
    return BROKER_REPLY_HEADER_BYTES;
  uint8_t* p = out + BROKER_REPLY_HEADER_BYTES;
  put64(p, (uint64_t)st->st_dev);
  put64(p + 8, (uint64_t)st->st_ino);
  put32(p + 16, (uint32_t)st->st_mode);
  put32(p + 20, (uint32_t)st->st_nlink);
  put32(p + 24, (uint32_t)st->st_uid);
  put32(p + 28, (uint32_t)st->st_gid);
  put64(p + 32, (uint64_t)st->st_rdev);
  put64(p + 40, (uint64_t)st->st_size);
  put64(p + 48, (uint64_t)st->st_blocks);
  put64(p + 56, (uint64_t)st->st_atim.tv_sec);
  put32(p + 64, (uint32_t)st->st_atim.tv_nsec);
  put64(p + 68, (uint64_t)st->st_mtim.tv_sec);
  put32(p + 76, (uint32_t)st->st_mtim.tv_nsec);
  put64(p + 80, (uint64_t)st->st_ctim.tv_sec);
  put32(p + 88, (uint32_t)st->st_ctim.tv_nsec);
  put32(p + 92, (uint32_t)st->st_blksize);
  put64(p + 96, 0); /* reserved */
  return BROKER_REPLY_MAX_BYTES;
}

int broker_decode_reply(const uint8_t* data,
                        size_t len,
                        int32_t* result,
                        struct stat* st) {
  if ((len != BROKER_REPLY_HEADER_BYTES && len != BROKER_REPLY_MAX_BYTES) ||
      get32(data) != BROKER_REPLY_MAGIC)
    return EPROTO;
  *result = (int32_t)get32(data + 4);
  if (st != NULL && len == BROKER_REPLY_MAX_BYTES) {
    const uint8_t* p = data + BROKER_REPLY_HEADER_BYTES;
    memset(st, 0, sizeof(*st));
    st->st_dev = (dev_t)get64(p);
    st->st_ino = (ino_t)get64(p + 8);
    st->st_mode = (mode_t)get32(p + 16);
    st->st_nlink = (nlink_t)get32(p + 20);
    st->st_uid = (uid_t)get32(p + 24);
    st->st_gid = (gid_t)get32(p + 28);
    st->st_rdev = (dev_t)get64(p + 32);
    st->st_size = (off_t)get64(p + 40);
    st->st_blocks = (blkcnt_t)get64(p + 48);
    st->st_atim.tv_sec = (time_t)get64(p + 56);
    st->st_atim.tv_nsec = (long)get32(p + 64);
    st->st_mtim.tv_sec = (time_t)get64(p + 68);
    st->st_mtim.tv_nsec = (long)get32(p + 76);
    st->st_ctim.tv_sec = (time_t)get64(p + 80);
    st->st_ctim.tv_nsec = (long)get32(p + 88);
    st->st_blksize = (blksize_t)get32(p + 92);
  } else if (st != NULL && *result >= 0 && len != BROKER_REPLY_MAX_BYTES) {
    return EPROTO;
  }
  return 0;
}
