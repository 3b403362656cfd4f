#include "testing/hostile/hostile_io.h"

#include <stdlib.h>
#include <sys/random.h>

#include "imc/imc.h"

namespace hostile {

uint32_t Random() {
  uint32_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != sizeof(v))
    v = static_cast<uint32_t>(rand());
  return v;
}

void Put32(std::string* s, uint32_t v) {
  s->append(reinterpret_cast<const char*>(&v), 4);
}

int Send(int fd, const std::string& bytes, const std::vector<int>& fds) {
  NaClImcMsgIoVec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  NaClImcMsgHdr msg = {&iov, bytes.empty() ? 0u : 1u,
                       const_cast<int*>(fds.data()), fds.size(), 0};
  return imc_sendmsg(fd, &msg, 0);
}

}  // namespace hostile
