// imc_makeboundsock, imc_connect, imc_connect_ex, imc_accept in one process.

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "testing/harness/descriptors.h"

namespace {

using imc_test::Receive;
using imc_test::Received;
using imc_test::Send;

class ImcConnectTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(0, imc_makeboundsock(sock_and_addr_)); }
  void TearDown() override {
    for (int fd : sock_and_addr_) {
      if (fd >= 0)
        close(fd);
    }
  }
  int bound() const { return sock_and_addr_[0]; }
  int address() const { return sock_and_addr_[1]; }
  void CloseBound() {
    close(sock_and_addr_[0]);
    sock_and_addr_[0] = -1;
  }
  void CloseAddress() {
    close(sock_and_addr_[1]);
    sock_and_addr_[1] = -1;
  }
  // Sends a raw request to the address, as a hostile connector would.
  void SendRaw(const std::string& bytes, const std::vector<int>& fds) {
    char empty = 0;
    NaClImcMsgIoVec iov = {
        bytes.empty() ? &empty : const_cast<char*>(bytes.data()), bytes.size()};
    NaClImcMsgHdr msg = {};
    msg.iov = &iov;
    msg.iov_length = 1;
    msg.descv = const_cast<int*>(fds.data());
    msg.desc_length = fds.size();
    if (bytes.empty() && fds.empty()) {
      // imc_sendmsg refuses empty messages; a raw peer can still send one.
      ASSERT_EQ(0, send(address(), "", 0, MSG_NOSIGNAL));
      return;
    }
    ASSERT_EQ(static_cast<int>(bytes.size()), imc_sendmsg(address(), &msg, 0));
  }
  int sock_and_addr_[2] = {-1, -1};
};

TEST_F(ImcConnectTest, ConnectThenAcceptGivesAConnectedPair) {
  int client = imc_connect(address());
  ASSERT_GE(client, 0);
  int server = imc_accept(bound());
  ASSERT_GE(server, 0);
  EXPECT_TRUE(imc_test::IsCloseOnExec(client));
  EXPECT_TRUE(imc_test::IsCloseOnExec(server));
  EXPECT_TRUE(imc_test::IsCloseOnExec(bound()));
  EXPECT_TRUE(imc_test::IsCloseOnExec(address()));
  ASSERT_EQ(4, Send(client, "ping"));
  EXPECT_EQ("ping", Receive(server).bytes);
  ASSERT_EQ(4, Send(server, "pong"));
  EXPECT_EQ("pong", Receive(client).bytes);
  close(client);
  EXPECT_EQ(0, Receive(server).result);  // end of stream
  close(server);
}

TEST_F(ImcConnectTest, ConnectToAClosedBoundSocketIsRefusedAtOnce) {
  CloseBound();
  errno = 0;
  EXPECT_EQ(-1, imc_connect(address()));
  EXPECT_EQ(ECONNREFUSED, errno);
  errno = 0;
  EXPECT_EQ(-1, imc_connect_ex(address(), IMC_CONNECT_CONFIRM, 1000));
  EXPECT_EQ(ECONNREFUSED, errno);
}

TEST_F(ImcConnectTest, AcceptFailsWithEpipeOnceEveryAddressIsClosed) {
  int client = imc_connect(address());
  ASSERT_GE(client, 0);
  CloseAddress();
  int server = imc_accept(bound());  // the pending request is still served
  ASSERT_GE(server, 0);
  errno = 0;
  EXPECT_EQ(-1, imc_accept(bound()));
  EXPECT_EQ(EPIPE, errno);
  close(server);
  close(client);
}

TEST_F(ImcConnectTest, AcceptOnANonBlockingBoundSocketIsEagain) {
  ASSERT_EQ(0, fcntl(bound(), F_SETFL, O_NONBLOCK));
  errno = 0;
  EXPECT_EQ(-1, imc_accept(bound()));
  EXPECT_EQ(EAGAIN, errno);
}

TEST_F(ImcConnectTest, ConnectRejectsUnknownFlagsAndNonAddresses) {
  errno = 0;
  EXPECT_EQ(-1, imc_connect_ex(address(), 0x40, -1));
  EXPECT_EQ(EINVAL, errno);
  errno = 0;
  EXPECT_EQ(-1, imc_connect(1000));
  EXPECT_EQ(EBADF, errno);
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  errno = 0;
  EXPECT_EQ(-1, imc_connect(p[1]));
  EXPECT_EQ(ENOTSOCK, errno);
  close(p[0]);
  close(p[1]);
}

TEST_F(ImcConnectTest, ConfirmedConnectWaitsForTheAcceptor) {
  std::atomic<int> server{-1};
  std::thread acceptor([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    server = imc_accept(bound());
    Send(server, "first user message");
  });
  auto start = std::chrono::steady_clock::now();
  int client = imc_connect_ex(address(), IMC_CONNECT_CONFIRM, 10000);
  auto waited = std::chrono::steady_clock::now() - start;
  acceptor.join();
  ASSERT_GE(client, 0);
  ASSERT_GE(server.load(), 0);
  EXPECT_GE(waited, std::chrono::milliseconds(25));
  // The confirmation was consumed by connect: the stream is the user's.
  EXPECT_EQ("first user message", Receive(client).bytes);
  close(client);
  close(server);
}

TEST_F(ImcConnectTest, ConfirmedConnectTimesOutAndLeavesNothingBehind) {
  size_t before = harness::CountOpenDescriptors();
  errno = 0;
  EXPECT_EQ(-1, imc_connect_ex(address(), IMC_CONNECT_CONFIRM, 50));
  EXPECT_EQ(ETIMEDOUT, errno);
  EXPECT_EQ(before, harness::CountOpenDescriptors());
  // The abandoned request is skipped by accept: the connector is gone.
  int client = imc_connect(address());
  int server = imc_accept(bound());
  ASSERT_GE(server, 0);
  ASSERT_EQ(1, Send(client, "2"));
  EXPECT_EQ("2", Receive(server).bytes);
  close(client);
  close(server);
}

TEST_F(ImcConnectTest, ConfirmedConnectIsRefusedWhenTheBoundSocketCloses) {
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CloseBound();
  });
  errno = 0;
  EXPECT_EQ(-1, imc_connect_ex(address(), IMC_CONNECT_CONFIRM, 10000));
  EXPECT_EQ(ECONNREFUSED, errno);
  closer.join();
}

TEST_F(ImcConnectTest, ConfirmedConnectRejectsAForgedConfirmation) {
  std::thread acceptor([&] {
    // An acceptor that answers with the wrong byte.
    char byte;
    int fd = -1;
    NaClImcMsgIoVec iov = {&byte, 1};
    NaClImcMsgHdr msg = {};
    msg.iov = &iov;
    msg.iov_length = 1;
    msg.descv = &fd;
    msg.desc_length = 1;
    ASSERT_EQ(1, imc_recvmsg(bound(), &msg, 0));
    EXPECT_EQ('C', byte);
    Send(fd, "x");
    close(fd);
  });
  errno = 0;
  EXPECT_EQ(-1, imc_connect_ex(address(), IMC_CONNECT_CONFIRM, 10000));
  EXPECT_EQ(EPROTO, errno);
  acceptor.join();
}

// Everything a hostile connector can send instead of a request: each is
// discarded with its descriptors, and the next real connect is accepted.
TEST_F(ImcConnectTest, AcceptDiscardsMalformedRequestsAndLeaksNothing) {
  int pipefd[2], seq[2], stream[2], dgram[2];
  ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, seq));
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream));
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram));
  int unconnected = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  int listening = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sa_family_t family = AF_UNIX;  // an address of just the family: autobind
  ASSERT_EQ(
      0, bind(listening, reinterpret_cast<sockaddr*>(&family), sizeof(family)));
  ASSERT_EQ(0, listen(listening, 1));
  int inet = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int shm = imc_mem_obj_create(IMC_MEM_OBJ_GRANULARITY);
  ASSERT_GE(shm, 0);
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<int> fds;
  } cases[] = {
      {"empty datagram", "", {}},
      {"descriptor without a byte", "", {seq[0]}},
      {"wrong byte", "x", {seq[0]}},
      {"two bytes", "cc", {seq[0]}},
      {"no descriptor", "c", {}},
      {"two descriptors", "c", {seq[0], seq[1]}},
      {"placeholder", "c", {-1}},
      {"pipe", "c", {pipefd[1]}},
      {"stream socket", "c", {stream[0]}},
      {"datagram socket", "c", {dgram[0]}},
      {"unconnected socket", "C", {unconnected}},
      {"listening socket", "c", {listening}},
      {"inet socket", "c", {inet}},
      {"file", "c", {devnull}},
      {"directory", "c", {dir}},
      {"shared memory", "c", {shm}},
      {"many descriptors", "c", std::vector<int>(IMC_MAX_DESCRIPTORS, devnull)},
  };
  size_t before = harness::CountOpenDescriptors();
  for (const Case& c : cases) {
    SendRaw(c.bytes, c.fds);
    int client = imc_connect(address());
    ASSERT_GE(client, 0) << c.what;
    int server = imc_accept(bound());
    ASSERT_GE(server, 0) << c.what;
    ASSERT_EQ(2, Send(client, "ok")) << c.what;
    // Non-blocking: if accept handed out the bad request's socket, nothing
    // is there to read, and the test fails instead of hanging.
    Received r = Receive(server, 16, 0, IMC_NONBLOCK);
    EXPECT_EQ("ok", r.bytes) << c.what << ": accept returned the bad request";
    close(client);
    close(server);
    EXPECT_EQ(before, harness::CountOpenDescriptors()) << c.what;
  }
  for (int fd :
       {pipefd[0], pipefd[1], seq[0], seq[1], stream[0], stream[1], dgram[0],
        dgram[1], unconnected, listening, inet, devnull, dir, shm})
    close(fd);
}

// Seed 002 calls a backlog of 5 bad. Requests queue in the address's send
// buffer: at least 256 must fit with nobody accepting, and every one must
// come out of accept as a working connection.
TEST_F(ImcConnectTest, HundredsOfPendingConnectsAreQueuedAndNoneLost) {
  std::vector<int> clients;
  for (int i = 0; i < 100000; i++) {
    int fd = imc_connect_ex(address(), IMC_NONBLOCK, -1);
    if (fd < 0) {
      EXPECT_EQ(EAGAIN, errno);
      break;
    }
    clients.push_back(fd);
  }
  ASSERT_GE(clients.size(), 256u);
  RecordProperty("pending_connect_limit", static_cast<int>(clients.size()));
  printf("pending connects before the kernel pushed back: %zu\n",
         clients.size());
  for (size_t i = 0; i < clients.size(); i++) {
    int server = imc_accept(bound());
    ASSERT_GE(server, 0);
    std::string id = std::to_string(i);
    ASSERT_GT(Send(clients[i], id), 0);
    ASSERT_EQ(id, Receive(server).bytes) << "connections out of order";
    close(server);
  }
  for (int fd : clients)
    close(fd);
}

TEST_F(ImcConnectTest, BlockingConnectWaitsForRoomThenSucceeds) {
  std::vector<int> clients;
  for (;;) {
    int fd = imc_connect_ex(address(), IMC_NONBLOCK, -1);
    if (fd < 0)
      break;
    clients.push_back(fd);
  }
  ASSERT_EQ(EAGAIN, errno);
  std::atomic<int> late{-2};
  std::thread connector([&] { late = imc_connect(address()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(-2, late.load()) << "connect did not wait for room";
  // The kernel wakes a blocked sender once the queue has drained to a
  // quarter of the buffer, so drain it all; the late request comes last.
  for (size_t i = 0; i < clients.size(); i++) {
    int server = imc_accept(bound());
    ASSERT_GE(server, 0);
    close(server);
  }
  connector.join();
  ASSERT_GE(late.load(), 0);
  int server = imc_accept(bound());
  ASSERT_GE(server, 0);
  ASSERT_EQ(4, Send(late, "late"));
  EXPECT_EQ("late", Receive(server).bytes);
  close(server);
  close(late);
  for (int fd : clients)
    close(fd);
}

TEST_F(ImcConnectTest, ManyThreadsConnectAndAcceptAtOnce) {
  const int kConnectors = 8, kPerConnector = 100, kAcceptors = 4;
  std::mutex mu;
  std::multiset<std::string> seen;
  std::vector<std::thread> threads;
  for (int a = 0; a < kAcceptors; a++) {
    threads.emplace_back([&] {
      for (int i = 0; i < kConnectors * kPerConnector / kAcceptors; i++) {
        int server = imc_accept(bound());
        ASSERT_GE(server, 0);
        Received r = Receive(server);
        ASSERT_EQ(1, Send(server, "k"));
        close(server);
        std::lock_guard<std::mutex> lock(mu);
        seen.insert(r.bytes);
      }
    });
  }
  for (int c = 0; c < kConnectors; c++) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kPerConnector; i++) {
        int flags = (i % 2) ? IMC_CONNECT_CONFIRM : 0;
        int client = imc_connect_ex(address(), flags, 30000);
        ASSERT_GE(client, 0);
        std::string id = std::to_string(c) + ":" + std::to_string(i);
        ASSERT_GT(Send(client, id), 0);
        EXPECT_EQ("k", Receive(client).bytes);
        close(client);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  ASSERT_EQ(static_cast<size_t>(kConnectors * kPerConnector), seen.size());
  for (int c = 0; c < kConnectors; c++) {
    for (int i = 0; i < kPerConnector; i++)
      EXPECT_EQ(1u, seen.count(std::to_string(c) + ":" + std::to_string(i)));
  }
}

}  // namespace

namespace {

using imc_test::Receive;
using imc_test::Send;

// A connector that hands in a copy of the address itself must not become a
// connection: the acceptor would hold the address and never see EPIPE.
TEST(ImcConnectHostileTest, TheAddressItselfIsNotAcceptedAsAConnection) {
  int bound[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  NaClImcMsgIoVec iov = {const_cast<char*>("c"), 1};
  NaClImcMsgHdr msg = {&iov, 1, &bound[1], 1, 0};
  ASSERT_EQ(1, imc_sendmsg(bound[1], &msg, 0));
  close(bound[1]);
  errno = 0;
  EXPECT_EQ(-1, imc_accept(bound[0]));
  EXPECT_EQ(EPIPE, errno);
  close(bound[0]);
}

// A connection whose connector sent a message and closed before anyone
// accepted is still handed out, message and all.
TEST(ImcConnectHostileTest, AClosedConnectorsMessageIsStillDelivered) {
  int bound[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  int client = imc_connect(bound[1]);
  ASSERT_GE(client, 0);
  ASSERT_EQ(7, Send(client, "goodbye"));
  close(client);
  int server = imc_accept(bound[0]);
  ASSERT_GE(server, 0);
  EXPECT_EQ("goodbye", Receive(server).bytes);
  EXPECT_EQ(0, Receive(server).result);
  close(server);
  close(bound[0]);
  close(bound[1]);
}

}  // namespace
