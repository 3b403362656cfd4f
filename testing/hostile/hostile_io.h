// What the hostile helpers (hostile_peer, hostile_module) share: random
// numbers, little-endian words, and one IMC message sent as given.

#ifndef TESTING_HOSTILE_HOSTILE_IO_H_
#define TESTING_HOSTILE_HOSTILE_IO_H_

#include <stdint.h>

#include <string>
#include <vector>

namespace hostile {

uint32_t Random();
void Put32(std::string* s, uint32_t v);
// One IMC message of `bytes` and `fds` on `fd`; imc_sendmsg's result.
int Send(int fd, const std::string& bytes, const std::vector<int>& fds);

}  // namespace hostile

#endif  // TESTING_HOSTILE_HOSTILE_IO_H_
