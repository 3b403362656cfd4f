// Fuzzes imc_accept with whatever connect requests a hostile connector can
// send: any bytes, any number and kind of descriptors, mixed with real
// connects. Accept must hand out only connected SOCK_SEQPACKET sockets (and
// every real connection), then fail with EPIPE once the address is closed;
// no descriptor may be left behind.
//
// Input: up to 8 requests, each
//   [flags] [n] [kind]*n [len] [byte]*len
// flags bit 0: follow the request with a real imc_connect.

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "testing/harness/descriptors.h"

namespace {

enum Kind {
  kSeqpacket,
  kPipe,
  kFile,
  kStream,
  kDatagram,
  kUnconnected,
  kSharedMemory,
  kPlaceholder,
  kTheAddress,
  kKinds,
};

// Makes a descriptor of `kind`; extra descriptors to close go in `owned`.
int MakeDescriptor(int kind, int address, std::vector<int>* owned) {
  int pair[2];
  int fd = -1;
  switch (kind) {
    case kSeqpacket:
    case kStream:
    case kDatagram: {
      int type = kind == kSeqpacket ? SOCK_SEQPACKET
                 : kind == kStream  ? SOCK_STREAM
                                    : SOCK_DGRAM;
      if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, pair) != 0)
        return -1;
      owned->push_back(pair[1]);
      fd = pair[0];
      break;
    }
    case kPipe:
      if (pipe2(pair, O_CLOEXEC) != 0)
        return -1;
      owned->push_back(pair[0]);
      fd = pair[1];
      break;
    case kFile:
      fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      break;
    case kUnconnected:
      fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      break;
    case kSharedMemory:
      fd = imc_mem_obj_create(IMC_MEM_OBJ_GRANULARITY);
      break;
    case kTheAddress:
      return address;
    default:
      return IMC_INVALID_DESCRIPTOR;
  }
  if (fd >= 0)
    owned->push_back(fd);
  return fd;
}

bool IsConnectedSeqpacket(int fd) {
  int type = 0;
  socklen_t len = sizeof(type);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
         type == SOCK_SEQPACKET;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t fds_before = harness::CountOpenDescriptors();
  fuzz::Reader in(data, size);
  int bound[2];
  FUZZ_CHECK(imc_makeboundsock(bound) == 0);
  std::vector<int> owned, clients;
  for (int request = 0; request < 8 && !in.Done(); request++) {
    uint8_t flags = in.Byte();
    size_t n = in.Byte() % 12;
    std::vector<int> fds;
    for (size_t i = 0; i < n; i++)
      fds.push_back(MakeDescriptor(in.Byte() % kKinds, bound[1], &owned));
    size_t len = in.Byte() % 8;
    uint8_t bytes[8] = {};
    size_t got;
    const uint8_t* p = in.Take(len, &got);
    for (size_t i = 0; i < got; i++)
      bytes[i] = p[i];
    struct iovec iov = {bytes, got};
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fds.empty()) {
      sendmsg(bound[1], &mh, MSG_NOSIGNAL | MSG_DONTWAIT);  // may be empty
    } else {
      NaClImcMsgIoVec imc_iov = {bytes, got};
      NaClImcMsgHdr msg = {&imc_iov, 1, fds.data(), fds.size(), 0};
      imc_sendmsg(bound[1], &msg, IMC_NONBLOCK);
    }
    if (flags & 1) {
      int client = imc_connect_ex(bound[1], IMC_NONBLOCK, -1);
      if (client >= 0)
        clients.push_back(client);
    }
  }
  for (int fd : owned)
    close(fd);
  close(bound[1]);

  size_t accepted = 0;
  for (;;) {
    int conn = imc_accept(bound[0]);
    if (conn < 0) {
      FUZZ_CHECK(errno == EPIPE);
      break;
    }
    FUZZ_CHECK(IsConnectedSeqpacket(conn));
    close(conn);
    accepted++;
  }
  // Every real connection came out (hostile ones may add to the count).
  FUZZ_CHECK(accepted >= clients.size());
  for (int fd : clients)
    close(fd);
  close(bound[0]);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
