/* plugin/js: SRPC values to and from script values.
 *
 *   b  boolean          i  integer in int32 range   d  number
 *   l  integer (a number, exact within +-2^53, or a decimal string)
 *   s  string without U+0000
 *   C  ArrayBuffer (in: also a typed array or DataView: its bytes)
 *   I  Int32Array (in: also any array of int32 integers)
 *   D  Float64Array (in: also any array of numbers)
 *   L  Array of l values
 *   h  Descriptor      o  object (proxy or exported) or null */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/js/js_internal.h"

#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

__attribute__((format(printf, 3, 4))) static int fail(char* err,
                                                      size_t len,
                                                      const char* fmt,
                                                      ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

/* An int64 from a number (integral, |x| <= 2^53) or a decimal string. */
static bool get_long(duk_context* ctx, duk_idx_t idx, int64_t* v) {
  if (duk_is_number(ctx, idx)) {
    double d = duk_get_number(ctx, idx);
    if (!(d == floor(d)) || fabs(d) > EXACT_LIMIT)
      return false;
    *v = (int64_t)d;
    return true;
  }
  if (duk_is_string(ctx, idx)) {
    const char* s = duk_get_string(ctx, idx);
    char* end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
      return false;
    *v = x;
    return true;
  }
  return false;
}

static bool get_int(duk_context* ctx, duk_idx_t idx, int32_t* v) {
  if (!duk_is_number(ctx, idx))
    return false;
  double d = duk_get_number(ctx, idx);
  if (!(d == floor(d)) || d < INT32_MIN || d > INT32_MAX)
    return false;
  *v = (int32_t)d;
  return true;
}

static void push_long(duk_context* ctx, int64_t v) {
  const int64_t limit = INT64_C(1) << 53;
  if (v <= limit && v >= -limit) {
    duk_push_number(ctx, (double)v);
  } else {
    char text[32];
    snprintf(text, sizeof(text), "%" PRId64, v);
    duk_push_string(ctx, text);
  }
}

/* Room for `count` elements of `size` bytes: malloc'd for a call, or the
 * handler's result buffer. */
static void* make_array(SrpcArg* arg, size_t count, size_t size, bool handler) {
  static uint8_t empty;
  if (count > UINT32_MAX)
    return NULL;
  if (handler) {
    void* p = srpc_arg_alloc(arg, (uint32_t)count);
    return count == 0 ? &empty : p;
  }
  void* p = malloc(count ? count * size : 1);
  arg->u.ptr = p;
  arg->count = (uint32_t)count;
  return p;
}

/* Numbers of an array-like value into a numeric array of type I, D or L. */
static int get_numeric_array(duk_context* ctx,
                             duk_idx_t idx,
                             char type,
                             bool handler,
                             SrpcArg* arg,
                             char* err,
                             size_t err_len) {
  if (!duk_is_object(ctx, idx) || duk_is_function(ctx, idx))
    return fail(err, err_len, "expected an array for '%s'",
                type == 'I'   ? "I"
                : type == 'D' ? "D"
                              : "L");
  duk_get_prop_string(ctx, idx, "length");
  double length = duk_get_number_default(ctx, -1, -1);
  duk_pop(ctx);
  if (!(length >= 0 && length == floor(length) && length <= 16777216))
    return fail(err, err_len, "%s", "expected an array (with a length)");
  size_t n = (size_t)length;
  void* p = make_array(arg, n, 8, handler);
  if (p == NULL)
    return fail(err, err_len, "%s", "out of memory");
  for (size_t i = 0; i < n; i++) {
    duk_get_prop_index(ctx, idx, (duk_uarridx_t)i);
    bool ok = true;
    if (type == SRPC_TYPE_INT_ARRAY) {
      ok = get_int(ctx, -1, &arg->u.iarr[i]);
    } else if (type == SRPC_TYPE_DOUBLE_ARRAY) {
      ok = duk_is_number(ctx, -1);
      arg->u.darr[i] = duk_get_number(ctx, -1);
    } else {
      ok = get_long(ctx, -1, &arg->u.larr[i]);
    }
    duk_pop(ctx);
    if (!ok) {
      snprintf(err, err_len, "element %zu is not a%s", i,
               type == SRPC_TYPE_INT_ARRAY      ? "n int32 integer"
               : type == SRPC_TYPE_DOUBLE_ARRAY ? " number"
                                                : "n exact integer");
      return -1;
    }
  }
  return 0;
}

int js_to_arg(duk_context* ctx,
              duk_idx_t idx,
              char type,
              bool handler,
              SrpcArg* arg,
              char* err,
              size_t err_len) {
  idx = duk_normalize_index(ctx, idx);
  if (!handler) {
    /* A handler's result keeps its capacity (count) and type. */
    memset(arg, 0, sizeof(*arg));
    arg->type = type;
    if (type == SRPC_TYPE_HANDLE)
      arg->u.hval = -1; /* nothing to close if it fails */
  }
  switch (type) {
    case SRPC_TYPE_BOOL:
      if (!duk_is_boolean(ctx, idx))
        return fail(err, err_len, "%s", "expected a boolean");
      arg->u.bval = duk_get_boolean(ctx, idx) ? 1 : 0;
      return 0;
    case SRPC_TYPE_INT:
      if (!get_int(ctx, idx, &arg->u.ival))
        return fail(err, err_len, "%s", "expected an integer in int32 range");
      return 0;
    case SRPC_TYPE_LONG:
      if (!get_long(ctx, idx, &arg->u.lval))
        return fail(err, err_len, "%s",
                    "expected an integer (exact) or a decimal string");
      return 0;
    case SRPC_TYPE_DOUBLE:
      if (!duk_is_number(ctx, idx))
        return fail(err, err_len, "%s", "expected a number");
      arg->u.dval = duk_get_number(ctx, idx);
      return 0;
    case SRPC_TYPE_STRING: {
      if (!duk_is_string(ctx, idx))
        return fail(err, err_len, "%s", "expected a string");
      duk_size_t len = 0;
      const char* s = duk_get_lstring(ctx, idx, &len);
      if (memchr(s, '\0', len) != NULL)
        return fail(err, err_len, "%s", "a string holding U+0000");
      if (handler) {
        if (srpc_arg_set_string(arg, s) != 0)
          return fail(err, err_len, "%s", "out of memory");
        return 0;
      }
      arg->u.str = strdup(s);
      arg->count = (uint32_t)len;
      return arg->u.str != NULL ? 0 : fail(err, err_len, "%s", "no memory");
    }
    case SRPC_TYPE_CHAR_ARRAY: {
      size_t len;
      const uint8_t* bytes = js_get_bytes(ctx, idx, &len);
      if (bytes == NULL)
        return fail(err, err_len, "%s",
                    "expected an ArrayBuffer, a typed array or a DataView");
      void* p = make_array(arg, len, 1, handler);
      if (p == NULL)
        return fail(err, err_len, "%s", "out of memory");
      if (len > 0)
        memcpy(arg->u.carr, bytes, len);
      return 0;
    }
    case SRPC_TYPE_INT_ARRAY:
    case SRPC_TYPE_DOUBLE_ARRAY:
    case SRPC_TYPE_LONG_ARRAY:
      return get_numeric_array(ctx, idx, type, handler, arg, err, err_len);
    case SRPC_TYPE_HANDLE: {
      int fd = js_get_descriptor(ctx, idx);
      if (fd < 0)
        return fail(err, err_len, "%s", "expected an open Descriptor");
      /* A copy: the script may close its own while the call is out. */
      arg->u.hval = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (arg->u.hval < 0)
        return fail(err, err_len, "cannot duplicate the descriptor: %s",
                    strerror(errno));
      return 0;
    }
    case PLUGIN_TYPE_OBJECT: {
      bool bad = false;
      PluginObject* o = js_get_object(ctx, idx, &bad);
      if (bad)
        return fail(err, err_len, "%s",
                    "expected an object from plugin.exportObject, a proxy or "
                    "null");
      if (o != NULL && !handler)
        plugin_object_ref(o); /* the call's own */
      arg->u.ptr = o;
      js_export_use(ctx, idx, o);
      return 0;
    }
  }
  return fail(err, err_len, "%s", "an unknown type letter");
}

void js_free_args(SrpcArg* args, size_t n) {
  for (size_t i = 0; i < n; i++) {
    SrpcArg* a = &args[i];
    switch (a->type) {
      case SRPC_TYPE_STRING:
        free(a->u.str);
        break;
      case SRPC_TYPE_CHAR_ARRAY:
      case SRPC_TYPE_INT_ARRAY:
      case SRPC_TYPE_DOUBLE_ARRAY:
      case SRPC_TYPE_LONG_ARRAY:
        free(a->u.ptr);
        break;
      case SRPC_TYPE_HANDLE:
        if (a->u.hval >= 0)
          close(a->u.hval);
        break;
      case PLUGIN_TYPE_OBJECT:
        plugin_object_unref(a->u.ptr);
        break;
    }
    a->u.ptr = NULL;
    a->u.hval = -1;
    a->type = SRPC_TYPE_INT;
  }
}

void js_push_arg(duk_context* ctx, SrpcArg* a, bool owned) {
  switch (a->type) {
    case SRPC_TYPE_BOOL:
      duk_push_boolean(ctx, a->u.bval != 0);
      return;
    case SRPC_TYPE_INT:
      duk_push_int(ctx, a->u.ival);
      return;
    case SRPC_TYPE_LONG:
      push_long(ctx, a->u.lval);
      return;
    case SRPC_TYPE_DOUBLE:
      duk_push_number(ctx, a->u.dval);
      return;
    case SRPC_TYPE_STRING:
      duk_push_lstring(ctx, a->u.str != NULL ? a->u.str : "", a->count);
      return;
    case SRPC_TYPE_CHAR_ARRAY:
      js_push_bytes(ctx, a->u.carr, a->count);
      return;
    case SRPC_TYPE_INT_ARRAY:
    case SRPC_TYPE_DOUBLE_ARRAY: {
      size_t size = srpc_type_element_size(a->type);
      js_push_bytes(ctx, a->u.ptr, (size_t)a->count * size);
      duk_push_buffer_object(ctx, -1, 0, (size_t)a->count * size,
                             a->type == SRPC_TYPE_INT_ARRAY
                                 ? DUK_BUFOBJ_INT32ARRAY
                                 : DUK_BUFOBJ_FLOAT64ARRAY);
      duk_remove(ctx, -2);
      return;
    }
    case SRPC_TYPE_LONG_ARRAY:
      duk_push_array(ctx);
      for (uint32_t i = 0; i < a->count; i++) {
        push_long(ctx, a->u.larr[i]);
        duk_put_prop_index(ctx, -2, i);
      }
      return;
    case SRPC_TYPE_HANDLE: {
      int fd = a->u.hval;
      if (!owned && fd >= 0)
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      else
        a->u.hval = -1;
      if (fd < 0)
        duk_push_null(ctx);
      else
        js_push_descriptor(ctx, fd);
      return;
    }
    case PLUGIN_TYPE_OBJECT: {
      PluginObject* o = a->u.ptr;
      if (o == NULL) {
        duk_push_null(ctx);
        return;
      }
      if (owned)
        a->u.ptr = NULL;
      else
        plugin_object_ref(o);
      js_push_object(ctx, o);
      return;
    }
  }
  duk_push_undefined(ctx);
}

void js_push_results(duk_context* ctx, SrpcArg* out, size_t n) {
  if (n == 0) {
    duk_push_undefined(ctx);
    return;
  }
  if (n == 1) {
    js_push_arg(ctx, &out[0], true);
    return;
  }
  duk_push_array(ctx);
  for (size_t i = 0; i < n; i++) {
    js_push_arg(ctx, &out[i], true);
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
  }
}

void js_prepare_results(const char* outs, SrpcArg* out) {
  /* The peer cuts the capacities to its message limit in order, so the
   * first array would take it all: each gets an equal share. */
  size_t arrays = 0;
  for (size_t i = 0; outs[i] != '\0'; i++)
    arrays += outs[i] != SRPC_TYPE_STRING && srpc_type_element_size(outs[i]);
  size_t share = PLUGIN_DEFAULT_MAX_MESSAGE_BYTES / (arrays ? arrays : 1);
  for (size_t i = 0; outs[i] != '\0'; i++) {
    memset(&out[i], 0, sizeof(out[i]));
    out[i].type = outs[i];
    size_t size = srpc_type_element_size(outs[i]);
    if (outs[i] == SRPC_TYPE_HANDLE)
      out[i].u.hval = -1;
    else if (outs[i] != SRPC_TYPE_STRING && size != 0)
      out[i].count = (uint32_t)(share / size);
    /* Arrays: no buffer, so srpc allocates what arrives, within count. */
  }
}
