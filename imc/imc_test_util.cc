#include "imc/imc_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace imc_test {

int Send(int fd,
         const std::string& bytes,
         const std::vector<int>& fds,
         int flags) {
  NaClImcMsgIoVec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  NaClImcMsgHdr msg = {};
  msg.iov = &iov;
  msg.iov_length = 1;
  msg.descv = const_cast<int*>(fds.data());
  msg.desc_length = fds.size();
  return imc_sendmsg(fd, &msg, flags);
}

void Received::CloseFds() {
  for (int fd : fds) {
    if (fd >= 0)
      close(fd);
  }
  fds.clear();
}

Received Receive(int fd, size_t max_bytes, size_t max_fds, int flags) {
  Received r;
  std::vector<char> buf(max_bytes);
  std::vector<int> fds(max_fds, -2);
  NaClImcMsgIoVec iov = {buf.data(), buf.size()};
  NaClImcMsgHdr msg = {};
  msg.iov = &iov;
  msg.iov_length = 1;
  msg.descv = fds.data();
  msg.desc_length = fds.size();
  r.result = imc_recvmsg(fd, &msg, flags);
  if (r.result < 0) {
    r.error = errno;
    return r;
  }
  r.bytes.assign(buf.data(), static_cast<size_t>(r.result));
  r.fds.assign(fds.begin(), fds.begin() + static_cast<long>(msg.desc_length));
  r.flags = msg.flags;
  return r;
}

bool SameFile(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool IsCloseOnExec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

}  // namespace imc_test
