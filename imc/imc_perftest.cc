// imc_perftests: two-process ping-pong and connect+accept+first message,
// each beside the same exchange written with raw socketpair/sendmsg/recvmsg,
// measured interleaved in one run. Prints the ratio imc/raw.
//
//   imc_perftests [--quick] [--csv FILE]

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "imc/imc.h"
#include "testing/perf/perf.h"

namespace {

const size_t kMaxMessage = 64 * 1024;

// --- The raw baseline: what a careful program does without the layer. ---

ssize_t RawSend(int fd, const void* buf, size_t len, int desc) {
  struct iovec iov = {const_cast<void*>(buf), len};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (desc >= 0) {
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof(control.buf);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &desc, sizeof(int));
  }
  return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

ssize_t RawRecv(int fd, void* buf, size_t cap, int* desc) {
  struct iovec iov = {buf, cap};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control.buf;
  mh.msg_controllen = sizeof(control.buf);
  ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  *desc = -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  if (n >= 0 && c != nullptr && c->cmsg_type == SCM_RIGHTS)
    memcpy(desc, CMSG_DATA(c), sizeof(int));
  return n;
}

// --- The same through the layer. ---

int ImcSend(int fd, const void* buf, size_t len, int desc) {
  NaClImcMsgIoVec iov = {const_cast<void*>(buf), len};
  NaClImcMsgHdr msg = {&iov, 1, &desc, desc >= 0 ? 1u : 0u, 0};
  return imc_sendmsg(fd, &msg, 0);
}

int ImcRecv(int fd, void* buf, size_t cap, int* desc) {
  NaClImcMsgIoVec iov = {buf, cap};
  NaClImcMsgHdr msg = {&iov, 1, desc, 1, 0};
  int n = imc_recvmsg(fd, &msg, 0);
  if (n < 0 || msg.desc_length == 0)
    *desc = -1;
  return n;
}

// --- Peers, each in its own process. ---

void RawEcho(int fd) {
  std::vector<char> buf(kMaxMessage);
  int desc;
  ssize_t n;
  while ((n = RawRecv(fd, buf.data(), buf.size(), &desc)) > 0) {
    RawSend(fd, buf.data(), static_cast<size_t>(n), desc);
    if (desc >= 0)
      close(desc);
  }
}

void ImcEcho(int fd) {
  std::vector<char> buf(kMaxMessage);
  int desc;
  int n;
  while ((n = ImcRecv(fd, buf.data(), buf.size(), &desc)) > 0) {
    ImcSend(fd, buf.data(), static_cast<size_t>(n), desc);
    if (desc >= 0)
      close(desc);
  }
}

void RawAcceptor(int bound) {
  char buf[64];
  int conn;
  while (RawRecv(bound, buf, 1, &conn) == 1 && conn >= 0) {
    int unused;
    if (RawRecv(conn, buf, sizeof(buf), &unused) > 0)
      RawSend(conn, "k", 1, -1);
    close(conn);
  }
}

void ImcAcceptor(int bound) {
  char buf[64];
  int conn;
  while ((conn = imc_accept(bound)) >= 0) {
    int unused;
    if (ImcRecv(conn, buf, sizeof(buf), &unused) > 0)
      ImcSend(conn, "k", 1, -1);
    close(conn);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const perf::Options options = perf::ParseOptions(argc, argv);
  const std::string& csv = options.csv;
  const int reps = options.repetitions;
  const int scale = options.scale;

  int raw_echo = perf::ForkPeer(RawEcho);
  int imc_echo = perf::ForkPeer(ImcEcho);
  int raw_address = perf::ForkPeer(RawAcceptor);
  int imc_address = perf::ForkPeer(ImcAcceptor);
  if (raw_echo < 0 || imc_echo < 0 || raw_address < 0 || imc_address < 0) {
    perror("imc_perftests: start");
    return 1;
  }

  printf("imc_perftests: two processes, round trip per operation\n");
  perf::PrintHeader("raw", "imc");
  std::vector<char> out(kMaxMessage, 'x'), in(kMaxMessage);
  int passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (int with_desc = 0; with_desc <= 1; with_desc++) {
    for (size_t size : {size_t{16}, size_t{1024}, kMaxMessage}) {
      int desc = with_desc ? passed : -1;
      std::string name = "ping-pong " +
                         (size >= 1024 ? std::to_string(size / 1024) + " KiB"
                                       : std::to_string(size) + " B") +
                         (with_desc ? ", 1 descriptor" : "");
      int iterations = (size > 4096 ? 4000 : 20000) / scale;
      auto raw = [&] {
        int d;
        RawSend(raw_echo, out.data(), size, desc);
        RawRecv(raw_echo, in.data(), in.size(), &d);
        if (d >= 0)
          close(d);
      };
      auto imc = [&] {
        int d;
        ImcSend(imc_echo, out.data(), size, desc);
        ImcRecv(imc_echo, in.data(), in.size(), &d);
        if (d >= 0)
          close(d);
      };
      perf::Print(perf::Compare(name, raw, imc, iterations, reps), csv);
    }
  }

  auto raw_connect = [&] {
    int pair[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
    RawSend(raw_address, "c", 1, pair[1]);
    close(pair[1]);
    int d;
    RawSend(pair[0], out.data(), 16, -1);
    RawRecv(pair[0], in.data(), in.size(), &d);
    close(pair[0]);
  };
  auto imc_connect_op = [&] {
    int conn = imc_connect(imc_address);
    int d;
    ImcSend(conn, out.data(), 16, -1);
    ImcRecv(conn, in.data(), in.size(), &d);
    close(conn);
  };
  perf::Print(perf::Compare("connect+accept+first message", raw_connect,
                            imc_connect_op, 10000 / scale, reps),
              csv);

  close(passed);
  for (int fd : {raw_echo, imc_echo, raw_address, imc_address})
    close(fd);
  perf::WaitForPeers();
  return 0;
}
