// imc across real processes: connect/accept, the capability pattern, every
// kind of descriptor used by the receiver, a peer killed mid-exchange.

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "testing/harness/child_process.h"

namespace {

using harness::ExitedWithCode;
using harness::HelperPath;
using harness::SpawnProcess;
using harness::WaitForChild;
using imc_test::Receive;
using imc_test::Received;
using imc_test::Send;

const int kTimeoutMs = 20000;

// A helper in "serve" mode with a control channel; `extra` becomes its
// descriptor 4 when given.
struct Served {
  explicit Served(int extra = -1) {
    EXPECT_EQ(0, imc_socketpair(control));
    std::vector<harness::FdMapping> fds = {{control[1], 3}};
    if (extra >= 0)
      fds.push_back({extra, 4});
    pid = SpawnProcess(HelperPath("imc_test_helper"), {"serve"}, fds);
    close(control[1]);
  }
  // Closes the channel and expects a clean exit.
  void Finish() {
    close(control[0]);
    EXPECT_TRUE(ExitedWithCode(WaitForChild(pid, kTimeoutMs), 0));
  }
  int control[2] = {-1, -1};
  pid_t pid = -1;
};

TEST(ImcProcessTest, ConnectAndAcceptAcrossProcesses) {
  int bound[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  pid_t pid =
      SpawnProcess(HelperPath("imc_test_helper"), {"accept"}, {{bound[0], 3}});
  close(bound[0]);
  int conn = imc_connect_ex(bound[1], IMC_CONNECT_CONFIRM, kTimeoutMs);
  ASSERT_GE(conn, 0);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(5, Send(conn, "echo!", {devnull}));
  Received r = Receive(conn);
  EXPECT_EQ("echo!", r.bytes);
  ASSERT_EQ(1u, r.fds.size());
  EXPECT_TRUE(imc_test::SameFile(devnull, r.fds[0]));
  r.CloseFds();
  close(devnull);
  close(conn);
  close(bound[1]);
  EXPECT_TRUE(ExitedWithCode(WaitForChild(pid, kTimeoutMs), 0));
}

// A passes its SocketAddress to B, B passes it to C, C connects to A.
TEST(ImcProcessTest, CapabilityPassesThroughAThirdProcess) {
  int bound[2], bc[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  ASSERT_EQ(0, imc_socketpair(bc));
  Served b(bc[0]);
  close(bc[0]);
  // C's command channel is the B-C pair: B tells it what to do.
  pid_t c_pid =
      SpawnProcess(HelperPath("imc_test_helper"), {"serve"}, {{bc[1], 3}});
  close(bc[1]);

  ASSERT_EQ(7, Send(b.control[0], "forward", {bound[1]}));
  close(bound[1]);  // only B and C hold the address now
  int conn = imc_accept(bound[0]);
  ASSERT_GE(conn, 0);
  EXPECT_EQ("hello from " + std::to_string(c_pid), Receive(conn).bytes);
  close(conn);
  b.Finish();  // B exits, closing its end of B-C, so C sees EOF
  EXPECT_TRUE(ExitedWithCode(WaitForChild(c_pid, kTimeoutMs), 0));
  errno = 0;
  EXPECT_EQ(-1, imc_accept(bound[0])) << "every address is closed";
  EXPECT_EQ(EPIPE, errno);
  close(bound[0]);
}

TEST(ImcProcessTest, ReceiverReadsAPassedFile) {
  char path[] = "/tmp/imc_test_XXXXXX";
  int file = mkostemp(path, O_CLOEXEC);
  ASSERT_GE(file, 0);
  unlink(path);
  ASSERT_EQ(14, write(file, "file contents!", 14));
  Served s;
  ASSERT_GT(Send(s.control[0], "read-file", {file}), 0);
  EXPECT_EQ("file contents!", Receive(s.control[0]).bytes);
  close(file);
  s.Finish();
}

TEST(ImcProcessTest, ReceiverMapsPassedSharedMemoryCoherently) {
  const size_t size = 2 * IMC_MEM_OBJ_GRANULARITY;
  int shm = imc_mem_obj_create(size);
  ASSERT_GE(shm, 0);
  char* p = static_cast<char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0));
  ASSERT_NE(MAP_FAILED, p);
  memcpy(p, "parent", 6);
  Served s;
  ASSERT_GT(Send(s.control[0], "shm", {shm}), 0);
  EXPECT_EQ("done", Receive(s.control[0]).bytes);
  EXPECT_EQ(0, memcmp(p + size / 2, "child", 5));
  munmap(p, size);
  close(shm);
  s.Finish();
}

TEST(ImcProcessTest, ReceiverUsesAPassedDataSocket) {
  int data[2];
  ASSERT_EQ(0, imc_socketpair(data));
  Served s;
  ASSERT_GT(Send(s.control[0], "use-socket", {data[1]}), 0);
  close(data[1]);
  EXPECT_EQ("via passed socket", Receive(data[0]).bytes);
  close(data[0]);
  s.Finish();
}

TEST(ImcProcessTest, PeerKilledMidExchangeIsEndOfStreamNotAnError) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  pid_t pid =
      SpawnProcess(HelperPath("imc_test_helper"), {"flood"}, {{pair[1], 3}});
  close(pair[1]);
  for (int i = 0; i < 100; i++)
    ASSERT_EQ("message " + std::to_string(i), Receive(pair[0]).bytes);
  kill(pid, SIGKILL);
  harness::ChildStatus status = WaitForChild(pid, kTimeoutMs);
  EXPECT_EQ(SIGKILL, status.signal);
  // Every message sent before the kill arrives whole, then end of stream.
  for (int i = 100;; i++) {
    Received r = Receive(pair[0]);
    ASSERT_GE(r.result, 0) << strerror(r.error);
    if (r.result == 0)
      break;
    ASSERT_EQ("message " + std::to_string(i), r.bytes);
  }
  errno = 0;
  EXPECT_EQ(-1, Send(pair[0], "anyone?"));
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET);
  close(pair[0]);
}

}  // namespace
