// The message pipe: order, descriptors, unlimited queueing with accounting
// and quota, the receive window's back-pressure, waits, and the ways a pipe
// ends.

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "plugin/common/plugin_pipe.h"

namespace {

struct Counters {
  std::atomic<int> notified{0};
  std::atomic<int> over_quota{0};
  std::atomic<size_t> quota_bytes{0};
};

void Notify(void* user) {
  static_cast<Counters*>(user)->notified++;
}

void OverQuota(size_t queued, void* user) {
  auto* c = static_cast<Counters*>(user);
  c->over_quota++;
  c->quota_bytes = queued;
}

PluginPipe* NewPipe(int fd,
                    Counters* c,
                    PluginPipeMode mode = PLUGIN_PIPE_FRAMED) {
  PluginPipeConfig config = {mode, 0, Notify, OverQuota, c};
  return plugin_pipe_new(fd, &config);
}

std::string Body(uint32_t seq, size_t n) {
  std::string s(n, static_cast<char>(seq & 0xff));
  if (n >= 4)
    memcpy(&s[0], &seq, 4);
  return s;
}

class PluginPipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int pair[2];
    ASSERT_EQ(0, imc_socketpair(pair));
    a_ = NewPipe(pair[0], &ca_);
    b_ = NewPipe(pair[1], &cb_);
    ASSERT_NE(nullptr, a_);
    ASSERT_NE(nullptr, b_);
  }
  void TearDown() override {
    plugin_pipe_free(a_);
    plugin_pipe_free(b_);
  }
  Counters ca_, cb_;
  PluginPipe* a_ = nullptr;
  PluginPipe* b_ = nullptr;
};

TEST_F(PluginPipeTest, MessagesOfEverySizeArriveInOrder) {
  std::vector<size_t> sizes = {0,     1,     100,     65535,
                               65536, 65537, 1 << 20, 3 * 65536 + 5};
  std::thread sender([&] {
    for (uint32_t i = 0; i < sizes.size(); i++) {
      std::string s = Body(i, sizes[i]);
      EXPECT_EQ(PLUGIN_OK,
                plugin_pipe_send(a_, s.data(), s.size(), nullptr, 0));
    }
  });
  for (uint32_t i = 0; i < sizes.size(); i++) {
    PluginMessage m;
    ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 10000, nullptr));
    ASSERT_EQ(sizes[i], m.len);
    EXPECT_EQ(Body(i, sizes[i]),
              std::string(reinterpret_cast<char*>(m.data), m.len));
    plugin_message_free(&m);
  }
  sender.join();
}

TEST_F(PluginPipeTest, DescriptorsTravelAndTheSenderKeepsItsOwn) {
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  int fds[3] = {p[0], -1, p[1]};
  std::string big(200000, 'x');
  ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, big.data(), big.size(), fds, 3));
  PluginMessage m;
  ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 10000, nullptr));
  ASSERT_EQ(3u, m.num_fds);
  EXPECT_TRUE(imc_test::SameFile(p[0], m.fds[0]));
  EXPECT_EQ(-1, m.fds[1]);
  EXPECT_TRUE(imc_test::SameFile(p[1], m.fds[2]));
  EXPECT_TRUE(imc_test::IsCloseOnExec(m.fds[0]));
  plugin_message_free(&m);
  EXPECT_EQ(0, fcntl(p[0], F_GETFD) < 0);  // still ours
  close(p[0]);
  close(p[1]);
}

TEST_F(PluginPipeTest, BadArgumentsAreRefused) {
  int bad = 1000;
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_pipe_send(a_, "x", 1, &bad, 1));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_pipe_send(a_, nullptr, 5, nullptr, 0));
  std::vector<int> many(PLUGIN_MAX_MESSAGE_DESCRIPTORS + 1, -1);
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_pipe_send(a_, "x", 1, many.data(), many.size()));
}

TEST_F(PluginPipeTest, NotifyFiresWhenArmedAndPopReArms) {
  ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, "1", 1, nullptr, 0));
  ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, "2", 1, nullptr, 0));
  PluginMessage m;
  ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 5000, nullptr));
  plugin_message_free(&m);
  ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 5000, nullptr));
  plugin_message_free(&m);
  EXPECT_EQ(1, cb_.notified.load());               // disarmed after the first
  EXPECT_EQ(0, plugin_pipe_pop(b_, &m, nullptr));  // empty: re-armed
  ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, "3", 1, nullptr, 0));
  for (int i = 0; i < 5000 && cb_.notified.load() < 2; i++)
    usleep(1000);
  EXPECT_EQ(2, cb_.notified.load());
}

TEST_F(PluginPipeTest, WaitTimesOutAndIsCancelled) {
  PluginMessage m;
  EXPECT_EQ(-PLUGIN_ERROR_TIMED_OUT,
            plugin_pipe_pop_wait(b_, &m, nullptr, 30, nullptr));
  SrpcCancel* cancel = srpc_cancel_new();
  std::thread t([&] {
    usleep(20000);
    srpc_cancel_signal(cancel);
  });
  EXPECT_EQ(-PLUGIN_ERROR_CANCELLED,
            plugin_pipe_pop_wait(b_, &m, nullptr, -1, cancel));
  t.join();
  srpc_cancel_free(cancel);
}

// The peer stops reading: sends never block, the queue holds what the
// socket cannot, the quota fires once, and everything arrives later.
TEST_F(PluginPipeTest, UnlimitedQueueWithAccountingAndQuota) {
  const size_t kMessage = 64 * 1024;
  const uint32_t kCount = 512;  // 32 MiB
  plugin_pipe_set_quota(a_, 8u << 20);
  double longest_ms = 0;
  for (uint32_t i = 0; i < kCount; i++) {
    std::string s = Body(i, kMessage);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, s.data(), s.size(), nullptr, 0));
    double ms = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
    longest_ms = std::max(longest_ms, ms);
  }
  // Blocking would be forever; a copy of 64 KiB is far below this.
  EXPECT_LT(longest_ms, 1000.0);
  size_t queued = plugin_pipe_queued_bytes(a_);
  EXPECT_EQ(queued, plugin_pipe_queued_messages(a_) * kMessage);
  // The receiver holds at most its window, the kernel a few MiB: most of
  // it waits in the sender's queue.
  EXPECT_GT(queued, kCount * kMessage / 2);
  EXPECT_EQ(1, ca_.over_quota.load());
  EXPECT_GT(ca_.quota_bytes.load(), 8u << 20);
  for (uint32_t i = 0; i < kCount; i++) {
    PluginMessage m;
    ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 10000, nullptr));
    ASSERT_EQ(kMessage, m.len);
    uint32_t seq;
    memcpy(&seq, m.data, 4);
    ASSERT_EQ(i, seq);
    plugin_message_free(&m);
  }
  // The writer updates its accounting just after the last send returns.
  for (int i = 0; i < 5000 && plugin_pipe_queued_bytes(a_) != 0; i++)
    usleep(1000);
  EXPECT_EQ(0u, plugin_pipe_queued_bytes(a_));
  // Below the quota again: a new rise notifies again.
  for (uint32_t i = 0; i < 256; i++) {
    std::string s = Body(i, kMessage);
    ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, s.data(), s.size(), nullptr, 0));
  }
  EXPECT_EQ(2, ca_.over_quota.load());
}

TEST_F(PluginPipeTest, PeerCloseEndsThePipeOnceEverythingIsRead) {
  ASSERT_EQ(PLUGIN_OK, plugin_pipe_send(a_, "last", 4, nullptr, 0));
  plugin_pipe_free(a_);
  a_ = nullptr;
  PluginMessage m;
  ASSERT_EQ(1, plugin_pipe_pop_wait(b_, &m, nullptr, 5000, nullptr));
  EXPECT_EQ(4u, m.len);
  plugin_message_free(&m);
  int error = -1;
  EXPECT_EQ(-1, plugin_pipe_pop_wait(b_, &m, &error, 5000, nullptr));
  EXPECT_EQ(0, error);
  // Sending to a closed peer fails cleanly (no SIGPIPE: the test main
  // leaves it fatal).
  int r = PLUGIN_OK;
  for (int i = 0; i < 10 && r == PLUGIN_OK; i++)
    r = plugin_pipe_send(b_, "x", 1, nullptr, 0);
  EXPECT_EQ(PLUGIN_ERROR_CLOSED, r);
}

TEST(PluginPipeRawTest, OneDatagramIsOneMessageAndOversizeEndsIt) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  Counters c;
  PluginPipe* p = NewPipe(pair[0], &c, PLUGIN_PIPE_RAW);
  ASSERT_EQ(2, imc_test::Send(pair[1], "hi"));
  PluginMessage m;
  ASSERT_EQ(1, plugin_pipe_pop_wait(p, &m, nullptr, 5000, nullptr));
  EXPECT_EQ("hi", std::string(reinterpret_cast<char*>(m.data), m.len));
  plugin_message_free(&m);
  // A datagram bigger than IMC_MAX_DATA_BYTES, sent past imc's check.
  int sndbuf = 1 << 20;
  setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  std::string huge(IMC_MAX_DATA_BYTES + 1, 'h');
  ASSERT_EQ(static_cast<ssize_t>(huge.size()),
            send(pair[1], huge.data(), huge.size(), MSG_NOSIGNAL));
  int error = 0;
  EXPECT_EQ(-1, plugin_pipe_pop_wait(p, &m, &error, 5000, nullptr));
  EXPECT_EQ(EMSGSIZE, error);
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_pipe_send(p, nullptr, 0, nullptr, 0));
  plugin_pipe_free(p);
  close(pair[1]);
}

TEST(PluginPipeRawTest, PeerGoneInTheMiddleOfAMessageIsEproto) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  Counters c;
  PluginPipe* p = NewPipe(pair[0], &c);
  // BEGIN of a 100 KiB message, one full chunk, then the peer goes.
  std::string d(8 + 65536, 'x');
  uint32_t kind = 0x4e474542u, total = 100 * 1024;
  memcpy(&d[0], &kind, 4);
  memcpy(&d[4], &total, 4);
  ASSERT_GT(imc_test::Send(pair[1], d), 0);
  close(pair[1]);
  PluginMessage m;
  int error = 0;
  EXPECT_EQ(-1, plugin_pipe_pop_wait(p, &m, &error, 5000, nullptr));
  EXPECT_EQ(EPROTO, error);
  plugin_pipe_free(p);
}

TEST(PluginPipeRawTest, FramingErrorEndsAFramedPipeWithEproto) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  Counters c;
  PluginPipe* p = NewPipe(pair[0], &c);
  ASSERT_EQ(5, imc_test::Send(pair[1], "junk!"));
  PluginMessage m;
  int error = 0;
  EXPECT_EQ(-1, plugin_pipe_pop_wait(p, &m, &error, 5000, nullptr));
  EXPECT_EQ(EPROTO, error);
  // The end is notified once (just after it becomes visible to pop).
  for (int i = 0; i < 5000 && c.notified.load() == 0; i++)
    usleep(1000);
  EXPECT_EQ(1, c.notified.load());
  // The reader shut the socket: the sender learns instead of queueing.
  EXPECT_EQ(-1, imc_test::Send(pair[1], "more"));
  plugin_pipe_free(p);
  close(pair[1]);
}

}  // namespace
