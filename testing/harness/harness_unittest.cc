// Tests of the harness itself: the leak listener must catch a leak, the
// child-process helpers must report exit codes, signals and timeouts.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "testing/harness/child_process.h"
#include "testing/harness/fd_leak_checker.h"

namespace harness {
namespace {

// Run only from FdLeakCheckerTest, in a child: each leaks on purpose.
TEST(FdLeakCheckerSelfTest, DISABLED_LeaksAPipe) {
  int fds[2];
  ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
  close(fds[1]);
}

TEST(FdLeakCheckerSelfTest, DISABLED_ClosesWhatItOpens) {
  int fds[2];
  ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
  close(fds[0]);
  close(fds[1]);
}

ChildStatus RunSelf(const std::string& filter, std::string* output) {
  return RunAndCapture(
      "/proc/self/exe",
      {"--gtest_also_run_disabled_tests", "--gtest_filter=" + filter}, 30000,
      output);
}

TEST(FdLeakCheckerTest, ReportsTheLeakedDescriptorAndFailsTheTest) {
  std::string output;
  ChildStatus status =
      RunSelf("FdLeakCheckerSelfTest.DISABLED_LeaksAPipe", &output);
  EXPECT_TRUE(ExitedWithCode(status, 1)) << output;
  EXPECT_NE(std::string::npos, output.find("leaked descriptor")) << output;
  EXPECT_NE(std::string::npos, output.find("-> pipe:[")) << output;
  EXPECT_NE(
      std::string::npos,
      output.find("[  FAILED  ] FdLeakCheckerSelfTest.DISABLED_LeaksAPipe"))
      << output;
}

TEST(FdLeakCheckerTest, PassesATestThatClosesEverything) {
  std::string output;
  ChildStatus status =
      RunSelf("FdLeakCheckerSelfTest.DISABLED_ClosesWhatItOpens", &output);
  EXPECT_TRUE(ExitedWithCode(status, 0)) << output;
  EXPECT_EQ(std::string::npos, output.find("leaked descriptor")) << output;
}

TEST(FdLeakCheckerTest, OpenDescriptorsSeesANewDescriptor) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(1u, OpenDescriptors().count(fd));
  EXPECT_EQ("/dev/null", DescribeDescriptor(fd));
  close(fd);
  EXPECT_EQ(0u, OpenDescriptors().count(fd));
}

TEST(ChildProcessTest, HelperGetsOnlyTheDescriptorsMappedToIt) {
  int fd = open("/dev/null", O_RDONLY);  // not close-on-exec on purpose
  ASSERT_GE(fd, 0);
  int pipefd[2];
  ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
  pid_t pid = SpawnProcess(HelperPath("harness_test_helper"), {"7"},
                           {{pipefd[1], 1}, {fd, 5}});
  ASSERT_GT(pid, 0);
  close(pipefd[1]);
  close(fd);
  char buf[256] = {};
  ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
  close(pipefd[0]);
  EXPECT_TRUE(ExitedWithCode(WaitForChild(pid, 10000), 7));
  ASSERT_GT(n, 0);
  EXPECT_STREQ("fds: 0 1 2 5\n", buf);
}

TEST(ChildProcessTest, NamesTheSignalThatKilledAChild) {
  pid_t pid = ForkChild([] {
    kill(getpid(), SIGKILL);
    return 0;
  });
  ASSERT_GT(pid, 0);
  ChildStatus status = WaitForChild(pid, 10000);
  EXPECT_FALSE(status.exited);
  EXPECT_EQ(SIGKILL, status.signal);
  EXPECT_EQ(0u, status.Describe().find("killed by SIGKILL"));
  EXPECT_FALSE(ExitedWithCode(status, 0));
}

TEST(ChildProcessTest, KillsAndReportsAChildThatOutlivesItsTimeout) {
  pid_t pid = ForkChild([] {
    pause();
    return 0;
  });
  ASSERT_GT(pid, 0);
  ChildStatus status = WaitForChild(pid, 50);
  EXPECT_TRUE(status.timed_out);
  EXPECT_EQ(SIGKILL, status.signal);
  EXPECT_EQ(-1, kill(pid, 0)) << "the child was not reaped";
}

}  // namespace
}  // namespace harness
