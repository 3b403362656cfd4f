// Framing: messages split into datagrams and put back together, around every
// fragment boundary, with descriptors spread over fragments; and every way
// the framing can lie.

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "testing/harness/descriptors.h"

namespace {

const size_t kFirstPayload = SRPC_MAX_DATAGRAM_BYTES - 16;
const size_t kLaterPayload = SRPC_MAX_DATAGRAM_BYTES - 8;

class SrpcFragmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(0, imc_socketpair(pair_));
    devnull_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  void TearDown() override {
    close(pair_[0]);
    close(pair_[1]);
    close(devnull_);
  }

  // Sends a message of `len` bytes and `num_fds` descriptors from a thread
  // (it may not fit the socket buffer) and checks what arrives.
  void RoundTrip(size_t len, size_t num_fds) {
    std::vector<uint8_t> body(len);
    for (size_t i = 0; i < len; i++)
      body[i] = static_cast<uint8_t>(i * 7 + len);
    std::vector<int> fds(num_fds, devnull_);
    std::thread sender([&] {
      EXPECT_EQ(0, srpc_fragment_send(pair_[0], body.data(), len, fds.data(),
                                      num_fds, SRPC_MAX_DATAGRAM_BYTES));
    });
    SrpcReassembly r;
    srpc_reassembly_init(&r, SRPC_DEFAULT_MAX_MESSAGE_BYTES);
    ASSERT_EQ(1, srpc_fragment_receive(pair_[1], &r)) << len << "/" << num_fds;
    sender.join();
    uint8_t* data;
    size_t got_len, got_fds;
    int received[SRPC_MAX_ARGS];
    srpc_reassembly_take(&r, &data, &got_len, received, &got_fds);
    EXPECT_EQ(len, got_len);
    EXPECT_EQ(0, memcmp(body.data(), data, len)) << len;
    EXPECT_EQ(num_fds, got_fds);
    for (size_t i = 0; i < got_fds; i++) {
      EXPECT_TRUE(imc_test::SameFile(devnull_, received[i]));
      close(received[i]);
    }
    free(data);
  }

  int pair_[2];
  int devnull_;
};

// A message in pieces (what a gathered encoding hands over): pieces of
// every size, empty ones too, crossing datagram boundaries anywhere,
// arrive as the one message they make.
TEST_F(SrpcFragmentTest, SegmentsArriveAsOneMessage) {
  for (size_t seed : {1u, 2u, 3u}) {
    std::vector<std::vector<uint8_t>> pieces;
    size_t len = 0;
    for (size_t i = 0; i < 40; i++) {
      size_t n = (i * 7919 * seed) % 50000;
      if (i % 9 == 0)
        n = 0;
      std::vector<uint8_t> piece(n);
      for (size_t k = 0; k < n; k++)
        piece[k] = static_cast<uint8_t>(len + k);
      len += n;
      pieces.push_back(piece);
    }
    std::vector<SrpcSegment> segs;
    for (const auto& piece : pieces)
      segs.push_back({piece.data(), piece.size()});
    int fds[3] = {devnull_, devnull_, devnull_};
    std::thread sender([&] {
      EXPECT_EQ(
          0, srpc_fragment_send_segments(pair_[0], segs.data(), segs.size(),
                                         len, fds, 3, SRPC_MAX_DATAGRAM_BYTES));
    });
    SrpcReassembly r;
    srpc_reassembly_init(&r, SRPC_DEFAULT_MAX_MESSAGE_BYTES);
    ASSERT_EQ(1, srpc_fragment_receive(pair_[1], &r));
    sender.join();
    uint8_t* data;
    size_t got_len, got_fds;
    int received[SRPC_MAX_ARGS];
    srpc_reassembly_take(&r, &data, &got_len, received, &got_fds);
    ASSERT_EQ(len, got_len);
    for (size_t k = 0; k < len; k++) {
      ASSERT_EQ(static_cast<uint8_t>(k), data[k]) << "byte " << k;
    }
    EXPECT_EQ(3u, got_fds);
    for (size_t i = 0; i < got_fds; i++)
      close(received[i]);
    free(data);
  }
}

TEST_F(SrpcFragmentTest, SegmentsThatDoNotAddUpAreRefused) {
  uint8_t bytes[100] = {};
  SrpcSegment segs[2] = {{bytes, 60}, {bytes, 30}};
  errno = 0;
  EXPECT_EQ(-1, srpc_fragment_send_segments(pair_[0], segs, 2, 100, nullptr, 0,
                                            SRPC_MAX_DATAGRAM_BYTES));
  EXPECT_EQ(EINVAL, errno);
  EXPECT_EQ(-1, srpc_fragment_send_segments(pair_[0], segs, 2, 80, nullptr, 0,
                                            SRPC_MAX_DATAGRAM_BYTES));
  // Nothing went out.
  uint8_t buf[16];
  NaClImcMsgIoVec iov = {buf, sizeof(buf)};
  NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
  EXPECT_EQ(-1, imc_recvmsg(pair_[1], &msg, IMC_NONBLOCK));
  EXPECT_EQ(EAGAIN, errno);
}

TEST_F(SrpcFragmentTest, SizesAroundEveryFragmentBoundary) {
  for (size_t base : {kFirstPayload, kFirstPayload + kLaterPayload,
                      kFirstPayload + 3 * kLaterPayload}) {
    for (size_t len : {base - 1, base, base + 1})
      RoundTrip(len, 0);
  }
  RoundTrip(28, 0);
}

TEST_F(SrpcFragmentTest, DescriptorsSpreadOverSeveralFragments) {
  for (size_t num_fds : {1, 8, 9, 17, 40, SRPC_MAX_ARGS}) {
    RoundTrip(100, num_fds);                // more datagrams than bytes
    RoundTrip(kFirstPayload + 5, num_fds);  // bytes and descriptors
  }
}

TEST_F(SrpcFragmentTest, SixtyFourMebibyteMessage) {
  RoundTrip(SRPC_DEFAULT_MAX_MESSAGE_BYTES, 3);
}

TEST_F(SrpcFragmentTest, EndOfStreamBetweenMessagesIsClean) {
  close(pair_[0]);
  pair_[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  SrpcReassembly r;
  srpc_reassembly_init(&r, 1 << 20);
  EXPECT_EQ(0, srpc_fragment_receive(pair_[1], &r));
}

TEST_F(SrpcFragmentTest, EndOfStreamInsideAMessageIsAnError) {
  std::vector<uint8_t> body(kFirstPayload + 10, 1);
  // Only the first datagram of two: a record announcing more, then close.
  uint8_t dgram[SRPC_MAX_DATAGRAM_BYTES] = {};
  uint32_t total = static_cast<uint32_t>(body.size());
  uint32_t chunk = static_cast<uint32_t>(kFirstPayload);
  memcpy(dgram, &total, 4);
  memcpy(dgram + 8, &chunk, 4);
  ASSERT_EQ(SRPC_MAX_DATAGRAM_BYTES,
            imc_test::Send(pair_[0], std::string(reinterpret_cast<char*>(dgram),
                                                 sizeof(dgram))));
  close(pair_[0]);
  pair_[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  SrpcReassembly r;
  srpc_reassembly_init(&r, 1 << 20);
  errno = 0;
  EXPECT_EQ(-1, srpc_fragment_receive(pair_[1], &r));
  EXPECT_EQ(EPROTO, errno);
}

std::vector<uint8_t> Datagram(std::vector<uint32_t> records, size_t payload) {
  std::vector<uint8_t> d(records.size() * 4 + payload, 0x5a);
  memcpy(d.data(), records.data(), records.size() * 4);
  return d;
}

TEST(SrpcReassemblyTest, RejectsFramingThatLies) {
  struct {
    const char* what;
    std::vector<uint8_t> first;
    size_t fds;
    int flags;
  } cases[] = {
      {"too short for its records", {1, 2, 3}, 0, 0},
      {"chunk longer than the datagram", Datagram({40, 0, 41, 0}, 40), 0, 0},
      {"chunk shorter than the datagram", Datagram({40, 0, 39, 0}, 40), 0, 0},
      {"chunk beyond the total", Datagram({40, 0, 50, 0}, 50), 0, 0},
      {"total below a header", Datagram({20, 0, 20, 0}, 20), 0, 0},
      {"total beyond the limit", Datagram({2000, 0, 40, 0}, 40), 0, 0},
      {"too many descriptors announced", Datagram({40, 129, 40, 0}, 40), 0, 0},
      {"descriptors not announced", Datagram({40, 0, 40, 0}, 40), 1, 0},
      {"truncated datagram", Datagram({40, 0, 40, 0}, 40), 0,
       RECVMSG_DATA_TRUNCATED},
  };
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  size_t before = harness::CountOpenDescriptors();
  for (const auto& c : cases) {
    SrpcReassembly r;
    srpc_reassembly_init(&r, 1000);
    int fds[1] = {dup(devnull)};
    if (c.fds == 0)
      close(fds[0]);
    EXPECT_EQ(-1, srpc_reassembly_feed(&r, c.first.data(), c.first.size(), fds,
                                       c.fds, c.flags))
        << c.what;
    EXPECT_FALSE(r.started) << c.what;
    EXPECT_EQ(before, harness::CountOpenDescriptors()) << c.what;
  }
  close(devnull);
}

TEST(SrpcReassemblyTest, LaterFragmentsMustMakeProgressWithinTheTotal) {
  SrpcReassembly r;
  srpc_reassembly_init(&r, 1000);
  std::vector<uint8_t> first = Datagram({100, 0, 60, 0}, 60);
  ASSERT_EQ(
      0, srpc_reassembly_feed(&r, first.data(), first.size(), nullptr, 0, 0));
  std::vector<uint8_t> empty = Datagram({0, 0}, 0);
  EXPECT_EQ(
      -1, srpc_reassembly_feed(&r, empty.data(), empty.size(), nullptr, 0, 0));

  ASSERT_EQ(
      0, srpc_reassembly_feed(&r, first.data(), first.size(), nullptr, 0, 0));
  std::vector<uint8_t> too_much = Datagram({41, 0}, 41);
  EXPECT_EQ(-1, srpc_reassembly_feed(&r, too_much.data(), too_much.size(),
                                     nullptr, 0, 0));

  ASSERT_EQ(
      0, srpc_reassembly_feed(&r, first.data(), first.size(), nullptr, 0, 0));
  std::vector<uint8_t> rest = Datagram({40, 0}, 40);
  EXPECT_EQ(1,
            srpc_reassembly_feed(&r, rest.data(), rest.size(), nullptr, 0, 0));
  uint8_t* data;
  size_t len, nfds;
  int fds[SRPC_MAX_ARGS];
  srpc_reassembly_take(&r, &data, &len, fds, &nfds);
  EXPECT_EQ(100u, len);
  free(data);
}

}  // namespace
