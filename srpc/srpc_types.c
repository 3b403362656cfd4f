/* Type letters, result codes and signatures. */

#include <string.h>

#include "srpc/srpc.h"

const char* srpc_result_string(int result) {
  switch (result) {
    case SRPC_RESULT_OK:
      return "ok";
    case SRPC_RESULT_BREAK:
      return "break";
    case SRPC_RESULT_MESSAGE_TRUNCATED:
      return "message truncated";
    case SRPC_RESULT_NO_MEMORY:
      return "out of memory";
    case SRPC_RESULT_PROTOCOL_MISMATCH:
      return "protocol version mismatch";
    case SRPC_RESULT_BAD_RPC_NUMBER:
      return "bad rpc number";
    case SRPC_RESULT_BAD_ARG_TYPE:
      return "bad argument type";
    case SRPC_RESULT_TOO_FEW_ARGS:
      return "too few arguments";
    case SRPC_RESULT_TOO_MANY_ARGS:
      return "too many arguments";
    case SRPC_RESULT_IN_ARG_TYPE_MISMATCH:
      return "input argument type mismatch";
    case SRPC_RESULT_OUT_ARG_TYPE_MISMATCH:
      return "output argument type mismatch";
    case SRPC_RESULT_INTERNAL:
      return "internal error";
    case SRPC_RESULT_APP_ERROR:
      return "application error";
    case SRPC_RESULT_TIMED_OUT:
      return "timed out";
    case SRPC_RESULT_CANCELLED:
      return "cancelled";
  }
  return "unknown result";
}

int srpc_type_is_valid(int letter) {
  switch (letter) {
    case SRPC_TYPE_BOOL:
    case SRPC_TYPE_CHAR_ARRAY:
    case SRPC_TYPE_DOUBLE:
    case SRPC_TYPE_DOUBLE_ARRAY:
    case SRPC_TYPE_HANDLE:
    case SRPC_TYPE_INT:
    case SRPC_TYPE_INT_ARRAY:
    case SRPC_TYPE_LONG:
    case SRPC_TYPE_LONG_ARRAY:
    case SRPC_TYPE_STRING:
      return 1;
  }
  return 0;
}

size_t srpc_type_element_size(int letter) {
  switch (letter) {
    case SRPC_TYPE_CHAR_ARRAY:
    case SRPC_TYPE_STRING:
      return 1;
    case SRPC_TYPE_INT_ARRAY:
      return 4;
    case SRPC_TYPE_DOUBLE_ARRAY:
    case SRPC_TYPE_LONG_ARRAY:
      return 8;
  }
  return 0;
}

const char* srpc_signature_error_string(SrpcSignatureError error) {
  switch (error) {
    case SRPC_SIGNATURE_OK:
      return "ok";
    case SRPC_SIGNATURE_NULL:
      return "no signature";
    case SRPC_SIGNATURE_MISSING_COLON:
      return "not of the form name:ins:outs";
    case SRPC_SIGNATURE_EMPTY_NAME:
      return "empty method name";
    case SRPC_SIGNATURE_NAME_TOO_LONG:
      return "method name longer than 255 bytes";
    case SRPC_SIGNATURE_BAD_NAME_CHAR:
      return "control character in method name";
    case SRPC_SIGNATURE_UNKNOWN_TYPE:
      return "unknown type letter";
    case SRPC_SIGNATURE_TOO_MANY_ARGS:
      return "more than 128 arguments";
    case SRPC_SIGNATURE_DUPLICATE:
      return "duplicate method name";
  }
  return "unknown signature error";
}

/* Copies the type letters in [begin, end) to out (NUL-terminated). */
static SrpcSignatureError parse_types(const char* begin,
                                      const char* end,
                                      char* out) {
  size_t n = (size_t)(end - begin);
  if (n == 1 && begin[0] == SRPC_VARIADIC) {
    out[0] = SRPC_VARIADIC; /* any number of arguments of any types */
    out[1] = '\0';
    return SRPC_SIGNATURE_OK;
  }
  if (n > SRPC_MAX_ARGS)
    return SRPC_SIGNATURE_TOO_MANY_ARGS;
  for (size_t i = 0; i < n; i++) {
    if (!srpc_type_is_valid((unsigned char)begin[i]))
      return SRPC_SIGNATURE_UNKNOWN_TYPE;
    out[i] = begin[i];
  }
  out[n] = '\0';
  return SRPC_SIGNATURE_OK;
}

/* Parses the signature in [s, end). */
static SrpcSignatureError parse_range(const char* s,
                                      const char* end,
                                      SrpcSignature* out) {
  const char* colon1 = memchr(s, ':', (size_t)(end - s));
  if (colon1 == NULL)
    return SRPC_SIGNATURE_MISSING_COLON;
  const char* colon2 = memchr(colon1 + 1, ':', (size_t)(end - colon1 - 1));
  if (colon2 == NULL)
    return SRPC_SIGNATURE_MISSING_COLON;
  size_t name_len = (size_t)(colon1 - s);
  if (name_len == 0)
    return SRPC_SIGNATURE_EMPTY_NAME;
  if (name_len >= sizeof(out->name))
    return SRPC_SIGNATURE_NAME_TOO_LONG;
  for (size_t i = 0; i < name_len; i++) {
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return SRPC_SIGNATURE_BAD_NAME_CHAR;
  }
  SrpcSignature sig;
  SrpcSignatureError err = parse_types(colon1 + 1, colon2, sig.ins);
  if (err == SRPC_SIGNATURE_OK)
    err = parse_types(colon2 + 1, end, sig.outs);
  if (err != SRPC_SIGNATURE_OK)
    return err;
  memcpy(sig.name, s, name_len);
  sig.name[name_len] = '\0';
  *out = sig;
  return SRPC_SIGNATURE_OK;
}

SrpcSignatureError srpc_signature_parse(const char* signature,
                                        SrpcSignature* out) {
  if (signature == NULL || out == NULL)
    return SRPC_SIGNATURE_NULL;
  return parse_range(signature, signature + strlen(signature), out);
}

int srpc_discovery_parse(const char* text,
                         size_t len,
                         SrpcSignature* out,
                         size_t max) {
  if (text == NULL && len > 0)
    return -1;
  int count = 0;
  size_t pos = 0;
  while (pos < len) {
    const char* line = text + pos;
    const char* nl = memchr(line, '\n', len - pos);
    if (nl == NULL || count == SRPC_MAX_METHODS)
      return -1;
    SrpcSignature sig;
    if (memchr(line, '\0', (size_t)(nl - line)) != NULL ||
        parse_range(line, nl, &sig) != SRPC_SIGNATURE_OK)
      return -1;
    if ((size_t)count < max && out != NULL)
      out[count] = sig;
    count++;
    pos = (size_t)(nl - text) + 1;
  }
  return count;
}
