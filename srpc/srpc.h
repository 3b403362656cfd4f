/* srpc: Native Client's simple RPC, protocol 0xc0da0002.
 *
 * A method is described by a signature "name:ins:outs" whose ins and outs
 * are strings of type letters (SrpcType). docs/srpc_protocol.md gives every
 * byte on the wire; docs/srpc.md the API.
 *
 * This header holds the parts with no I/O: types, result codes, arguments
 * and signatures. Functions that fail return a result code or -1 as each
 * says; none keeps global state.
 */

#ifndef SRPC_SRPC_H_
#define SRPC_SRPC_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SRPC_EXPORT __attribute__((visibility("default")))

/* The protocol version every message carries, and the only one spoken. */
#define SRPC_PROTOCOL_VERSION 0xc0da0002u

/* At most this many inputs, and this many outputs, per call. */
#define SRPC_MAX_ARGS 128

/* At most this many methods in one service (discovery rejects more). */
#define SRPC_MAX_METHODS 65536

/* A datagram is at most this many bytes, length records included. */
#define SRPC_MAX_DATAGRAM_BYTES 65536

/* At most this many descriptors are sent per datagram (what a receiver of
 * the original library can take); more are spread over later datagrams. */
#define SRPC_MAX_DATAGRAM_DESCRIPTORS 8

/* Default bound on a whole message: what a peer can make us allocate for
 * one message. */
#define SRPC_DEFAULT_MAX_MESSAGE_BYTES (64u * 1024 * 1024)

/* Result codes, the values on the wire. */
typedef enum SrpcResult {
  SRPC_RESULT_OK = 256,
  SRPC_RESULT_BREAK = 257,
  SRPC_RESULT_MESSAGE_TRUNCATED = 258,
  SRPC_RESULT_NO_MEMORY = 259,
  SRPC_RESULT_PROTOCOL_MISMATCH = 260,
  SRPC_RESULT_BAD_RPC_NUMBER = 261,
  SRPC_RESULT_BAD_ARG_TYPE = 262,
  SRPC_RESULT_TOO_FEW_ARGS = 263,
  SRPC_RESULT_TOO_MANY_ARGS = 264,
  SRPC_RESULT_IN_ARG_TYPE_MISMATCH = 265,
  SRPC_RESULT_OUT_ARG_TYPE_MISMATCH = 266,
  SRPC_RESULT_INTERNAL = 267,
  SRPC_RESULT_APP_ERROR = 268,
} SrpcResult;

/* A short English description of `result` ("bad rpc number"), or "unknown
 * result" for values outside the enumeration. Never NULL. */
SRPC_EXPORT const char* srpc_result_string(int result);

/* Argument types; the value is the letter used in signatures and the tag on
 * the wire. */
typedef enum SrpcType {
  SRPC_TYPE_BOOL = 'b',
  SRPC_TYPE_CHAR_ARRAY = 'C',
  SRPC_TYPE_DOUBLE = 'd',
  SRPC_TYPE_DOUBLE_ARRAY = 'D',
  SRPC_TYPE_HANDLE = 'h',
  SRPC_TYPE_INT = 'i',
  SRPC_TYPE_INT_ARRAY = 'I',
  SRPC_TYPE_LONG = 'l',
  SRPC_TYPE_LONG_ARRAY = 'L',
  SRPC_TYPE_STRING = 's',
} SrpcType;

/* 1 if `letter` is one of the SrpcType letters, else 0. */
SRPC_EXPORT int srpc_type_is_valid(int letter);

/* Bytes per element of an array type ('C' 1, 'I' 4, 'D' and 'L' 8, 's' 1),
 * 0 for scalar types and unknown letters. */
SRPC_EXPORT size_t srpc_type_element_size(int letter);

/* One argument. `count` is the element count of an array ('C' 'D' 'I' 'L')
 * and, for a string, its length without the terminating NUL. */
typedef struct SrpcArg {
  int type; /* an SrpcType letter */
  uint32_t count;
  union {
    int32_t bval; /* 0 or 1 */
    int32_t ival;
    int64_t lval;
    double dval;
    int hval; /* a descriptor; -1 for none */
    char* carr;
    double* darr;
    int32_t* iarr;
    int64_t* larr;
    char* str; /* NUL-terminated */
    void* ptr;
  } u;
} SrpcArg;

/* The parts of a signature "name:ins:outs". */
typedef struct SrpcSignature {
  char name[256];
  char ins[SRPC_MAX_ARGS + 1]; /* type letters, NUL-terminated */
  char outs[SRPC_MAX_ARGS + 1];
} SrpcSignature;

/* Why a signature was refused. */
typedef enum SrpcSignatureError {
  SRPC_SIGNATURE_OK = 0,
  SRPC_SIGNATURE_NULL,          /* no string given */
  SRPC_SIGNATURE_MISSING_COLON, /* not three parts separated by ':' */
  SRPC_SIGNATURE_EMPTY_NAME,
  SRPC_SIGNATURE_NAME_TOO_LONG, /* 255 bytes at most */
  SRPC_SIGNATURE_BAD_NAME_CHAR, /* a control character in the name */
  SRPC_SIGNATURE_UNKNOWN_TYPE,  /* a letter that is not an SrpcType */
  SRPC_SIGNATURE_TOO_MANY_ARGS, /* more than SRPC_MAX_ARGS ins or outs */
} SrpcSignatureError;

/* Parses `signature` ("name:ins:outs", nothing after outs) into *out.
 * Returns SRPC_SIGNATURE_OK or why it was refused; *out is only written on
 * success. */
SRPC_EXPORT SrpcSignatureError srpc_signature_parse(const char* signature,
                                                    SrpcSignature* out);

/* A description of `error` for messages. Never NULL. */
SRPC_EXPORT const char* srpc_signature_error_string(SrpcSignatureError error);

/* Parses a service discovery answer: "name:ins:outs\n" for each method, in
 * method-number order. Stores up to `max` signatures in out[] and returns
 * the number of methods, or -1 if any line is not a valid signature or the
 * text does not end with "\n" (the empty text is zero methods). */
SRPC_EXPORT int srpc_discovery_parse(const char* text,
                                     size_t len,
                                     SrpcSignature* out,
                                     size_t max);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SRPC_SRPC_H_ */
