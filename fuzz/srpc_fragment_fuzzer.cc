// Feeds an arbitrary sequence of datagrams to SRPC message reassembly.
// Invariants: no crash, no leaked descriptor or memory; a completed message
// has exactly the size and descriptor count its first record announced, and
// never more than the limit.
//
// Input: datagrams, each [len:u16] [num_fds] [flags] [bytes...]

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "testing/harness/descriptors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const size_t kLimit = 4096;
  size_t fds_before = harness::CountOpenDescriptors();
  fuzz::Reader in(data, size);
  SrpcReassembly r;
  srpc_reassembly_init(&r, kLimit);
  while (!in.Done()) {
    size_t want = in.U16() % 1024;
    size_t num_fds = in.Byte() % 4;
    int flags = (in.Byte() % 8 == 0) ? RECVMSG_DATA_TRUNCATED : 0;
    size_t len;
    const uint8_t* bytes = in.Take(want, &len);
    int fds[4];
    for (size_t i = 0; i < num_fds; i++)
      fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int done = srpc_reassembly_feed(&r, bytes, len, fds, num_fds, flags);
    if (done == 1) {
      uint8_t* message;
      size_t message_len, message_fds;
      int out_fds[SRPC_MAX_ARGS];
      size_t total = r.total, total_fds = r.total_fds;
      srpc_reassembly_take(&r, &message, &message_len, out_fds, &message_fds);
      FUZZ_CHECK(message_len == total && message_fds == total_fds);
      FUZZ_CHECK(message_len >= 28 && message_len <= kLimit);
      for (size_t i = 0; i < message_fds; i++)
        close(out_fds[i]);
      free(message);
    }
  }
  srpc_reassembly_reset(&r);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
