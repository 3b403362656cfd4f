// The signature and service discovery parsers on arbitrary text.
// Invariants: no crash; a signature that parses prints back as the input;
// discovery text that parses has as many lines as methods, each of which
// parses on its own.

#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "srpc/srpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  SrpcSignature sig;
  if (srpc_signature_parse(text.c_str(), &sig) == SRPC_SIGNATURE_OK) {
    std::string back = std::string(sig.name) + ":" + sig.ins + ":" + sig.outs;
    FUZZ_CHECK(back == text.c_str());
  }
  std::vector<SrpcSignature> sigs(8);
  int n =
      srpc_discovery_parse(text.data(), text.size(), sigs.data(), sigs.size());
  if (n >= 0) {
    size_t lines = 0;
    for (char c : text)
      lines += c == '\n';
    FUZZ_CHECK(static_cast<size_t>(n) == lines);
    for (int i = 0; i < n && i < 8; i++) {
      std::string line =
          std::string(sigs[i].name) + ":" + sigs[i].ins + ":" + sigs[i].outs;
      SrpcSignature again;
      FUZZ_CHECK(srpc_signature_parse(line.c_str(), &again) ==
                 SRPC_SIGNATURE_OK);
    }
  }
  return 0;
}
