// What a host decodes from a module, fed with fuzzed datagrams and
// descriptors:
//   mode 0: message framing alone (plugin_reassembly_feed), pure;
//   mode 1: a live framed message pipe (postMessage) over a socket pair;
//   mode 2: a live raw pipe (make_socket) over a socket pair;
//   mode 3: the host's control service (log, channel) on a live SRPC
//           channel, as a module's control connection reaches it.
// Invariants: no crash, no sanitizer report; every message delivered is
// whole (its length is what its first datagram announced); after the
// peer's end closes, the pipe reports the end, and no descriptor the
// fuzzer sent is left open anywhere in the process.
//
// Input: [mode] then datagrams, each [len:u16] [num_fds] [bytes...]. In
// mode 3, a datagram starting with 'F' gets SRPC length records making it
// one whole message (reaching the decoder quickly).

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "plugin/common/plugin_frame.h"
#include "plugin/common/plugin_pipe.h"
#include "plugin/common/plugin_protocol.h"
#include "plugin/host/host_testing.h"
#include "testing/harness/descriptors.h"

namespace {

struct Datagram {
  std::vector<uint8_t> bytes;
  size_t num_fds;
};

std::vector<Datagram> Parse(fuzz::Reader* in, bool srpc_records) {
  std::vector<Datagram> out;
  while (!in->Done() && out.size() < 64) {
    size_t want = in->U16() % 4096;
    Datagram d;
    d.num_fds = in->Byte() % 5;
    size_t len;
    const uint8_t* p = in->Take(want, &len);
    if (srpc_records && len > 0 && p[0] == 'F') {
      uint32_t r[4] = {
          static_cast<uint32_t>(len - 1), static_cast<uint32_t>(d.num_fds),
          static_cast<uint32_t>(len - 1), static_cast<uint32_t>(d.num_fds)};
      d.bytes.assign(reinterpret_cast<uint8_t*>(r),
                     reinterpret_cast<uint8_t*>(r) + sizeof(r));
      d.bytes.insert(d.bytes.end(), p + 1, p + len);
    } else {
      d.bytes.assign(p, p + len);
    }
    out.push_back(d);
  }
  return out;
}

std::vector<int> OpenFds(size_t n) {
  std::vector<int> fds;
  for (size_t i = 0; i < n; i++)
    fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

void Reassemble(const std::vector<Datagram>& ds) {
  PluginReassembly r;
  plugin_reassembly_init(&r, 1 << 16);
  for (const Datagram& d : ds) {
    std::vector<int> fds = OpenFds(d.num_fds);
    size_t announced = r.started ? r.total : 0;
    if (!r.started && d.bytes.size() >= PLUGIN_FRAME_HEADER_BYTES)
      memcpy(&announced, d.bytes.data() + 4, 4);
    int got = plugin_reassembly_feed(&r, d.bytes.data(), d.bytes.size(),
                                     fds.data(), fds.size(), 0);
    if (got == 1) {
      PluginMessage m;
      plugin_reassembly_take(&r, &m);
      FUZZ_CHECK(m.len == (announced & 0xffffffffu));
      plugin_message_free(&m);
    }
    FUZZ_CHECK(got != -1 || !r.started);
  }
  plugin_reassembly_reset(&r);
}

// Sends the datagrams without blocking (a reader that stops at its window
// must not hang the fuzzer), then closes.
void SendAll(int fd, const std::vector<Datagram>& ds) {
  for (const Datagram& d : ds) {
    std::vector<int> fds = OpenFds(d.num_fds);
    NaClImcMsgIoVec iov = {const_cast<uint8_t*>(d.bytes.data()),
                           d.bytes.size()};
    NaClImcMsgHdr msg = {&iov, 1, fds.data(), fds.size(), 0};
    imc_sendmsg(fd, &msg, IMC_NONBLOCK);
    for (int f : fds)
      close(f);
  }
  close(fd);
}

void Pipe(const std::vector<Datagram>& ds, PluginPipeMode mode) {
  int pair[2];
  FUZZ_CHECK(imc_socketpair(pair) == 0);
  PluginPipeConfig config = {mode, 1 << 16, nullptr, nullptr, nullptr};
  PluginPipe* p = plugin_pipe_new(pair[0], &config);
  FUZZ_CHECK(p != nullptr);
  SendAll(pair[1], ds);
  for (;;) {
    PluginMessage m;
    int error = 0;
    int r = plugin_pipe_pop_wait(p, &m, &error, 10000, nullptr);
    FUZZ_CHECK(r != -PLUGIN_ERROR_TIMED_OUT);  // the end always comes
    if (r != 1)
      break;
    plugin_message_free(&m);
  }
  plugin_pipe_free(p);
}

void Control(const std::vector<Datagram>& ds) {
  PluginHost* host = plugin_host_new(nullptr);
  FUZZ_CHECK(host != nullptr);
  PluginModuleCallbacks cb = {};
  cb.on_log = [](PluginModule*, int, const char* text, void*) {
    FUZZ_CHECK(strlen(text) <= PLUGIN_MAX_LOG_BYTES);
  };
  PluginModule* m = host_module_new_unlaunched(host, &cb);
  FUZZ_CHECK(m != nullptr);
  int pair[2];
  FUZZ_CHECK(imc_socketpair(pair) == 0);
  SrpcChannel* ch =
      srpc_channel_new(pair[0], host_module_control_service(m), 1 << 20);
  std::thread serving([ch] { srpc_channel_serve(ch); });
  SendAll(pair[1], ds);
  serving.join();
  srpc_channel_free(ch);
  plugin_host_run_until_idle(host);
  plugin_module_free(m);
  plugin_host_run_until_idle(host);
  plugin_host_free(host);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t fds_before = harness::CountOpenDescriptors();
  fuzz::Reader in(data, size);
  int mode = in.Byte() % 4;
  std::vector<Datagram> ds = Parse(&in, mode == 3);
  switch (mode) {
    case 0:
      Reassemble(ds);
      break;
    case 1:
      Pipe(ds, PLUGIN_PIPE_FRAMED);
      break;
    case 2:
      Pipe(ds, PLUGIN_PIPE_RAW);
      break;
    default:
      Control(ds);
      break;
  }
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
