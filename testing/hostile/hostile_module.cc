// hostile_module: a module that gets through start-up like any other, and
// then attacks the host that launched it.
//
//   hostile_module ATTACK [COUNT]
//
// It accepts the host's two connections on its BoundSocket (descriptor 3),
// answers the control methods by hand (start:h:i takes the message socket)
// and serves add:ii:i on its service channel. Once started:
//   msg-garbage    COUNT datagrams of random bytes on the message socket,
//                  each with 0..8 descriptors
//   msg-lying      message frames that lie: a first frame announcing 4 GiB,
//                  frames longer than announced, MORE without BEGN
//   msg-max-fds    COUNT one-byte messages with 253 descriptors each
//   msg-flood      64 KiB messages as fast as the socket takes them
//   msg-half       the first frame of a 1 MiB message, then exit
//   control-garbage COUNT random datagrams on the control channel
//   log-flood      COUNT calls of the host's log:is: with 4 KiB of text
//   channel-flood  COUNT calls of the host's channel::h
// Then it waits to be killed (the host's shutdown, or SIGKILL).

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "imc/imc.h"
#include "srpc/srpc.h"
#include "testing/hostile/hostile_io.h"

namespace {

const int kBound = 3;
const uint32_t kBegin = 0x4e474542u;  // "BEGN": docs/plugin.md
const uint32_t kMore = 0x45524f4du;   // "MORE"

std::string g_attack;
int g_count = 100;
int g_message_fd = -1;
SrpcChannel* g_control = nullptr;
int g_control_fd = -1;
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
bool g_started = false;

using hostile::Put32;
using hostile::Random;
using hostile::Send;

std::string Frame(uint32_t magic, uint32_t value, size_t payload) {
  std::string d;
  Put32(&d, magic);
  Put32(&d, value);
  d.append(payload, 'x');
  return d;
}

std::vector<int> SomeDescriptors(size_t n) {
  std::vector<int> fds;
  for (size_t i = 0; i < n; i++)
    fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds)
    close(fd);
}

void Garbage(int fd) {
  for (int i = 0; i < g_count; i++) {
    std::string bytes(1 + Random() % (64 * 1024), '\0');
    for (char& c : bytes)
      c = static_cast<char>(Random());
    std::vector<int> fds = SomeDescriptors(Random() % 9);
    int r = Send(fd, bytes, fds);
    CloseAll(fds);
    if (r < 0)
      return;  // the host stopped reading: delivered
  }
}

void Attack() {
  int fd = g_message_fd;
  usleep(200 * 1000);  // the host's start-up ends first (discovery)
  if (srpc_channel_discover(g_control) != SRPC_RESULT_OK)
    _exit(4);
  if (g_attack == "msg-garbage") {
    Garbage(fd);
  } else if (g_attack == "msg-lying") {
    Send(fd, Frame(kBegin, 0xffffffffu, 100), {});
    Send(fd, Frame(kBegin, 10, 100), {});
    Send(fd, Frame(kMore, 0, 100), {});
  } else if (g_attack == "msg-max-fds") {
    for (int i = 0; i < g_count; i++) {
      std::vector<int> fds = SomeDescriptors(253);
      int r = Send(fd, Frame(kBegin, 1, 1), fds);
      CloseAll(fds);
      if (r < 0)
        return;
    }
  } else if (g_attack == "msg-flood") {
    std::string frame = Frame(kBegin, 65536, 65536);
    while (Send(fd, frame, {}) >= 0) {
    }
  } else if (g_attack == "msg-half") {
    Send(fd, Frame(kBegin, 1 << 20, 65536), {});
    _exit(0);
  } else if (g_attack == "control-garbage") {
    // Straight onto the control socket, under the host's SRPC reader.
    Garbage(g_control_fd);
  } else if (g_attack == "log-flood") {
    std::string text(4000, 'l');
    for (int i = 0; i < g_count; i++) {
      if (srpc_invoke(g_control, "log:is:", 1, text.c_str()) != SRPC_RESULT_OK)
        return;
    }
  } else if (g_attack == "channel-flood") {
    for (int i = 0; i < g_count; i++) {
      int h = -1;
      if (srpc_invoke(g_control, "channel::h", &h) != SRPC_RESULT_OK)
        return;
      if (h >= 0)
        close(h);
    }
  }
}

void Start(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  pthread_mutex_lock(&g_mu);
  if (g_started || in[0].u.hval < 0) {
    pthread_mutex_unlock(&g_mu);
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  g_message_fd = in[0].u.hval;
  in[0].u.hval = -1;  // kept
  g_started = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  out[0].u.ival = 1;  // the protocol version
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Exit(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
  _exit(0);
}

void Ok(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kControl[] = {
    {"start:h:i", Start}, {"shutdown::", Exit}, {"address:sh:", Ok},
    {"ping::", Ok},       {"objects:h:", Ok},
};
const SrpcMethod kService[] = {{"add:ii:i", Add}};

void* Serve(void* ch) {
  srpc_channel_serve(static_cast<SrpcChannel*>(ch));
  _exit(0);  // the host is gone
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    return 2;
  g_attack = argv[1];
  if (argc > 2)
    g_count = atoi(argv[2]);
  SrpcService* control =
      srpc_service_new(kControl, 5, nullptr, nullptr, nullptr);
  SrpcService* service =
      srpc_service_new(kService, 1, nullptr, nullptr, nullptr);
  int c = imc_accept(kBound);
  int s = imc_accept(kBound);
  if (control == nullptr || service == nullptr || c < 0 || s < 0)
    return 3;
  g_control_fd = c;
  g_control = srpc_channel_new(c, control, 0);
  SrpcChannel* service_channel = srpc_channel_new(s, service, 0);
  pthread_t t1, t2;
  pthread_create(&t1, nullptr, Serve, g_control);
  pthread_create(&t2, nullptr, Serve, service_channel);
  pthread_mutex_lock(&g_mu);
  while (!g_started)
    pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  Attack();
  for (;;)
    pause();
}
