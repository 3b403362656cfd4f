/* srpc: talk to an SRPC service from the command line.
 *
 *   srpc [--trace] CONNECTION [list | call METHOD [ARG...] | script]
 *
 * CONNECTION is one of
 *   --fd N                  a connected IMC socket inherited as descriptor N
 *   --address-fd N          a SocketAddress inherited as descriptor N
 *   --launch PROGRAM [ARG...] --
 *                           start PROGRAM with a BoundSocket as descriptor 3
 *                           and connect to it
 * docs/srpc.md describes the commands, the literals and the output. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imc/imc.h"
#include "srpc/srpc.h"
#include "srpc/srpc_wire.h"

#define RESULT_CAPACITY (1u << 16) /* elements offered for array results */

static int usage(void) {
  fprintf(stderr,
          "usage: srpc [--trace] (--fd N | --address-fd N | --launch PROGRAM "
          "[ARG...] --)\n"
          "            [list | call METHOD [ARG...] | script]\n");
  return 2;
}

/* ---- --trace: a relay between the socket and the channel. ---- */

typedef struct Relay {
  int from, to;
  const char* arrow;
  size_t left; /* body bytes still expected of the current message */
} Relay;

static void print_records(const uint8_t* p, size_t len) {
  if (len < SRPC_HEADER_BYTES)
    return;
  uint32_t w[7];
  for (int i = 0; i < 7; i++)
    w[i] = srpc_get_u32(p + 4 * i);
  fprintf(stderr,
          "     %s id=%" PRIu32 " rpc=%" PRIu32 " result=%" PRIu32
          " (%s) values=%" PRIu32 " templates=%" PRIu32 "%s\n",
          w[2] ? "request" : "reply", w[1], w[3], w[4],
          srpc_result_string((int)w[4]), w[5], w[6],
          w[0] == SRPC_PROTOCOL_VERSION ? "" : " (unknown protocol)");
  size_t n = (size_t)w[5] + w[6];
  for (size_t i = 0; i < n && i < 2 * SRPC_MAX_ARGS; i++) {
    const uint8_t* r = p + SRPC_HEADER_BYTES + SRPC_ARG_BYTES * i;
    if ((size_t)(r + SRPC_ARG_BYTES - p) > len)
      break;
    uint32_t tag = srpc_get_u32(r), lo = srpc_get_u32(r + 8);
    uint64_t v = lo | (uint64_t)srpc_get_u32(r + 12) << 32;
    const char* kind = i < w[6] ? "template" : "value";
    double d;
    memcpy(&d, &v, sizeof(d));
    if (tag == 'd')
      fprintf(stderr, "       %s %c %.17g\n", kind, (int)tag, d);
    else if (tag == 'l')
      fprintf(stderr, "       %s %c %" PRId64 "\n", kind, (int)tag, (int64_t)v);
    else if (srpc_type_element_size((int)tag))
      fprintf(stderr, "       %s %c count %" PRIu32 "\n", kind, (int)tag, lo);
    else
      fprintf(stderr, "       %s %c %" PRId32 "\n", kind, (int)(tag & 0x7f),
              (int32_t)lo);
  }
}

static void* relay_main(void* arg) {
  Relay* r = arg;
  static uint8_t bufs[2][SRPC_MAX_DATAGRAM_BYTES];
  uint8_t* buf = bufs[r->arrow[0] == '-'];
  int fds[SRPC_MAX_ARGS];
  for (;;) {
    struct NaClImcMsgIoVec iov = {buf, SRPC_MAX_DATAGRAM_BYTES};
    struct NaClImcMsgHdr msg = {&iov, 1, fds, SRPC_MAX_ARGS, 0};
    int n = imc_recvmsg(r->from, &msg, 0);
    if (n < 0 || (n == 0 && msg.desc_length == 0)) {
      fprintf(stderr, "%s end of stream\n", r->arrow);
      shutdown(r->to, SHUT_WR);
      return NULL;
    }
    size_t len = (size_t)n, overhead = r->left ? 8 : 16;
    fprintf(stderr, "%s datagram %zu bytes, %zu descriptors", r->arrow, len,
            msg.desc_length);
    if (len >= overhead) {
      uint32_t chunk = srpc_get_u32(buf + overhead - 8);
      if (r->left == 0) {
        r->left = srpc_get_u32(buf);
        fprintf(stderr, ": message %zu bytes, %" PRIu32 " descriptors\n",
                r->left, srpc_get_u32(buf + 4));
        print_records(buf + overhead, len - overhead);
      } else {
        fprintf(stderr, ": continued\n");
      }
      r->left -= chunk < r->left ? chunk : r->left;
    } else {
      fprintf(stderr, ": too short to frame\n");
    }
    iov.length = len;
    imc_sendmsg(r->to, &msg, 0);
    for (size_t i = 0; i < msg.desc_length; i++) {
      if (fds[i] >= 0)
        close(fds[i]);
    }
  }
}

/* Puts a tracing relay between `fd` and the returned descriptor. */
static int start_trace(int fd) {
  int inner[2];
  if (imc_socketpair(inner) != 0)
    return -1;
  static Relay out, in;
  out = (Relay){inner[1], fd, "->", 0};
  in = (Relay){fd, inner[1], "<-", 0};
  pthread_t t1, t2;
  pthread_create(&t1, NULL, relay_main, &out);
  pthread_create(&t2, NULL, relay_main, &in);
  pthread_detach(t1);
  pthread_detach(t2);
  return inner[0];
}

/* ---- Arguments and results. ---- */

/* Parses "1,2,3" into a new array of `size`-byte elements of type `t`. */
static int parse_list(int t, const char* text, SrpcArg* arg) {
  size_t size = srpc_type_element_size(t);
  uint32_t n = 0;
  for (const char* p = text; *p; p++)
    n += *p == ',';
  n += *text ? 1 : 0;
  arg->count = n;
  arg->u.ptr = calloc(n ? n : 1, size);
  const char* p = text;
  for (uint32_t i = 0; i < n; i++) {
    char* end;
    errno = 0;
    if (t == 'D')
      arg->u.darr[i] = strtod(p, &end);
    else if (t == 'I')
      arg->u.iarr[i] = (int32_t)strtol(p, &end, 0);
    else
      arg->u.larr[i] = strtoll(p, &end, 0);
    if (end == p || errno != 0 || (*end != ',' && *end != '\0'))
      return -1;
    p = end + (*end == ',');
  }
  return 0;
}

static int parse_arg(int t, const char* text, SrpcArg* arg) {
  memset(arg, 0, sizeof(*arg));
  arg->type = t;
  char* end = NULL;
  errno = 0;
  switch (t) {
    case 'b':
      arg->u.bval = strcmp(text, "true") == 0 || strcmp(text, "1") == 0;
      return arg->u.bval || strcmp(text, "false") == 0 || strcmp(text, "0") == 0
                 ? 0
                 : -1;
    case 'i':
      arg->u.ival = (int32_t)strtol(text, &end, 0);
      break;
    case 'l':
      arg->u.lval = strtoll(text, &end, 0);
      break;
    case 'd':
      arg->u.dval = strtod(text, &end);
      break;
    case 's':
      arg->u.str = strdup(text);
      return 0;
    case 'C':
      arg->count = (uint32_t)strlen(text);
      arg->u.carr = strdup(text);
      return 0;
    case 'h':
      if (strncmp(text, "fd:", 3) == 0)
        arg->u.hval = dup(atoi(text + 3));
      else
        arg->u.hval = open(text, O_RDONLY | O_CLOEXEC);
      return arg->u.hval >= 0 ? 0 : -1;
    default:
      return parse_list(t, text, arg);
  }
  return end == text || *end != '\0' || errno != 0 ? -1 : 0;
}

static void print_result(const SrpcArg* a) {
  printf("%c ", a->type);
  switch (a->type) {
    case 'b':
      printf("%s", a->u.bval ? "true" : "false");
      break;
    case 'i':
      printf("%" PRId32, a->u.ival);
      break;
    case 'l':
      printf("%" PRId64, a->u.lval);
      break;
    case 'd':
      printf("%.17g", a->u.dval);
      break;
    case 'h':
      printf("fd %d", a->u.hval);
      break;
    case 's':
      printf("%s", a->u.str ? a->u.str : "");
      break;
    case 'C':
      for (uint32_t i = 0; i < a->count; i++) {
        unsigned char c = (unsigned char)a->u.carr[i];
        printf(c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
      }
      break;
    default:
      for (uint32_t i = 0; i < a->count; i++) {
        if (a->type == 'I')
          printf("%s%" PRId32, i ? "," : "", a->u.iarr[i]);
        else if (a->type == 'L')
          printf("%s%" PRId64, i ? "," : "", a->u.larr[i]);
        else
          printf("%s%.17g", i ? "," : "", a->u.darr[i]);
      }
  }
  printf("\n");
}

static void release(SrpcArg* args, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (args[i].type == 'h') {
      if (args[i].u.hval >= 0)
        close(args[i].u.hval);
    } else if (srpc_type_element_size(args[i].type)) {
      free(args[i].u.ptr);
    }
  }
}

/* ---- Commands. ---- */

static int list(SrpcChannel* ch) {
  for (size_t i = 0; i < srpc_channel_method_count(ch); i++) {
    const SrpcSignature* s = srpc_channel_method(ch, i);
    printf("%zu %s:%s:%s\n", i, s->name, s->ins, s->outs);
  }
  return 0;
}

static int call(SrpcChannel* ch, int argc, char** argv) {
  if (argc < 1)
    return usage();
  int number = srpc_channel_lookup(ch, argv[0]);
  if (number < 0) {
    fprintf(stderr, "srpc: no method %s\n", argv[0]);
    return 1;
  }
  const SrpcSignature* sig = srpc_channel_method(ch, (size_t)number);
  if (sig->ins[0] == SRPC_VARIADIC || sig->outs[0] == SRPC_VARIADIC) {
    fprintf(stderr, "srpc: %s is variadic: it cannot be called from here\n",
            sig->name);
    return 1;
  }
  size_t num_in = strlen(sig->ins), num_out = strlen(sig->outs);
  if ((size_t)argc - 1 != num_in) {
    fprintf(stderr, "srpc: %s takes %zu arguments (%s)\n", sig->name, num_in,
            sig->ins);
    return 1;
  }
  SrpcArg in[SRPC_MAX_ARGS], out[SRPC_MAX_ARGS];
  for (size_t i = 0; i < num_in; i++) {
    if (parse_arg(sig->ins[i], argv[i + 1], &in[i]) != 0) {
      fprintf(stderr, "srpc: argument %zu: not a '%c' literal: %s\n", i + 1,
              sig->ins[i], argv[i + 1]);
      release(in, i);
      return 1;
    }
  }
  for (size_t i = 0; i < num_out; i++) {
    memset(&out[i], 0, sizeof(out[i]));
    out[i].type = sig->outs[i];
    if (sig->outs[i] != 's' && srpc_type_element_size(sig->outs[i])) {
      out[i].count = RESULT_CAPACITY;
      out[i].u.ptr = calloc(RESULT_CAPACITY, 8);
    }
  }
  int r = srpc_invoke_args(ch, (uint32_t)number, in, num_in, out, num_out);
  if (r == SRPC_RESULT_OK) {
    for (size_t i = 0; i < num_out; i++)
      print_result(&out[i]);
  } else {
    printf("error %d %s\n", r, srpc_result_string(r));
  }
  fflush(stdout);
  release(in, num_in);
  release(out, r == SRPC_RESULT_OK ? num_out : 0);
  for (size_t i = 0; r != SRPC_RESULT_OK && i < num_out; i++) {
    if (out[i].type != 'h')
      free(out[i].u.ptr);
  }
  return r == SRPC_RESULT_OK ? 0 : 1;
}

static int run_command(SrpcChannel* ch, int argc, char** argv) {
  if (argc == 0 || strcmp(argv[0], "list") == 0)
    return list(ch);
  if (strcmp(argv[0], "call") == 0)
    return call(ch, argc - 1, argv + 1);
  return usage();
}

/* Each line of standard input is a command; words are separated by spaces
 * (no quoting); blank lines and lines starting with '#' are skipped. */
static int script(SrpcChannel* ch) {
  char line[65536];
  int status = 0;
  while (fgets(line, sizeof(line), stdin) != NULL) {
    char* argv[SRPC_MAX_ARGS + 2];
    int argc = 0;
    for (char* tok = strtok(line, " \t\r\n"); tok && argc < SRPC_MAX_ARGS + 2;
         tok = strtok(NULL, " \t\r\n"))
      argv[argc++] = tok;
    if (argc == 0 || argv[0][0] == '#')
      continue;
    printf("> %s\n", argv[0]);
    if (run_command(ch, argc, argv) != 0)
      status = 1;
  }
  return status;
}

/* Starts `argv` with a BoundSocket as descriptor 3; returns the address. */
static int launch(char** argv, pid_t* pid) {
  int bound[2];
  if (imc_makeboundsock(bound) != 0)
    return -1;
  *pid = fork();
  if (*pid == 0) {
    /* dup2 onto itself would keep close-on-exec: clear it instead. */
    if ((bound[0] == 3 ? fcntl(3, F_SETFD, 0) : dup2(bound[0], 3)) < 0)
      _exit(126);
    execvp(argv[0], argv);
    fprintf(stderr, "srpc: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(bound[0]);
  return *pid < 0 ? -1 : bound[1];
}

int main(int argc, char** argv) {
  int i = 1, trace = 0, fd = -1, address = -1;
  pid_t child = -1;
  if (i < argc && strcmp(argv[i], "--trace") == 0) {
    trace = 1;
    i++;
  }
  if (i + 1 >= argc)
    return usage();
  if (strcmp(argv[i], "--fd") == 0) {
    fd = atoi(argv[i + 1]);
    i += 2;
  } else if (strcmp(argv[i], "--address-fd") == 0) {
    address = atoi(argv[i + 1]);
    i += 2;
  } else if (strcmp(argv[i], "--launch") == 0) {
    int end = i + 1;
    while (end < argc && strcmp(argv[end], "--") != 0)
      end++;
    if (end == argc || end == i + 1)
      return usage();
    argv[end] = NULL;
    address = launch(argv + i + 1, &child);
    i = end + 1;
  } else {
    return usage();
  }
  if (address >= 0) {
    fd = imc_connect_ex(address, IMC_CONNECT_CONFIRM, 10000);
    if (fd < 0) {
      fprintf(stderr, "srpc: connect: %s\n", strerror(errno));
      return 1;
    }
    close(address);
  }
  if (trace)
    fd = start_trace(fd);
  SrpcChannel* ch = srpc_channel_new(fd, NULL, 0);
  int r = ch ? srpc_channel_discover(ch) : SRPC_RESULT_NO_MEMORY;
  int status;
  if (r != SRPC_RESULT_OK) {
    fprintf(stderr, "srpc: discovery failed: %s\n", srpc_result_string(r));
    status = 1;
  } else if (i < argc && strcmp(argv[i], "script") == 0) {
    status = script(ch);
  } else {
    status = run_command(ch, argc - i, argv + i);
  }
  srpc_channel_free(ch);
  if (child > 0) {
    int st;
    waitpid(child, &st, 0);
  }
  return status;
}
