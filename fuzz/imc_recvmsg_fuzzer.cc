// Fuzzes imc_recvmsg against every layout a receiver can offer: scattered
// iovecs of any sizes, any descriptor capacity, any message size and number
// of descriptors (real ones and placeholders). Checks the byte count, the
// bytes, both truncation flags, where the placeholders land, that each
// received descriptor is the one sent, and that nothing leaks.
//
// Input: [iov_count] [iov_len]*iov_count [capacity] [msg_len:u16]
//        [n] [kind]*n [payload...]

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "testing/harness/descriptors.h"

namespace {

bool SameFile(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
         sa.st_dev == sb.st_dev;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t fds_before = harness::CountOpenDescriptors();
  fuzz::Reader in(data, size);
  size_t iov_count = 1 + in.Byte() % 8;
  std::vector<size_t> iov_len(iov_count);
  size_t room = 0;
  for (size_t& len : iov_len) {
    len = in.Byte() * 17u % 1024;
    room += len;
  }
  size_t capacity = in.Byte() % 20;
  size_t msg_len = in.U16() % 4096;
  size_t n = in.Byte() % 20;
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipefd[2];
  FUZZ_CHECK(devnull >= 0 && pipe2(pipefd, O_CLOEXEC) == 0);
  const int kinds[3] = {devnull, pipefd[0], IMC_INVALID_DESCRIPTOR};
  std::vector<int> sent_fds;
  for (size_t i = 0; i < n; i++)
    sent_fds.push_back(kinds[in.Byte() % 3]);
  std::vector<uint8_t> message(msg_len);
  for (size_t i = 0; i < msg_len; i++)
    message[i] = static_cast<uint8_t>(in.Byte() + i);

  int pair[2];
  FUZZ_CHECK(imc_socketpair(pair) == 0);
  NaClImcMsgIoVec out_iov = {message.data(), message.size()};
  NaClImcMsgHdr out = {&out_iov, 1, sent_fds.data(), sent_fds.size(), 0};
  int sent = imc_sendmsg(pair[0], &out, 0);
  if (msg_len == 0 && n == 0) {
    FUZZ_CHECK(sent == -1 && errno == EINVAL);  // empty messages are refused
  } else {
    FUZZ_CHECK(sent == static_cast<int>(msg_len));
    std::vector<std::vector<uint8_t>> buffers;
    std::vector<NaClImcMsgIoVec> iov;
    for (size_t len : iov_len)
      buffers.emplace_back(len + 1, 0xee);  // one guard byte each
    for (size_t i = 0; i < iov_count; i++)
      iov.push_back({buffers[i].data(), iov_len[i]});
    std::vector<int> received(capacity + 2, -7);  // guard entries
    NaClImcMsgHdr msg = {iov.data(), iov.size(), received.data(), capacity, 0};
    int got = imc_recvmsg(pair[1], &msg, IMC_NONBLOCK);
    FUZZ_CHECK(got == static_cast<int>(std::min(msg_len, room)));
    FUZZ_CHECK(((msg.flags & RECVMSG_DATA_TRUNCATED) != 0) == (msg_len > room));
    FUZZ_CHECK(((msg.flags & RECVMSG_DESC_TRUNCATED) != 0) == (n > capacity));
    FUZZ_CHECK(msg.desc_length == std::min(n, capacity));
    FUZZ_CHECK(received[capacity] == -7 && received[capacity + 1] == -7);
    size_t offset = 0;
    for (size_t i = 0; i < iov_count; i++) {
      for (size_t j = 0; j < iov_len[i] && offset < static_cast<size_t>(got);
           j++, offset++)
        FUZZ_CHECK(buffers[i][j] == message[offset]);
      FUZZ_CHECK(buffers[i][iov_len[i]] == 0xee);
    }
    for (size_t i = 0; i < msg.desc_length; i++) {
      if (sent_fds[i] == IMC_INVALID_DESCRIPTOR) {
        FUZZ_CHECK(received[i] == IMC_INVALID_DESCRIPTOR);
      } else {
        FUZZ_CHECK(received[i] >= 0 && SameFile(received[i], sent_fds[i]));
        close(received[i]);
      }
    }
  }
  close(pair[0]);
  close(pair[1]);
  close(devnull);
  close(pipefd[0]);
  close(pipefd[1]);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
