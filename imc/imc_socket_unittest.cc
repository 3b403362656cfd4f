// imc_socketpair, imc_sendmsg, imc_recvmsg.

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "imc/nacl_compat.h"
#include "testing/harness/child_process.h"
#include "testing/harness/descriptors.h"

namespace {

using imc_test::Receive;
using imc_test::Received;
using imc_test::SameFile;
using imc_test::Send;

class ImcSocketTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(0, imc_socketpair(pair_)); }
  void TearDown() override {
    for (int fd : pair_) {
      if (fd >= 0)
        close(fd);
    }
  }
  void ClosePeer() {
    close(pair_[1]);
    pair_[1] = -1;
  }
  int pair_[2] = {-1, -1};
};

TEST_F(ImcSocketTest, PairIsCloseOnExecSeqpacket) {
  for (int fd : pair_) {
    EXPECT_TRUE(imc_test::IsCloseOnExec(fd));
    int type = 0;
    socklen_t len = sizeof(type);
    ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len));
    EXPECT_EQ(SOCK_SEQPACKET, type);
  }
}

TEST(ImcSocketPairTest, NullArrayIsEinval) {
  errno = 0;
  EXPECT_EQ(-1, imc_socketpair(nullptr));
  EXPECT_EQ(EINVAL, errno);
}

TEST_F(ImcSocketTest, GathersAndScattersAcrossIovecs) {
  char a[] = "hello, ", b[] = "", c[] = "world";
  NaClImcMsgIoVec out[3] = {{a, 7}, {b, 0}, {c, 5}};
  NaClImcMsgHdr msg = {};
  msg.iov = out;
  msg.iov_length = 3;
  ASSERT_EQ(12, imc_sendmsg(pair_[0], &msg, 0));

  char x[5], y[20];
  NaClImcMsgIoVec in[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
  NaClImcMsgHdr rmsg = {};
  rmsg.iov = in;
  rmsg.iov_length = 2;
  ASSERT_EQ(12, imc_recvmsg(pair_[1], &rmsg, 0));
  EXPECT_EQ(0, rmsg.flags);
  EXPECT_EQ(0u, rmsg.desc_length);
  EXPECT_EQ("hello", std::string(x, 5));
  EXPECT_EQ(", world", std::string(y, 7));
}

TEST_F(ImcSocketTest, MessagesKeepTheirBoundariesAndOrder) {
  for (int i = 0; i < 50; i++)
    ASSERT_EQ(i + 1,
              Send(pair_[0], std::string(static_cast<size_t>(i + 1),
                                         static_cast<char>('a' + i % 26))));
  for (int i = 0; i < 50; i++) {
    Received r = Receive(pair_[1]);
    ASSERT_EQ(i + 1, r.result);
    EXPECT_EQ(std::string(static_cast<size_t>(i + 1),
                          static_cast<char>('a' + i % 26)),
              r.bytes);
  }
}

TEST_F(ImcSocketTest, PassesDescriptorsAsNewCloseOnExecCopies) {
  int p[2];
  ASSERT_EQ(0, pipe(p));  // deliberately not close-on-exec
  ASSERT_EQ(4, Send(pair_[0], "fds!", {p[0], p[1]}));
  Received r = Receive(pair_[1]);
  ASSERT_EQ(4, r.result);
  ASSERT_EQ(2u, r.fds.size());
  EXPECT_EQ(0, r.flags);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_NE(p[i], r.fds[i]);
    EXPECT_TRUE(SameFile(p[i], r.fds[i]));
    EXPECT_TRUE(imc_test::IsCloseOnExec(r.fds[i]));
  }
  // The received copies work: write on one, read on the other.
  ASSERT_EQ(3, write(r.fds[1], "abc", 3));
  char buf[3];
  ASSERT_EQ(3, read(p[0], buf, 3));
  r.CloseFds();
  close(p[0]);
  close(p[1]);
}

TEST_F(ImcSocketTest, InvalidDescriptorTravelsAsMinusOne) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  ASSERT_EQ(1, Send(pair_[0], "x", {-1, devnull, -1}));
  Received r = Receive(pair_[1]);
  ASSERT_EQ(1, r.result);
  ASSERT_EQ(3u, r.fds.size());
  EXPECT_EQ(-1, r.fds[0]);
  EXPECT_TRUE(SameFile(devnull, r.fds[1]));
  EXPECT_EQ(-1, r.fds[2]);
  r.CloseFds();
  close(devnull);
}

TEST_F(ImcSocketTest, OnlyPlaceholdersAndNoBytesIsAMessageNotEndOfStream) {
  ASSERT_EQ(0, Send(pair_[0], "", {-1}));
  Received r = Receive(pair_[1]);
  EXPECT_EQ(0, r.result);
  ASSERT_EQ(1u, r.fds.size());
  EXPECT_EQ(-1, r.fds[0]);
}

TEST_F(ImcSocketTest, SealedSharedMemoryIsNotMistakenForAPlaceholder) {
  int shm = imc_mem_obj_create(IMC_MEM_OBJ_GRANULARITY);
  ASSERT_GE(shm, 0);
  ASSERT_EQ(0, fcntl(shm, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL));
  ASSERT_EQ(1, Send(pair_[0], "m", {shm}));
  Received r = Receive(pair_[1]);
  ASSERT_EQ(1u, r.fds.size());
  EXPECT_TRUE(SameFile(shm, r.fds[0]));
  r.CloseFds();
  close(shm);
}

TEST_F(ImcSocketTest, DataTruncatedReachesTheCaller) {
  ASSERT_EQ(10, Send(pair_[0], "0123456789"));
  ASSERT_EQ(2, Send(pair_[0], "ok"));
  Received r = Receive(pair_[1], 4);
  EXPECT_EQ(4, r.result);
  EXPECT_EQ("0123", r.bytes);
  EXPECT_EQ(RECVMSG_DATA_TRUNCATED, r.flags);
  // The rest of a truncated message is gone; the next one is whole.
  r = Receive(pair_[1], 4);
  EXPECT_EQ("ok", r.bytes);
  EXPECT_EQ(0, r.flags);
}

// Every capacity against every count around the CMSG_SPACE rounding: the
// caller's array is never overrun, extras are closed, the flag is exact.
TEST_F(ImcSocketTest, DescriptorTruncationForEveryCapacityAndCount) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  size_t baseline = harness::CountOpenDescriptors();
  for (size_t sent = 0; sent <= 9; sent++) {
    for (size_t capacity = 0; capacity <= 8; capacity++) {
      std::vector<int> fds(sent, devnull);
      ASSERT_EQ(1, Send(pair_[0], "d", fds));
      std::vector<int> array(capacity + 4, -7);  // guard entries after
      char byte;
      NaClImcMsgIoVec iov = {&byte, 1};
      NaClImcMsgHdr msg = {};
      msg.iov = &iov;
      msg.iov_length = 1;
      msg.descv = array.data();
      msg.desc_length = capacity;
      ASSERT_EQ(1, imc_recvmsg(pair_[1], &msg, 0));
      size_t expect = std::min(sent, capacity);
      EXPECT_EQ(expect, msg.desc_length) << sent << " into " << capacity;
      EXPECT_EQ(sent > capacity ? RECVMSG_DESC_TRUNCATED : 0, msg.flags)
          << sent << " into " << capacity;
      for (size_t i = capacity; i < array.size(); i++)
        EXPECT_EQ(-7, array[i]) << "wrote past the array";
      for (size_t i = 0; i < msg.desc_length; i++) {
        EXPECT_TRUE(SameFile(devnull, array[i]));
        close(array[i]);
      }
      EXPECT_EQ(baseline, harness::CountOpenDescriptors())
          << sent << " into " << capacity;
    }
  }
  close(devnull);
}

TEST_F(ImcSocketTest, CarriesTheMaximumNumberOfDescriptors) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<int> fds(IMC_MAX_DESCRIPTORS, devnull);
  fds[7] = -1;
  ASSERT_EQ(1, Send(pair_[0], "m", fds));
  Received r = Receive(pair_[1], 16, IMC_MAX_DESCRIPTORS);
  ASSERT_EQ(static_cast<size_t>(IMC_MAX_DESCRIPTORS), r.fds.size());
  EXPECT_EQ(0, r.flags);
  EXPECT_EQ(-1, r.fds[7]);
  EXPECT_TRUE(SameFile(devnull, r.fds[IMC_MAX_DESCRIPTORS - 1]));
  r.CloseFds();

  fds.push_back(devnull);
  errno = 0;
  EXPECT_EQ(-1, Send(pair_[0], "m", fds));
  EXPECT_EQ(EINVAL, errno);
  close(devnull);
}

TEST_F(ImcSocketTest, EnforcesTheIovecAndSizeLimits) {
  std::vector<char> big(IMC_MAX_DATA_BYTES + 1, 'b');
  std::vector<NaClImcMsgIoVec> iov(IMC_MAX_IOVECS + 1, {big.data(), 1});
  NaClImcMsgHdr msg = {};
  msg.iov = iov.data();

  msg.iov_length = IMC_MAX_IOVECS;
  EXPECT_EQ(IMC_MAX_IOVECS, imc_sendmsg(pair_[0], &msg, 0));
  msg.iov_length = IMC_MAX_IOVECS + 1;
  errno = 0;
  EXPECT_EQ(-1, imc_sendmsg(pair_[0], &msg, 0));
  EXPECT_EQ(EINVAL, errno);

  iov[0].length = IMC_MAX_DATA_BYTES;
  msg.iov_length = 1;
  EXPECT_EQ(IMC_MAX_DATA_BYTES, imc_sendmsg(pair_[0], &msg, 0));
  iov[0].length = IMC_MAX_DATA_BYTES + 1;
  errno = 0;
  EXPECT_EQ(-1, imc_sendmsg(pair_[0], &msg, 0));
  EXPECT_EQ(EMSGSIZE, errno);

  // Lengths whose sum wraps around must not slip through.
  iov[0].length = IMC_MAX_DATA_BYTES;
  iov[1].length = SIZE_MAX - IMC_MAX_DATA_BYTES + 2;
  msg.iov_length = 2;
  errno = 0;
  EXPECT_EQ(-1, imc_sendmsg(pair_[0], &msg, 0));
  EXPECT_EQ(EMSGSIZE, errno);

  Received r = Receive(pair_[1], IMC_MAX_DATA_BYTES + 10);
  EXPECT_EQ(IMC_MAX_IOVECS, r.result);
  r = Receive(pair_[1], IMC_MAX_DATA_BYTES + 10);
  EXPECT_EQ(IMC_MAX_DATA_BYTES, r.result);
  EXPECT_EQ(0, r.flags);
}

TEST_F(ImcSocketTest, RejectsBadArguments) {
  NaClImcMsgHdr msg = {};
  char byte = 'x';
  NaClImcMsgIoVec iov = {&byte, 1};
  struct {
    const char* what;
    int fd;
    NaClImcMsgHdr* msg;
    int flags;
    int error;
  } cases[] = {
      {"null header", pair_[0], nullptr, 0, EINVAL},
      {"unknown flag", pair_[0], &msg, 0x100, EINVAL},
      {"empty message", pair_[0], &msg, 0, EINVAL},
      {"closed descriptor", 1000, &msg, 0, EBADF},
      {"not a socket", 0, &msg, 0, ENOTSOCK},
  };
  for (const auto& c : cases) {
    msg = {};
    if (c.error != EINVAL || c.flags != 0) {
      msg.iov = &iov;
      msg.iov_length = 1;
    }
    errno = 0;
    EXPECT_EQ(-1, imc_sendmsg(c.fd, c.msg, c.flags)) << c.what;
    EXPECT_EQ(c.error, errno) << c.what;
  }
  msg = {};
  msg.iov_length = 1;  // iov NULL
  errno = 0;
  EXPECT_EQ(-1, imc_recvmsg(pair_[1], &msg, 0));
  EXPECT_EQ(EINVAL, errno);
  errno = 0;
  EXPECT_EQ(-1, imc_recvmsg(pair_[1], nullptr, 0));
  EXPECT_EQ(EINVAL, errno);
  msg = {};
  msg.iov = &iov;
  msg.iov_length = 1;
  errno = 0;
  EXPECT_EQ(-1, imc_recvmsg(pair_[1], &msg, 0x100));
  EXPECT_EQ(EINVAL, errno);
  int bad = -5;
  EXPECT_EQ(-1, Send(pair_[0], "x", {bad}));
  EXPECT_EQ(EBADF, errno);
}

TEST_F(ImcSocketTest, EndOfStreamIsZeroAfterPendingMessages) {
  ASSERT_EQ(4, Send(pair_[1], "last"));
  ClosePeer();
  Received r = Receive(pair_[0]);
  EXPECT_EQ("last", r.bytes);
  r = Receive(pair_[0]);
  EXPECT_EQ(0, r.result);
  EXPECT_TRUE(r.fds.empty());
  EXPECT_EQ(0, r.flags);
  // And it stays at end of stream, without blocking.
  EXPECT_EQ(0, Receive(pair_[0]).result);
}

TEST_F(ImcSocketTest, SendToClosedPeerIsEpipeNotSigpipe) {
  // SIGPIPE is at its default disposition in every test binary: if the send
  // raised it, the whole binary would die here.
  ClosePeer();
  errno = 0;
  EXPECT_EQ(-1, Send(pair_[0], "x"));
  EXPECT_EQ(EPIPE, errno);
}

TEST_F(ImcSocketTest, SendToPeerThatClosedWithUnreadDataIsConnreset) {
  ASSERT_EQ(1, Send(pair_[0], "x"));
  ASSERT_EQ(1, Send(pair_[1], "y"));
  ClosePeer();
  errno = 0;
  EXPECT_EQ(-1, Send(pair_[0], "z"));
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << strerror(errno);
}

TEST(ImcSigpipeTest, ChildWithDefaultSigpipeSurvivesEverySendPath) {
  pid_t pid = harness::ForkChild([] {
    signal(SIGPIPE, SIG_DFL);
    int pair[2];
    if (imc_socketpair(pair) != 0)
      return 10;
    close(pair[1]);
    if (Send(pair[0], "x") != -1 || errno != EPIPE)
      return 11;
    int bound[2];
    if (imc_makeboundsock(bound) != 0)
      return 12;
    close(bound[0]);
    if (imc_connect(bound[1]) != -1 || errno != ECONNREFUSED)
      return 13;
    // Linux raises SIGPIPE for stream sockets (not for seqpacket ones), and
    // nothing stops a caller from handing the layer a stream socket.
    int stream[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream) != 0)
      return 14;
    close(stream[1]);
    if (Send(stream[0], "x") != -1 || errno != EPIPE)
      return 15;
    if (imc_connect(stream[0]) != -1 || errno != ECONNREFUSED)
      return 16;
    return 0;
  });
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(harness::ExitedWithCode(harness::WaitForChild(pid, 10000), 0));
}

TEST_F(ImcSocketTest, NonBlockingReceiveAndSend) {
  Received r = Receive(pair_[1], 16, 0, IMC_NONBLOCK);
  EXPECT_EQ(-1, r.result);
  EXPECT_EQ(EAGAIN, r.error);
  std::string chunk(60000, 'q');
  int sent = 0;
  while (Send(pair_[0], chunk, {}, IMC_NONBLOCK) > 0)
    sent++;
  EXPECT_EQ(EAGAIN, errno);
  EXPECT_GT(sent, 0);
  for (int i = 0; i < sent; i++)
    ASSERT_EQ(60000, Receive(pair_[1], 65536, 0, IMC_NONBLOCK).result);
  EXPECT_EQ(EAGAIN, Receive(pair_[1], 16, 0, IMC_NONBLOCK).error);
}

std::atomic<int> g_signals_seen{0};
void CountSignal(int) {
  g_signals_seen++;
}

TEST_F(ImcSocketTest, BlockingReceiveIsRestartedAfterASignal) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = CountSignal;  // no SA_RESTART: recvmsg sees EINTR
  ASSERT_EQ(0, sigaction(SIGUSR1, &sa, &old));
  g_signals_seen = 0;
  std::atomic<bool> started{false};
  Received r;
  std::thread reader([&] {
    started = true;
    r = Receive(pair_[1]);
  });
  while (!started)
    usleep(100);
  for (int i = 0; i < 5; i++) {
    usleep(5000);
    pthread_kill(reader.native_handle(), SIGUSR1);
  }
  while (g_signals_seen < 5)
    usleep(100);
  ASSERT_EQ(5, Send(pair_[0], "after"));
  reader.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(5, r.result);
  EXPECT_EQ("after", r.bytes);
}

TEST_F(ImcSocketTest, ConcurrentSendersNeverInterleave) {
  const int kThreads = 4, kMessages = 500;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; t++) {
    senders.emplace_back([this, t] {
      for (int i = 0; i < kMessages; i++) {
        size_t len = 1 + static_cast<size_t>((i * 7919 + t * 104729) % 60000);
        ASSERT_GT(Send(pair_[0], std::string(len, static_cast<char>('A' + t))),
                  0);
      }
    });
  }
  int next[kThreads] = {};
  for (int n = 0; n < kThreads * kMessages; n++) {
    Received r = Receive(pair_[1]);
    ASSERT_GT(r.result, 0);
    int t = r.bytes[0] - 'A';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    size_t len = 1 + static_cast<size_t>((next[t] * 7919 + t * 104729) % 60000);
    ASSERT_EQ(len, r.bytes.size()) << "message from thread " << t;
    ASSERT_EQ(std::string::npos, r.bytes.find_first_not_of(r.bytes[0]));
    next[t]++;
  }
  for (auto& s : senders)
    s.join();
}

// With RLIMIT_NOFILE so low that the kernel cannot install the descriptors
// of a message, receive reports EMFILE, keeps nothing, and works again once
// descriptors are free. In a child, so the limit does not outlive the test.
TEST(ImcExhaustionTest, ReceiveUnderDescriptorExhaustionIsEmfileAndRecovers) {
  pid_t pid = harness::ForkChild([] {
    int pair[2];
    if (imc_socketpair(pair) != 0)
      return 10;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (Send(pair[0], "x", {devnull, devnull, devnull}) != 1 ||
        Send(pair[0], "y", {devnull}) != 1)
      return 11;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = static_cast<rlim_t>(devnull + 16);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      return 12;
    std::vector<int> filler;
    for (int fd; (fd = dup(devnull)) >= 0;)
      filler.push_back(fd);
    close(filler.back());  // exactly one slot free
    filler.pop_back();
    Received r = Receive(pair[1]);
    if (r.result != -1 || r.error != EMFILE)
      return 13;
    // Nothing was kept: the one free slot is still free.
    int probe = dup(devnull);
    if (probe < 0)
      return 14;
    close(probe);
    r = Receive(pair[1]);
    if (r.result != 1 || r.bytes != "y" || r.fds.size() != 1 ||
        !SameFile(r.fds[0], devnull))
      return 15;
    return 0;
  });
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(harness::ExitedWithCode(harness::WaitForChild(pid, 10000), 0));
}

TEST(ImcCompatTest, NaClNamesMapToTheLayer) {
  NaClAbiNaClImcMsgIoVec iov = {nullptr, 0};
  struct NaClAbiNaClImcMsgHdr hdr = {&iov, 1, nullptr, 0, 0};
  EXPECT_EQ(&iov, hdr.iov);
  EXPECT_EQ(256, NACL_ABI_IMC_IOVEC_MAX);
  EXPECT_EQ(0x1, NACL_ABI_RECVMSG_DATA_TRUNCATED);
  EXPECT_EQ(0x2, NACL_ABI_RECVMSG_DESC_TRUNCATED);
  EXPECT_EQ(0x1, NACL_ABI_IMC_NONBLOCK);
  EXPECT_GE(NACL_ABI_IMC_USER_DESC_MAX, 8);
  EXPECT_GE(NACL_ABI_IMC_USER_BYTES_MAX, 128 * 1024);
}

}  // namespace

namespace {

// The kernel reports ECONNRESET to a receiver whose own messages went
// unread when the peer closed, ahead of the messages still queued for it.
// Those messages must not be lost.
TEST(ImcResetTest, RepliesQueuedBeforeThePeerClosedAreStillReceived) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  ASSERT_EQ(8, imc_test::Send(pair[0], "request1"));
  ASSERT_EQ(8, imc_test::Send(pair[0], "request2"));
  ASSERT_EQ("request1", imc_test::Receive(pair[1]).bytes);
  ASSERT_EQ(5, imc_test::Send(pair[1], "reply"));
  close(pair[1]);  // request2 was never read
  imc_test::Received r = imc_test::Receive(pair[0]);
  EXPECT_EQ(5, r.result) << strerror(r.error);
  EXPECT_EQ("reply", r.bytes);
  EXPECT_EQ(0, imc_test::Receive(pair[0]).result);
  close(pair[0]);
}

}  // namespace
