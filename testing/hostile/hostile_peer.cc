// hostile_peer: the other end of a socket that misbehaves on purpose, for
// the hardening tests of every server in the tree.
//
//   hostile_peer ATTACK [COUNT]
//
// Descriptor 3 is the connected IMC socket to attack (for connect-flood: a
// SocketAddress). Attacks:
//   garbage        COUNT datagrams of random bytes (1 B .. 64 KiB), each
//                  with 0..8 descriptors
//   lying-lengths  SRPC length records that lie both ways: totals of 4 GiB,
//                  totals shorter than what follows, fragments that
//                  overrun, descriptor counts that do not match
//   max-fds        COUNT datagrams carrying 253 descriptors each
//   wrong-kinds    descriptors of every wrong kind (pipes, a directory,
//                  shared memory, a UDP socket, a listening socket)
//                  inside otherwise plausible SRPC requests
//   half-close     the first datagram of a 1 MiB SRPC message, then exit
//   kill-mid       the first datagram of a 1 MiB SRPC message, then SIGKILL
//   never-read     COUNT valid SRPC requests, reading no reply
//   connect-flood  COUNT connects to the address that never send anything
// Exits 0 when the attack was delivered (sends that fail because the
// server closed count as delivered).

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "imc/imc.h"
#include "testing/hostile/hostile_io.h"

namespace {

const int kFd = 3;

using hostile::Put32;
using hostile::Random;

int Send(const std::string& bytes, const std::vector<int>& fds) {
  return hostile::Send(kFd, bytes, fds);
}

// One SRPC request for method 1 (add:ii:i in the tests' services), framed
// as one datagram: two length records, then the message.
std::string AddRequest(uint32_t id) {
  std::string body;
  for (uint32_t w : {0xc0da0002u, id, 1u, 1u, 256u, 2u, 1u})
    Put32(&body, w);
  for (int i = 0; i < 3; i++) {  // one template 'i', two values 'i'
    Put32(&body, 'i');
    Put32(&body, 0);
    Put32(&body, static_cast<uint32_t>(i));
    Put32(&body, 0);
  }
  std::string d;
  for (int i = 0; i < 2; i++) {
    Put32(&d, static_cast<uint32_t>(body.size()));
    Put32(&d, 0);
  }
  return d + body;
}

std::vector<int> DevNulls(size_t n) {
  std::vector<int> fds;
  for (size_t i = 0; i < n; i++)
    fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds)
    close(fd);
}

void Garbage(int count) {
  std::vector<char> buf(65536);
  for (int i = 0; i < count; i++) {
    size_t len = 1 + Random() % buf.size();
    if (getrandom(buf.data(), len, 0) < 0)
      return;
    std::vector<int> fds = DevNulls(Random() % 9);
    int r = Send(std::string(buf.data(), len), fds);
    CloseAll(fds);
    if (r < 0 && errno != EMSGSIZE && errno != ENOBUFS)
      return;  // the server closed: delivered
  }
}

void LyingLengths() {
  std::string body = AddRequest(7).substr(16);
  struct Lie {
    uint32_t total, total_fds, chunk, chunk_fds;
  };
  const Lie lies[] = {
      {0xffffffffu, 0, static_cast<uint32_t>(body.size()), 0},
      {4, 0, static_cast<uint32_t>(body.size()), 0},
      {static_cast<uint32_t>(body.size()), 0, 0xffffff00u, 0},
      {static_cast<uint32_t>(body.size()), 200,
       static_cast<uint32_t>(body.size()), 200},
      {static_cast<uint32_t>(body.size()), 0,
       static_cast<uint32_t>(body.size()), 3},
      {1u << 30, 0, static_cast<uint32_t>(body.size()), 0},
  };
  for (const Lie& l : lies) {
    std::string d;
    for (uint32_t w : {l.total, l.total_fds, l.chunk, l.chunk_fds})
      Put32(&d, w);
    std::vector<int> fds = DevNulls(l.chunk_fds > 8 ? 8 : l.chunk_fds);
    Send(d + body, fds);
    CloseAll(fds);
  }
  // And records that stop short of a header.
  Send(std::string("\x10\x00\x00\x00", 4), {});
}

void MaxFds(int count) {
  for (int i = 0; i < count; i++) {
    std::vector<int> fds = DevNulls(IMC_MAX_DESCRIPTORS);
    int r = Send("many descriptors", fds);
    CloseAll(fds);
    if (r < 0)
      return;
  }
}

void WrongKinds() {
  std::vector<int> fds;
  int p[2];
  if (pipe2(p, O_CLOEXEC) == 0) {
    fds.push_back(p[0]);
    fds.push_back(p[1]);
  }
  fds.push_back(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  fds.push_back(imc_mem_obj_create(65536));
  fds.push_back(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener >= 0 && listen(listener, 1) == 0)
    fds.push_back(listener);
  for (int fd : fds) {
    if (fd >= 0) {
      Send(AddRequest(9), {fd});  // a handle where none is expected
      Send("c", {fd});            // a connect request with the wrong kind
      Send("\x01", {fd});
    }
  }
  CloseAll(fds);
}

std::string FirstOfBigMessage() {
  std::string d;
  Put32(&d, 1u << 20);  // a 1 MiB message ...
  Put32(&d, 0);
  Put32(&d, 1000);  // ... of which this datagram carries 1000 bytes
  Put32(&d, 0);
  d += AddRequest(11).substr(16);
  d.resize(16 + 1000, 'x');
  return d;
}

void NeverRead(int count) {
  for (int i = 0; i < count; i++) {
    if (Send(AddRequest(static_cast<uint32_t>(100 + i)), {}) < 0)
      return;
  }
  sleep(1);  // hold the connection with every reply unread
}

void ConnectFlood(int count) {
  std::vector<int> conns;
  for (int i = 0; i < count; i++) {
    int c = imc_connect_ex(kFd, IMC_NONBLOCK, 0);
    if (c < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      break;
    if (c >= 0)
      conns.push_back(c);
  }
  sleep(1);
  CloseAll(conns);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // a peer that closes is what we expect
  if (argc < 2)
    return 2;
  std::string attack = argv[1];
  int count = argc > 2 ? atoi(argv[2]) : 100;
  if (attack == "garbage") {
    Garbage(count);
  } else if (attack == "lying-lengths") {
    LyingLengths();
  } else if (attack == "max-fds") {
    MaxFds(count);
  } else if (attack == "wrong-kinds") {
    WrongKinds();
  } else if (attack == "half-close") {
    Send(FirstOfBigMessage(), {});
  } else if (attack == "kill-mid") {
    Send(FirstOfBigMessage(), {});
    raise(SIGKILL);
  } else if (attack == "never-read") {
    NeverRead(count);
  } else if (attack == "connect-flood") {
    ConnectFlood(count);
  } else {
    fprintf(stderr, "hostile_peer: unknown attack %s\n", attack.c_str());
    return 2;
  }
  return 0;
}
