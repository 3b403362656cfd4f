// Feeds fuzzed datagrams, with fuzzed descriptors, to a live SRPC server
// over a socket pair. Invariants: the server answers or closes the channel,
// never crashes, and when the peer is gone it has ended its loop and holds
// no descriptor it was sent.
//
// Input: datagrams, each [len:u16] [num_fds] [bytes...]. In inputs starting
// with "F" each datagram is made a whole message (correct length records
// are prepended), so the fuzzer reaches the decoder and dispatcher quickly.

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "srpc/srpc.h"
#include "testing/harness/descriptors.h"

namespace {

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  srpc_arg_set_string(&out[0], in[0].u.str);
  void* p = srpc_arg_alloc(&out[1], in[1].count);
  if (p != nullptr && in[1].count > 0)
    memcpy(p, in[1].u.ptr, in[1].count * 8);
  out[2].u.hval = dup(in[2].u.hval);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

// Char arrays of 4 KiB or more arrive as part of the request's own bytes:
// read, written, and echoed from there.
void Bytes(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  if (in[0].count > 0)
    in[0].u.carr[0] ^= 1;
  void* p = srpc_arg_alloc(&out[0], in[0].count);
  if (p != nullptr && in[0].count > 0)
    memcpy(p, in[0].u.carr, in[0].count);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kMethods[] = {{"add:ii:i", Add},
                               {"echo:sLh:sLh", Echo},
                               {"bytes:C:C", Bytes}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static SrpcService* service =
      srpc_service_new(kMethods, 3, nullptr, nullptr, nullptr);
  size_t fds_before = harness::CountOpenDescriptors();
  int pair[2];
  FUZZ_CHECK(imc_socketpair(pair) == 0);
  SrpcChannel* server = srpc_channel_new(pair[0], service, 1 << 20);
  std::thread serving([server] { srpc_channel_serve(server); });

  fuzz::Reader in(data, size);
  bool framed = size > 0 && data[0] == 'F';
  if (framed)
    in.Byte();
  while (!in.Done()) {
    size_t want = in.U16() % 2048;
    size_t num_fds = in.Byte() % 4;
    size_t len;
    const uint8_t* bytes = in.Take(want, &len);
    std::vector<uint8_t> datagram;
    if (framed) {
      uint32_t records[4] = {
          static_cast<uint32_t>(len), static_cast<uint32_t>(num_fds),
          static_cast<uint32_t>(len), static_cast<uint32_t>(num_fds)};
      datagram.insert(datagram.end(), reinterpret_cast<uint8_t*>(records),
                      reinterpret_cast<uint8_t*>(records) + 16);
    }
    datagram.insert(datagram.end(), bytes, bytes + len);
    std::vector<int> fds;
    for (size_t i = 0; i < num_fds; i++)
      fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    NaClImcMsgIoVec iov = {datagram.data(), datagram.size()};
    NaClImcMsgHdr msg = {&iov, 1, fds.data(), fds.size(), 0};
    // Never block: the server may be blocked sending replies we don't read.
    imc_sendmsg(pair[1], &msg, IMC_NONBLOCK);
    for (int fd : fds)
      close(fd);
  }
  close(pair[1]);
  serving.join();
  srpc_channel_free(server);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
