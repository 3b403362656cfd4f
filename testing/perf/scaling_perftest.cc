// scaling_perftests: how the cost of each layer grows, beside its raw
// baseline measured in the same run (interleaved, medians of the rounds).
//
//   scaling_perftests [--quick] [--csv FILE]
//
// Curves (CSV names "curve/<curve>/<x>"):
//   imc-size      imc ping-pong of x bytes vs sendmsg/recvmsg
//   srpc-size     srpc echo of x bytes vs the same bytes in raw datagrams
//   imc-fds       imc ping-pong carrying x descriptors vs raw SCM_RIGHTS
//   callers       srpc calls from x threads on one channel, per call, vs
//                 one thread
//   connections   imc connect + accept with x connections held open, per
//                 connection, vs a socket pair made and handed over
//   queue         postMessage into a queue holding x bytes (64 KiB
//                 messages), per message, vs a copy into a plain list
// Memory (CSV names "memory/<what>", bytes per unit, heap and resident):
//   idle-channel, queued-message (16 B), proxy.

#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "imc/imc.h"
#include "plugin/common/plugin_pipe.h"
#include "plugin/objects/plugin_objects.h"
#include "srpc/srpc.h"
#include "testing/perf/perf.h"

namespace {

const size_t kChunk = 64 * 1024;

// ---- Peers ----

// Echoes every datagram with its descriptors, through raw calls.
void RawEcho(int fd) {
  std::vector<char> buf(IMC_MAX_DATA_BYTES);
  std::vector<int> fds(IMC_MAX_DESCRIPTORS);
  for (;;) {
    NaClImcMsgIoVec iov = {buf.data(), buf.size()};
    NaClImcMsgHdr msg = {&iov, 1, fds.data(), fds.size(), 0};
    int n = imc_recvmsg(fd, &msg, 0);
    if (n <= 0 && msg.desc_length == 0)
      return;
    iov.length = static_cast<size_t>(n);
    imc_sendmsg(fd, &msg, 0);
    for (size_t i = 0; i < msg.desc_length; i++)
      close(fds[i]);
  }
}

void Echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  void* p = srpc_arg_alloc(&out[0], in[0].count);
  if (in[0].count > 0)
    memcpy(p, in[0].u.carr, in[0].count);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kMethods[] = {{"echo:C:C", Echo}, {"add:ii:i", Add}};

// Serves with `loops` server loops on the channel.
void Serve(int fd, int num_loops) {
  SrpcService* s = srpc_service_new(kMethods, 2, nullptr, nullptr, nullptr);
  SrpcChannel* ch = srpc_channel_new(fd, s, 0);
  std::vector<std::thread> loops;
  for (int i = 0; i < num_loops; i++)
    loops.emplace_back([ch] { srpc_channel_serve(ch); });
  for (auto& t : loops)
    t.join();
  srpc_channel_free(ch);
  srpc_service_free(s);
}

// The same bytes through raw datagrams of kChunk: out, then back.
void RawTransfer(int fd,
                 const std::vector<char>& out,
                 std::vector<char>* in,
                 size_t bytes) {
  size_t sent = 0, got = 0;
  do {
    size_t n = std::min(kChunk, bytes - sent);
    NaClImcMsgIoVec iov = {const_cast<char*>(out.data()) + sent, n};
    NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
    imc_sendmsg(fd, &msg, 0);
    sent += n;
    NaClImcMsgIoVec riov = {in->data() + got, kChunk};
    NaClImcMsgHdr rmsg = {&riov, 1, nullptr, 0, 0};
    int r = imc_recvmsg(fd, &rmsg, 0);
    got += r > 0 ? static_cast<size_t>(r) : 0;
  } while (got < bytes);
}

// A ping-pong of `len` bytes and `fds` through imc (or raw calls).
void PingPong(int fd,
              char* buf,
              size_t len,
              int* fds,
              size_t num_fds,
              bool raw) {
  if (raw) {
    struct iovec iov = {buf, len};
    char control[CMSG_SPACE(sizeof(int) * IMC_MAX_DESCRIPTORS)] = {};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (num_fds > 0) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * num_fds);
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * num_fds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * num_fds);
    }
    sendmsg(fd, &msg, MSG_NOSIGNAL);
    struct msghdr in = {};
    in.msg_iov = &iov;
    in.msg_iovlen = 1;
    in.msg_control = control;
    in.msg_controllen = sizeof(control);
    recvmsg(fd, &in, MSG_CMSG_CLOEXEC);
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&in); c != nullptr;
         c = CMSG_NXTHDR(&in, c)) {
      int* got = reinterpret_cast<int*>(CMSG_DATA(c));
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; i++)
        close(got[i]);
    }
    return;
  }
  NaClImcMsgIoVec iov = {buf, len};
  NaClImcMsgHdr msg = {&iov, 1, fds, num_fds, 0};
  imc_sendmsg(fd, &msg, 0);
  std::vector<int> back(IMC_MAX_DESCRIPTORS);
  NaClImcMsgHdr in = {&iov, 1, back.data(), back.size(), 0};
  imc_recvmsg(fd, &in, 0);
  for (size_t i = 0; i < in.desc_length; i++)
    close(back[i]);
}

std::string Curve(const std::string& curve, size_t x) {
  return "curve/" + curve + "/" + std::to_string(x);
}

size_t HeapBytes() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

size_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "re");
  long pages = 0, resident = 0;
  if (f != nullptr) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return static_cast<size_t>(resident) * 4096;
}

void PrintMemory(const std::string& what,
                 double heap,
                 double resident,
                 const std::string& csv) {
  printf("%-36s %10.0f B heap %10.0f B resident\n", ("memory/" + what).c_str(),
         heap, resident);
  if (csv.empty())
    return;
  FILE* f = fopen(csv.c_str(), "ae");
  if (f != nullptr) {
    fprintf(f, "\"memory/%s\",%.1f,%.1f,,,\n", what.c_str(), heap, resident);
    fclose(f);
  }
}

const PluginMethodDef kObjectMethods[] = {
    {"add:ii:i", [](PluginObjectCall* call, SrpcArg* in, SrpcArg* out, void*) {
       out[0].u.ival = in[0].u.ival + in[1].u.ival;
       plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
     }}};
const PluginObjectClass kObjectClass = {kObjectMethods, 1, nullptr, nullptr};

}  // namespace

int main(int argc, char** argv) {
  const perf::Options options = perf::ParseOptions(argc, argv);
  const std::string& csv = options.csv;
  const int reps = options.repetitions;
  const int scale = options.scale;
  // Room for 10,000 connections held open (two descriptors each, both ends
  // in this process): the hard limit is raised where allowed (root), else
  // the soft one goes to it and the curve stops where it must.
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  struct rlimit want = {65536, 65536};
  if (lim.rlim_max < want.rlim_max && setrlimit(RLIMIT_NOFILE, &want) == 0) {
    lim = want;
  } else {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  int raw = perf::ForkPeer(RawEcho);
  // One server loop for the sizes (what srpc_perftests measures); four
  // for many callers, so that calls are served concurrently.
  int srv = perf::ForkPeer([](int fd) { Serve(fd, 1); });
  int srv4 = perf::ForkPeer([](int fd) { Serve(fd, 4); });
  SrpcChannel* ch = srpc_channel_new(srv, nullptr, 0);
  SrpcChannel* ch4 = srpc_channel_new(srv4, nullptr, 0);
  if (raw < 0 || srpc_channel_discover(ch) != SRPC_RESULT_OK ||
      srpc_channel_discover(ch4) != SRPC_RESULT_OK) {
    fprintf(stderr, "scaling_perftests: cannot start the peers\n");
    return 1;
  }
  std::vector<char> out(16 << 20, 'x'), in((16 << 20) + kChunk);
  perf::PrintHeader("raw", "layer");

  for (size_t size : {16, 256, 4096, 65536, 131072}) {
    perf::Print(
        perf::Compare(
            Curve("imc-size", size),
            [&] { PingPong(raw, in.data(), size, nullptr, 0, true); },
            [&] { PingPong(raw, in.data(), size, nullptr, 0, false); },
            std::max(20, 20000 / scale / (1 + static_cast<int>(size >> 14))),
            reps),
        csv);
  }
  for (size_t size : {size_t{16}, size_t{1} << 10, size_t{16} << 10,
                      size_t{64} << 10, size_t{256} << 10, size_t{1} << 20,
                      size_t{4} << 20, size_t{16} << 20}) {
    int iterations = static_cast<int>(std::max<size_t>(
        3,
        (size_t{32} << 20) / (size + 4096) / 8 / static_cast<size_t>(scale)));
    perf::Print(
        perf::Compare(
            Curve("srpc-size", size), [&] { RawTransfer(raw, out, &in, size); },
            [&] {
              uint32_t n = static_cast<uint32_t>(size);
              srpc_invoke(ch, "echo", static_cast<uint32_t>(size), out.data(),
                          &n, in.data());
            },
            std::min(iterations, 5000), reps),
        csv);
  }
  std::vector<int> devnulls;
  for (int i = 0; i < IMC_MAX_DESCRIPTORS; i++)
    devnulls.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  for (size_t n : {0, 1, 8, 64, 253}) {
    perf::Print(
        perf::Compare(
            Curve("imc-fds", n),
            [&] { PingPong(raw, in.data(), 16, devnulls.data(), n, true); },
            [&] { PingPong(raw, in.data(), 16, devnulls.data(), n, false); },
            std::max(20, 4000 / scale / (1 + static_cast<int>(n / 8))), reps),
        csv);
  }
  for (int fd : devnulls)
    close(fd);

  // Calls per call from N threads on one channel, against one thread.
  const int calls = 8000 / scale;
  auto run = [&](int threads) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++) {
      ts.emplace_back([&] {
        for (int i = 0; i < calls / threads; i++) {
          int32_t sum;
          srpc_invoke(ch4, "add", 1, 2, &sum);
        }
      });
    }
    for (auto& t : ts)
      t.join();
  };
  for (int threads : {1, 2, 4, 8, 16}) {
    perf::Comparison c = perf::Compare(
        Curve("callers", static_cast<size_t>(threads)), [&] { run(1); },
        [&] { run(threads); }, 1, reps);
    for (double& v : c.baseline_ns)
      v /= calls;
    for (double& v : c.subject_ns)
      v /= calls;
    perf::Print(c, csv);
  }

  // Connections held open: each new one connected and accepted.
  // Two descriptors a connection while they are all held (both ends are
  // here); where the limit cannot go high enough for 10,000 (a container
  // without CAP_SYS_RESOURCE keeps its hard limit), the last point is the
  // most that fits, in thousands.
  size_t most = (static_cast<size_t>(lim.rlim_cur) - 64) / 2 / 1000 * 1000;
  for (size_t held :
       {size_t{1}, size_t{10}, size_t{100}, size_t{1000}, size_t{10000}}) {
    if (options.quick && held > 100)
      break;
    if (held * 2 + 64 > lim.rlim_cur) {
      if (most <= 1000)
        break;
      printf("connections: %zu instead of %zu (descriptor limit %llu)\n", most,
             held, static_cast<unsigned long long>(lim.rlim_cur));
      held = most;
    }
    perf::Comparison c = perf::Compare(
        Curve("connections", held),
        [&] {
          std::vector<int> keep;
          for (size_t i = 0; i < held; i++) {
            int pair[2];
            imc_socketpair(pair);
            NaClImcMsgIoVec iov = {const_cast<char*>("c"), 1};
            NaClImcMsgHdr msg = {&iov, 1, &pair[1], 1, 0};
            int hand[2];
            imc_socketpair(hand);
            imc_sendmsg(hand[0], &msg, 0);
            int got = -1;
            NaClImcMsgHdr rmsg = {&iov, 1, &got, 1, 0};
            char c1;
            iov.base = &c1;
            imc_recvmsg(hand[1], &rmsg, 0);
            close(hand[0]);
            close(hand[1]);
            close(pair[1]);
            keep.push_back(pair[0]);
            keep.push_back(got);
          }
          for (int fd : keep)
            close(fd);
        },
        [&] {
          int sock[2];
          imc_makeboundsock(sock);
          std::vector<int> keep;
          for (size_t i = 0; i < held; i++) {
            int conn = imc_connect(sock[1]);
            int accepted = imc_accept(sock[0]);
            keep.push_back(conn);
            keep.push_back(accepted);
          }
          for (int fd : keep)
            close(fd);
          close(sock[0]);
          close(sock[1]);
        },
        1, reps);
    for (double& v : c.baseline_ns)
      v /= static_cast<double>(held);
    for (double& v : c.subject_ns)
      v /= static_cast<double>(held);
    perf::Print(c, csv);
  }

  // postMessage into a queue that grows to `bytes` (the peer reads
  // nothing), per 64 KiB message, against copying into a plain list.
  std::vector<char> body(kChunk, 'q');
  for (size_t bytes : {size_t{1} << 20, size_t{16} << 20, size_t{256} << 20,
                       size_t{1} << 30}) {
    if (options.quick && bytes > (size_t{16} << 20))
      break;
    size_t count = bytes / kChunk;
    perf::Comparison c = perf::Compare(
        Curve("queue", bytes),
        [&] {
          std::deque<std::vector<char>> list;
          for (size_t i = 0; i < count; i++)
            list.emplace_back(body.begin(), body.end());
        },
        [&] {
          int pair[2];
          imc_socketpair(pair);
          PluginPipeConfig config = {
              PLUGIN_PIPE_FRAMED, 0, nullptr, nullptr, nullptr, false};
          PluginPipe* p = plugin_pipe_new(pair[0], &config);
          for (size_t i = 0; i < count; i++)
            plugin_pipe_send(p, body.data(), body.size(), nullptr, 0);
          plugin_pipe_free(p);
          close(pair[1]);
        },
        1, std::min(reps, 3));
    for (double& v : c.baseline_ns)
      v /= static_cast<double>(count);
    for (double& v : c.subject_ns)
      v /= static_cast<double>(count);
    perf::Print(c, csv);
  }

  // Memory per unit.
  printf("\n");
  {
    const int n = 1000;
    std::vector<int> peers;
    std::vector<SrpcChannel*> chans;
    size_t heap0 = HeapBytes(), rss0 = ResidentBytes();
    for (int i = 0; i < n; i++) {
      int pair[2];
      imc_socketpair(pair);
      chans.push_back(srpc_channel_new(pair[0], nullptr, 0));
      peers.push_back(pair[1]);
    }
    PrintMemory("idle-channel", static_cast<double>(HeapBytes() - heap0) / n,
                static_cast<double>(ResidentBytes() - rss0) / n, csv);
    for (SrpcChannel* c : chans)
      srpc_channel_free(c);
    for (int fd : peers)
      close(fd);
  }
  {
    const size_t n = 100000;
    int pair[2];
    imc_socketpair(pair);
    PluginPipeConfig config = {
        PLUGIN_PIPE_FRAMED, 0, nullptr, nullptr, nullptr, false};
    PluginPipe* p = plugin_pipe_new(pair[0], &config);
    for (int i = 0; i < 1000; i++)  // fill the kernel's buffer first
      plugin_pipe_send(p, body.data(), 16, nullptr, 0);
    size_t heap0 = HeapBytes(), rss0 = ResidentBytes();
    for (size_t i = 0; i < n; i++)
      plugin_pipe_send(p, body.data(), 16, nullptr, 0);
    PrintMemory("queued-message-16B",
                static_cast<double>(HeapBytes() - heap0) / n,
                static_cast<double>(ResidentBytes() - rss0) / n, csv);
    plugin_pipe_free(p);
    close(pair[1]);
  }
  {
    const int n = 10000;
    int pair[2];
    imc_socketpair(pair);
    PluginObjects* owner = plugin_objects_new(pair[0]);
    PluginObjects* user = plugin_objects_new(pair[1]);
    PluginObject* root = plugin_object_new(&kObjectClass, nullptr);
    plugin_objects_set_root(owner, root);
    // Proxies of distinct objects: make them on the owner's side by
    // exporting each as an argument of a call back to the owner.
    std::vector<PluginObject*> locals, proxies;
    for (int i = 0; i < n; i++)
      locals.push_back(plugin_object_new(&kObjectClass, nullptr));
    PluginObject* remote_root = nullptr;
    plugin_objects_root(user, 10000, &remote_root);
    size_t heap0 = HeapBytes(), rss0 = ResidentBytes();
    for (int i = 0; i < n; i++) {
      PluginObject* p = nullptr;
      // The owner's root as many times is one proxy; distinct objects need
      // distinct exports: hand each local to the peer as a root in turn.
      plugin_objects_set_root(owner, locals[static_cast<size_t>(i)]);
      plugin_objects_root(user, 10000, &p);
      proxies.push_back(p);
    }
    PrintMemory("proxy (both sides)",
                static_cast<double>(HeapBytes() - heap0) / n,
                static_cast<double>(ResidentBytes() - rss0) / n, csv);
    for (PluginObject* p : proxies)
      plugin_object_unref(p);
    plugin_object_unref(remote_root);
    plugin_objects_free(user);
    plugin_objects_free(owner);
    for (PluginObject* o : locals)
      plugin_object_unref(o);
    plugin_object_unref(root);
  }
  srpc_channel_free(ch);
  srpc_channel_free(ch4);
  close(raw);
  perf::WaitForPeers();
  return 0;
}
