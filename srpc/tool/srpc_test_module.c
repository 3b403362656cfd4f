/* A small SRPC service for tests and examples: serves every connection made
 * to the BoundSocket it was started with (descriptor 3), each on its own
 * thread; exits when no connection can come any more.
 *
 *   add:ii:i        the sum
 *   concat:ss:s     the two strings joined
 *   sum:I:l         the sum of the elements
 *   reverse:C:C     the bytes in reverse order
 *   scale:dD:D      each element times the factor
 *   read:h:C        up to 4096 bytes read from the descriptor
 *   fail::          answers APP_ERROR */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"
#include "srpc/srpc.h"

static void add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  out[0].u.ival = (int32_t)((uint32_t)in[0].u.ival + (uint32_t)in[1].u.ival);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void concat(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  size_t a = in[0].count, b = in[1].count;
  char* s = malloc(a + b + 1);
  if (s != NULL) {
    memcpy(s, in[0].u.str, a);
    memcpy(s + a, in[1].u.str, b + 1);
  }
  out[0].u.str = s;
  srpc_rpc_complete(rpc, s ? SRPC_RESULT_OK : SRPC_RESULT_NO_MEMORY);
}

static void sum(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  int64_t total = 0;
  for (uint32_t i = 0; i < in[0].count; i++)
    total += in[0].u.iarr[i];
  out[0].u.lval = total;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void reverse(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  uint32_t n = in[0].count;
  char* p = srpc_arg_alloc(&out[0], n);
  if (p == NULL && n > 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  for (uint32_t i = 0; i < n; i++)
    p[i] = in[0].u.carr[n - 1 - i];
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void scale(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  uint32_t n = in[1].count;
  double* p = srpc_arg_alloc(&out[0], n);
  if (p == NULL && n > 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  for (uint32_t i = 0; i < n; i++)
    p[i] = in[1].u.darr[i] * in[0].u.dval;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void read_fd(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)user;
  char buf[4096];
  ssize_t n = pread(in[0].u.hval, buf, sizeof(buf), 0);
  if (n < 0)
    n = read(in[0].u.hval, buf, sizeof(buf));
  if (n < 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  uint32_t len = (uint32_t)n < out[0].count ? (uint32_t)n : out[0].count;
  char* p = srpc_arg_alloc(&out[0], len);
  if (len > 0)
    memcpy(p, buf, len);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void fail(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)in;
  (void)out;
  (void)user;
  srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
}

static const SrpcMethod kMethods[] = {
    {"add:ii:i", add},        {"concat:ss:s", concat}, {"sum:I:l", sum},
    {"reverse:C:C", reverse}, {"scale:dD:D", scale},   {"read:h:C", read_fd},
    {"fail::", fail},
};

int main(void) {
  SrpcService* service = srpc_service_new(
      kMethods, sizeof(kMethods) / sizeof(kMethods[0]), NULL, NULL, NULL);
  if (service == NULL)
    return 1;
  int r = srpc_serve_bound(3, service, 0);
  srpc_service_free(service);
  return r == SRPC_RESULT_OK ? 0 : 1;
}
