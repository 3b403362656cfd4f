#include "testing/harness/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace harness {
namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// In a freshly forked child: make exactly `fds` (plus 0, 1, 2) survive exec.
// Only async-signal-safe calls.
void ArrangeDescriptors(const std::vector<FdMapping>& fds) {
  int top = 2;
  for (const FdMapping& m : fds)
    top = std::max(top, m.second);
  // Move every source above all targets first, so no dup2 clobbers a source
  // that a later mapping still needs.
  int moved[64];
  size_t count = std::min(fds.size(), sizeof(moved) / sizeof(moved[0]));
  for (size_t i = 0; i < count; i++)
    moved[i] = fcntl(fds[i].first, F_DUPFD_CLOEXEC, top + 1);
  for (size_t i = 0; i < count; i++) {
    if (moved[i] < 0 || dup2(moved[i], fds[i].second) < 0)
      _exit(126);
  }
  for (int fd = 3; fd <= top; fd++) {
    bool wanted = false;
    for (size_t i = 0; i < count; i++)
      wanted = wanted || fds[i].second == fd;
    if (!wanted)
      close(fd);
  }
  syscall(SYS_close_range, top + 1, ~0U, 0);
}

}  // namespace

std::string HelperPath(const std::string& name) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0)
    return name;
  std::string dir(self, static_cast<size_t>(n));
  return dir.substr(0, dir.rfind('/') + 1) + name;
}

pid_t SpawnProcess(const std::string& path,
                   const std::vector<std::string>& args,
                   const std::vector<FdMapping>& fds) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    ArrangeDescriptors(fds);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

pid_t ForkChild(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(body());
  return pid;
}

std::string ChildStatus::Describe() const {
  if (timed_out)
    return "timed out and was killed";
  if (exited)
    return "exited with code " + std::to_string(exit_code);
  const char* name = sigabbrev_np(signal);
  return std::string("killed by SIG") + (name ? name : "?") + " (" +
         strsignal(signal) + ")";
}

static ChildStatus Reap(pid_t pid, bool timed_out) {
  ChildStatus status;
  status.timed_out = timed_out;
  int raw = 0;
  while (waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(raw)) {
    status.exited = true;
    status.exit_code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    status.signal = WTERMSIG(raw);
  }
  return status;
}

static bool HasEnded(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  return waitid(P_PID, static_cast<id_t>(pid), &info,
                WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

// Waits for `pid` while draining `out_fd` (if >= 0) into `output`. A pidfd,
// where the kernel has one, makes the wait end as soon as the child does.
static ChildStatus WaitDraining(pid_t pid,
                                int timeout_ms,
                                int out_fd,
                                std::string* output) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int64_t deadline = NowMs() + timeout_ms;
  bool ended = HasEnded(pid);
  while (!ended || out_fd >= 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0)
      break;
    struct pollfd pfd[2] = {{ended ? -1 : pidfd, POLLIN, 0},
                            {out_fd, POLLIN, 0}};
    int slice =
        static_cast<int>(std::min<int64_t>(left, pidfd < 0 ? 10 : 1000));
    if (poll(pfd, 2, slice) < 0 && errno != EINTR)
      break;
    if (pfd[1].revents) {
      char buf[4096];
      ssize_t n = read(out_fd, buf, sizeof(buf));
      if (n > 0)
        output->append(buf, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR)
        out_fd = -1;
    }
    ended = ended || HasEnded(pid);
  }
  if (pidfd >= 0)
    close(pidfd);
  if (!ended)
    kill(pid, SIGKILL);
  return Reap(pid, !ended);
}

ChildStatus WaitForChild(pid_t pid, int timeout_ms) {
  return WaitDraining(pid, timeout_ms, -1, nullptr);
}

::testing::AssertionResult ExitedWithCode(const ChildStatus& status, int code) {
  if (status.exited && status.exit_code == code)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "child " << status.Describe() << ", expected exit code " << code;
}

ChildStatus RunAndCapture(const std::string& path,
                          const std::vector<std::string>& args,
                          int timeout_ms,
                          std::string* output) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0)
    return ChildStatus();
  pid_t pid = SpawnProcess(path, args, {{pipefd[1], 1}, {pipefd[1], 2}});
  close(pipefd[1]);
  if (pid < 0) {
    close(pipefd[0]);
    return ChildStatus();
  }
  ChildStatus status = WaitDraining(pid, timeout_ms, pipefd[0], output);
  close(pipefd[0]);
  return status;
}

}  // namespace harness
