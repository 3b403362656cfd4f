/* A module for the broker's tests: each method does file work through the
 * broker (or, to show the sandbox, directly) and reports errno values.
 * Statically linked where the build allows, so it can run sandboxed. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin/broker/broker_client.h"
#include "plugin/module/plugin_runtime.h"

static void done(SrpcRpc* rpc) {
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void set_broker(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  broker_set_default(in[0].u.hval);
  in[0].u.hval = -1; /* kept */
  done(rpc);
}

/* open_read:s:iC: errno (0: read), and the first bytes of the file. */
static void open_read(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = broker_open(in[0].u.str, O_RDONLY);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    uint32_t len = n > 0 ? (uint32_t)n : 0;
    if (len > out[1].count)
      len = out[1].count;
    char* p = srpc_arg_alloc(&out[1], len);
    if (p != NULL)
      memcpy(p, buf, len);
  }
  done(rpc);
}

/* open_write:sC:i: creates or truncates the file and writes the bytes. */
static void open_write(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = broker_open(in[0].u.str, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0) {
    if (write(fd, in[1].u.carr, in[1].count) != (ssize_t)in[1].count)
      out[0].u.ival = errno ? errno : EIO;
    close(fd);
  }
  done(rpc);
}

static void open_flags(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = broker_open_at(broker_default(), in[0].u.str, in[1].u.ival, 0600);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0)
    close(fd);
  done(rpc);
}

static void stat_size(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  struct stat st;
  out[0].u.ival = broker_stat(in[0].u.str, &st) == 0 ? 0 : errno;
  out[1].u.lval = out[0].u.ival == 0 ? (int64_t)st.st_size : -1;
  done(rpc);
}

static void access_mode(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  out[0].u.ival = broker_access(in[0].u.str, in[1].u.ival) == 0 ? 0 : errno;
  done(rpc);
}

static void direct_open(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = open(in[0].u.str, O_RDONLY | O_CLOEXEC);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0)
    close(fd);
  done(rpc);
}

static void direct_socket(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)u;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0)
    close(fd);
  done(rpc);
}

typedef struct Job {
  const char* path;
  int count;
  int failures;
} Job;

static void* open_loop(void* arg) {
  Job* job = arg;
  for (int i = 0; i < job->count; i++) {
    int fd = broker_open(job->path, O_RDONLY);
    if (fd < 0)
      job->failures++;
    else
      close(fd);
  }
  return NULL;
}

/* threads_open:sii:i: `threads` threads open the file `count` times each
 * at once; answers how many opens failed. */
static void threads_open(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int n = in[1].u.ival > 64 ? 64 : in[1].u.ival;
  pthread_t t[64];
  bool started[64];
  Job jobs[64];
  int failures = 0;
  for (int i = 0; i < n; i++) {
    jobs[i] = (Job){in[0].u.str, in[2].u.ival, 0};
    started[i] = pthread_create(&t[i], NULL, open_loop, &jobs[i]) == 0;
    if (!started[i])
      jobs[i].failures = jobs[i].count;
  }
  for (int i = 0; i < n; i++) {
    if (started[i])
      pthread_join(t[i], NULL);
    failures += jobs[i].failures;
  }
  out[0].u.ival = failures;
  done(rpc);
}

/* nofile_flood:si:iii: lowers RLIMIT_NOFILE to `limit`, opens the file
 * without closing until an open fails; answers (opens that worked, the
 * errno of the failure, 0 if an open works again once they are closed). */
static void nofile_flood(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  low = old;
  low.rlim_cur = (rlim_t)in[1].u.ival;
  setrlimit(RLIMIT_NOFILE, &low);
  int fds[4096];
  int n = 0, error = 0;
  while (n < 4096) {
    int fd = broker_open(in[0].u.str, O_RDONLY);
    if (fd < 0) {
      error = errno;
      break;
    }
    fds[n++] = fd;
  }
  for (int i = 0; i < n; i++)
    close(fds[i]);
  int fd = broker_open(in[0].u.str, O_RDONLY);
  out[2].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0)
    close(fd);
  setrlimit(RLIMIT_NOFILE, &old);
  out[0].u.ival = n;
  out[1].u.ival = error;
  done(rpc);
}

static void* nothing(void* arg) {
  return arg;
}

/* probe::I: what the sandbox lets through, as errno values (0: worked):
 * [0] socketpair(AF_UNIX, SOCK_DGRAM)  [1] socketpair(AF_UNIX,
 * SOCK_SEQPACKET)  [2] kill(parent, 0)  [3] kill(self, 0)  [4] a thread
 * [5] unshare(CLONE_NEWUSER)  [6] a system call newer than the filter
 * [7] pidfd_open(parent)  [8] mkdir by name  [9] a queued signal to the
 * parent  [10] prlimit of the parent  [11] prlimit of itself */
static void probe(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)u;
  int32_t* r = srpc_arg_alloc(&out[0], 12);
  if (r == NULL) {
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  int sv[2];
  r[0] = socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0 ? 0 : errno;
  if (r[0] == 0) {
    close(sv[0]);
    close(sv[1]);
  }
  r[1] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0 ? 0
                                                                        : errno;
  if (r[1] == 0) {
    close(sv[0]);
    close(sv[1]);
  }
  r[2] = kill(getppid(), 0) == 0 ? 0 : errno;
  r[3] = kill(getpid(), 0) == 0 ? 0 : errno;
  pthread_t t;
  r[4] = pthread_create(&t, NULL, nothing, NULL);
  if (r[4] == 0)
    pthread_join(t, NULL);
  r[5] = unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
  r[6] = syscall(460 + 40) == 0 ? 0 : errno;
  r[7] = syscall(SYS_pidfd_open, getppid(), 0) >= 0 ? 0 : errno;
  r[8] = mkdir("/tmp/broker_probe_never", 0700) == 0 ? 0 : errno;
  if (r[8] == 0)
    rmdir("/tmp/broker_probe_never");
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  r[9] = syscall(SYS_rt_sigqueueinfo, getppid(), 0, &info) == 0 ? 0 : errno;
  struct rlimit lim;
  r[10] = prlimit(getppid(), RLIMIT_NOFILE, NULL, &lim) == 0 ? 0 : errno;
  r[11] = prlimit(getpid(), RLIMIT_NOFILE, NULL, &lim) == 0 ? 0 : errno;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static const SrpcMethod kMethods[] = {
    {"probe::I", probe},
    {"set_broker:h:", set_broker},
    {"open_read:s:iC", open_read},
    {"open_write:sC:i", open_write},
    {"open_flags:si:i", open_flags},
    {"stat_size:s:il", stat_size},
    {"access:si:i", access_mode},
    {"direct_open:s:i", direct_open},
    {"direct_socket::i", direct_socket},
    {"threads_open:sii:i", threads_open},
    {"nofile_flood:si:iii", nofile_flood},
};

int main(void) {
  PluginRuntimeConfig config = {0};
  config.methods = kMethods;
  config.num_methods = sizeof(kMethods) / sizeof(kMethods[0]);
  if (plugin_runtime_init(&config) != PLUGIN_OK)
    return 2;
  for (;;)
    pause();
}
