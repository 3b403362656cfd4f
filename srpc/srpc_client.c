/* The varargs form of a call, in Native Client's style. */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srpc/srpc_channel_internal.h"

/* Reads one input of type `t` from `ap` into `arg`. */
static void read_input(int t, va_list* ap, SrpcArg* arg) {
  arg->type = t;
  switch (t) {
    case SRPC_TYPE_BOOL:
      arg->u.bval = va_arg(*ap, int) != 0;
      break;
    case SRPC_TYPE_INT:
      arg->u.ival = va_arg(*ap, int32_t);
      break;
    case SRPC_TYPE_LONG:
      arg->u.lval = va_arg(*ap, int64_t);
      break;
    case SRPC_TYPE_DOUBLE:
      arg->u.dval = va_arg(*ap, double);
      break;
    case SRPC_TYPE_HANDLE:
      arg->u.hval = va_arg(*ap, int);
      break;
    case SRPC_TYPE_STRING:
      arg->u.str = va_arg(*ap, char*);
      break;
    default: /* arrays: count, then the elements */
      arg->count = va_arg(*ap, uint32_t);
      arg->u.ptr = va_arg(*ap, void*);
      break;
  }
}

/* Where the caller wants result `i`: the pointers of `ap`. */
typedef struct ResultSlot {
  void* value;     /* int*, int32_t*, ..., char**, or the array buffer */
  uint32_t* count; /* arrays only */
} ResultSlot;

static void read_output(int t, va_list* ap, SrpcArg* arg, ResultSlot* slot) {
  memset(arg, 0, sizeof(*arg));
  arg->type = t;
  slot->count = NULL;
  if (srpc_type_element_size(t) != 0 && t != SRPC_TYPE_STRING) {
    slot->count = va_arg(*ap, uint32_t*);
    slot->value = va_arg(*ap, void*);
    arg->count = *slot->count;
    arg->u.ptr = slot->value;
  } else {
    slot->value = va_arg(*ap, void*);
  }
}

static void store_output(const SrpcArg* arg, const ResultSlot* slot) {
  switch (arg->type) {
    case SRPC_TYPE_BOOL:
      *(int*)slot->value = arg->u.bval;
      break;
    case SRPC_TYPE_INT:
      *(int32_t*)slot->value = arg->u.ival;
      break;
    case SRPC_TYPE_LONG:
      *(int64_t*)slot->value = arg->u.lval;
      break;
    case SRPC_TYPE_DOUBLE:
      *(double*)slot->value = arg->u.dval;
      break;
    case SRPC_TYPE_HANDLE:
      *(int*)slot->value = arg->u.hval;
      break;
    case SRPC_TYPE_STRING:
      *(char**)slot->value = arg->u.str;
      break;
    default:
      *slot->count = arg->count;
      break;
  }
}

int srpc_invoke(SrpcChannel* ch, const char* name_or_signature, ...) {
  SrpcSignature signature;
  int number = srpc_channel_find_method(ch, name_or_signature, &signature);
  if (number < 0)
    return SRPC_RESULT_BAD_RPC_NUMBER;
  const SrpcSignature* sig = &signature;
  if (sig->ins[0] == SRPC_VARIADIC || sig->outs[0] == SRPC_VARIADIC)
    return SRPC_RESULT_BAD_ARG_TYPE; /* no types to read varargs by */
  size_t num_in = strlen(sig->ins), num_out = strlen(sig->outs);
  SrpcArg in[SRPC_MAX_ARGS], out[SRPC_MAX_ARGS];
  ResultSlot slots[SRPC_MAX_ARGS];
  va_list ap;
  va_start(ap, name_or_signature);
  for (size_t i = 0; i < num_in; i++)
    read_input(sig->ins[i], &ap, &in[i]);
  for (size_t i = 0; i < num_out; i++)
    read_output(sig->outs[i], &ap, &out[i], &slots[i]);
  va_end(ap);
  int r = srpc_invoke_args(ch, (uint32_t)number, in, num_in, out, num_out);
  if (r == SRPC_RESULT_OK) {
    for (size_t i = 0; i < num_out; i++)
      store_output(&out[i], &slots[i]);
  }
  return r;
}
