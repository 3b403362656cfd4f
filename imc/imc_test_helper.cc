// The other process in imc's multi-process tests.
//
//   imc_test_helper serve     commands arrive on descriptor 3 (see below);
//                             descriptor 4, if open, is a second channel
//   imc_test_helper accept    descriptor 3 is a BoundSocket: accept one
//                             connection and echo its messages until EOF
//   imc_test_helper flood     send numbered messages on descriptor 3 until
//                             killed or the peer closes
//
// serve commands (message bytes, descriptors attached):
//   "connect" [address]   connect to it (confirmed), say "hello from <pid>"
//   "forward" [fds...]    send "connect" with the same fds on descriptor 4
//   "read-file" [file]    reply with the file's first 64 bytes
//   "shm" [memory]        check it starts with "parent", write "child" at the
//                         middle, reply "done"
//   "use-socket" [sock]   send "via passed socket" on it
// Exit status 0 on end of stream, non-zero on any failure.

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "imc/imc.h"
#include "imc/imc_test_util.h"

namespace {

using imc_test::Receive;
using imc_test::Received;
using imc_test::Send;

int Fail(const char* what) {
  fprintf(stderr, "imc_test_helper: %s\n", what);
  return 2;
}

int HandleShm(int fd) {
  size_t size = 0;
  if (imc_mem_obj_size(fd, &size) != 0)
    return Fail("shm: not a sealed memory object");
  char* p = static_cast<char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED)
    return Fail("shm: mmap");
  int ok = memcmp(p, "parent", 6) == 0;
  memcpy(p + size / 2, "child", 5);
  munmap(p, size);
  return ok ? 0 : Fail("shm: content");
}

int Serve() {
  for (;;) {
    Received r = Receive(3);
    if (r.result < 0)
      return Fail("receive");
    if (r.result == 0 && r.fds.empty())
      return 0;
    int status = 0;
    std::string reply;
    if (r.bytes == "connect" && r.fds.size() == 1) {
      int conn = imc_connect_ex(r.fds[0], IMC_CONNECT_CONFIRM, 10000);
      if (conn < 0)
        return Fail("connect");
      Send(conn, "hello from " + std::to_string(getpid()));
      close(conn);
    } else if (r.bytes == "forward") {
      if (Send(4, "connect", r.fds) < 0)
        return Fail("forward");
    } else if (r.bytes == "read-file" && r.fds.size() == 1) {
      char buf[64];
      ssize_t n = pread(r.fds[0], buf, sizeof(buf), 0);
      reply.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
    } else if (r.bytes == "shm" && r.fds.size() == 1) {
      status = HandleShm(r.fds[0]);
      reply = "done";
    } else if (r.bytes == "use-socket" && r.fds.size() == 1) {
      if (Send(r.fds[0], "via passed socket") < 0)
        status = Fail("use-socket");
    } else {
      status = Fail("unknown command");
    }
    r.CloseFds();
    if (status != 0)
      return status;
    if (!reply.empty() && Send(3, reply) < 0)
      return Fail("reply");
  }
}

int AcceptAndEcho() {
  int conn = imc_accept(3);
  if (conn < 0)
    return Fail("accept");
  for (;;) {
    Received r = Receive(conn);
    if (r.result < 0)
      return Fail("receive");
    if (r.result == 0 && r.fds.empty())
      return 0;
    if (Send(conn, r.bytes, r.fds) < 0)
      return Fail("echo");
    r.CloseFds();
  }
}

int Flood() {
  for (unsigned long i = 0;; i++) {
    if (Send(3, "message " + std::to_string(i)) < 0)
      return 0;  // the peer closed
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve")
    return Serve();
  if (mode == "accept")
    return AcceptAndEcho();
  if (mode == "flood")
    return Flood();
  return Fail("usage: imc_test_helper serve|accept|flood");
}
