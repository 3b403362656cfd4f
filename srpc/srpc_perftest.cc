// srpc_perftests: SRPC calls against a raw IMC exchange of the same bytes,
// measured interleaved in one run, both sides in separate processes.
//
//   srpc_perftests [--quick] [--csv FILE]
//
// Rows: null call and add:ii:i against a 16-byte IMC ping-pong; char-array
// echo at 1 KiB .. 16 MiB against the same bytes echoed in raw 64 KiB
// datagrams; one descriptor per call; and calls per second from 2 and 4
// threads on one channel, and 2 threads on two channels for reference
// (against one thread).

#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "imc/imc.h"
#include "srpc/srpc.h"
#include "testing/perf/perf.h"

namespace {

const size_t kChunk = SRPC_MAX_DATAGRAM_BYTES;

void Null(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  void* p = srpc_arg_alloc(&out[0], in[0].count);
  if (in[0].count > 0)
    memcpy(p, in[0].u.carr, in[0].count);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Handle(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.hval = in[0].u.hval;  // sent back, then closed by the library
  in[0].u.hval = -1;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kMethods[] = {{"null::", Null},
                               {"add:ii:i", Add},
                               {"echo:C:C", Echo},
                               {"handle:h:h", Handle}};

// Serves on `fd` until the peer closes.
void Serve(int fd) {
  SrpcService* s = srpc_service_new(kMethods, 4, nullptr, nullptr, nullptr);
  SrpcChannel* ch = srpc_channel_new(fd, s, 0);
  srpc_channel_serve(ch);
  srpc_channel_free(ch);
  srpc_service_free(s);
}

// Echoes every datagram, descriptors included.
void RawEcho(int fd) {
  std::vector<char> buf(kChunk);
  int desc = -1;
  for (;;) {
    NaClImcMsgIoVec iov = {buf.data(), buf.size()};
    NaClImcMsgHdr msg = {&iov, 1, &desc, 1, 0};
    int n = imc_recvmsg(fd, &msg, 0);
    if (n <= 0 && msg.desc_length == 0)
      return;
    iov.length = static_cast<size_t>(n);
    msg.desc_length = msg.desc_length ? 1 : 0;
    imc_sendmsg(fd, &msg, 0);
    if (msg.desc_length)
      close(desc);
  }
}

// `bytes` out and back through the raw echo, in datagrams of kChunk.
void RawTransfer(int fd,
                 const std::vector<char>& out,
                 std::vector<char>* in,
                 size_t bytes,
                 int desc) {
  size_t sent = 0, got = 0;
  while (got < bytes || (bytes == 0 && got == 0)) {
    size_t n = std::min(kChunk, bytes - sent);
    NaClImcMsgIoVec iov = {const_cast<char*>(out.data()) + sent, n};
    NaClImcMsgHdr msg = {&iov, 1, &desc, desc >= 0 ? 1u : 0u, 0};
    imc_sendmsg(fd, &msg, 0);
    sent += n;
    int back = -1;
    NaClImcMsgIoVec riov = {in->data() + got, kChunk};
    NaClImcMsgHdr rmsg = {&riov, 1, &back, 1, 0};
    int r = imc_recvmsg(fd, &rmsg, 0);
    if (rmsg.desc_length)
      close(back);
    got += r > 0 ? static_cast<size_t>(r) : 0;
    if (bytes == 0)
      break;
  }
}

std::string Size(size_t n) {
  if (n >= 1 << 20)
    return std::to_string(n >> 20) + " MiB";
  if (n >= 1024)
    return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  const perf::Options options = perf::ParseOptions(argc, argv);
  const std::string& csv = options.csv;
  const int reps = options.repetitions;
  const int scale = options.scale;
  int raw = perf::ForkPeer(RawEcho);
  int srv = perf::ForkPeer(Serve);
  int srv2 = perf::ForkPeer(Serve);
  int srv3 = perf::ForkPeer(Serve);
  SrpcChannel* ch = srpc_channel_new(srv, nullptr, 0);
  SrpcChannel* ch2 = srpc_channel_new(srv2, nullptr, 0);
  SrpcChannel* ch3 = srpc_channel_new(srv3, nullptr, 0);
  if (raw < 0 || srpc_channel_discover(ch) != SRPC_RESULT_OK ||
      srpc_channel_discover(ch2) != SRPC_RESULT_OK ||
      srpc_channel_discover(ch3) != SRPC_RESULT_OK) {
    fprintf(stderr, "srpc_perftests: cannot start the peers\n");
    return 1;
  }
  std::vector<char> out(16 << 20, 'x'), in((16 << 20) + kChunk);

  printf(
      "srpc_perftests: one call against a raw IMC exchange of the same "
      "bytes\n");
  perf::PrintHeader("raw imc", "srpc");
  perf::Print(perf::Compare(
                  "null call vs 16 B ping-pong",
                  [&] { RawTransfer(raw, out, &in, 16, -1); },
                  [&] { srpc_invoke(ch, "null"); }, 20000 / scale, reps),
              csv);
  perf::Print(perf::Compare(
                  "add:ii:i vs 16 B ping-pong",
                  [&] { RawTransfer(raw, out, &in, 16, -1); },
                  [&] {
                    int32_t sum;
                    srpc_invoke(ch, "add", 2, 3, &sum);
                  },
                  20000 / scale, reps),
              csv);
  for (size_t size :
       {size_t{1} << 10, size_t{64} << 10, size_t{1} << 20, size_t{16} << 20}) {
    int iterations = static_cast<int>(std::max<size_t>(
        3, (size_t{20} << 20) / (size * static_cast<size_t>(scale)) / 4));
    perf::Print(
        perf::Compare(
            "echo " + Size(size), [&] { RawTransfer(raw, out, &in, size, -1); },
            [&] {
              uint32_t n = static_cast<uint32_t>(size);
              srpc_invoke(ch, "echo", static_cast<uint32_t>(size), out.data(),
                          &n, in.data());
            },
            std::min(iterations, 5000), reps),
        csv);
  }
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  perf::Print(perf::Compare(
                  "one descriptor each way",
                  [&] { RawTransfer(raw, out, &in, 16, devnull); },
                  [&] {
                    int back = -1;
                    srpc_invoke(ch, "handle", devnull, &back);
                    close(back);
                  },
                  10000 / scale, reps),
              csv);

  printf("\ncalls per second from N threads, vs 1 thread\n");
  perf::PrintHeader("1 thread", "N threads");
  const int calls = 20000 / scale;
  // N threads sharing `channels` round-robin, `calls` calls in all.
  auto run = [&](std::vector<SrpcChannel*> channels, int n) {
    std::vector<std::thread> ts;
    for (int t = 0; t < n; t++) {
      ts.emplace_back([&, t] {
        SrpcChannel* c = channels[static_cast<size_t>(t) % channels.size()];
        for (int i = 0; i < calls / n; i++) {
          int32_t sum;
          srpc_invoke(c, "add", 1, 2, &sum);
        }
      });
    }
    for (auto& t : ts)
      t.join();
  };
  struct Row {
    const char* name;
    std::vector<SrpcChannel*> channels;
    int threads;
  };
  const Row rows[] = {{"2 threads, one channel", {ch2}, 2},
                      {"4 threads, one channel", {ch2}, 4},
                      {"2 threads, two channels (reference)", {ch2, ch3}, 2}};
  for (const Row& row : rows) {
    // Time for all the calls, N threads over 1 thread; its inverse is the
    // throughput gain.
    perf::Comparison c = perf::Compare(
        row.name, [&] { run({ch2}, 1); },
        [&] { run(row.channels, row.threads); }, 1, reps);
    perf::Print(c, csv);
    printf("  -> %.2fx the calls per second of one thread\n",
           perf::Median(c.baseline_ns) / perf::Median(c.subject_ns));
  }
  close(devnull);
  srpc_channel_free(ch);
  srpc_channel_free(ch2);
  srpc_channel_free(ch3);
  close(raw);
  perf::WaitForPeers();
  return 0;
}
