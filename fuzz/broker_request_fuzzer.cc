// The broker's decoding and policy check of fuzzed requests, against a
// small real tree: a readable directory with a file, a link leading out and
// a writable directory, beside a secret the policy does not cover.
// Invariants: no crash, no sanitizer report; a reply always decodes; a
// descriptor comes back only for a successful open and then refers to a
// file inside the allowed tree (never the secret); nothing is created
// outside the writable directory; no descriptor leaks.

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "fuzz/fuzz_util.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_wire.h"
#include "testing/harness/descriptors.h"

namespace {

struct Tree {
  std::string root;
  BrokerPolicy* policy = nullptr;
  struct stat secret;
};

Tree* g_tree;

// The tree goes when the process does.
void RemoveTree() {
  std::string cmd = "rm -rf '" + g_tree->root + "'";
  if (system(cmd.c_str()) != 0)
    fprintf(stderr, "broker_request_fuzzer: could not remove %s\n",
            g_tree->root.c_str());
}

Tree* MakeTree() {
  Tree* t = new Tree;
  char tmpl[] = "/tmp/broker_fuzz_XXXXXX";
  FUZZ_CHECK(mkdtemp(tmpl) != nullptr);
  t->root = tmpl;
  FUZZ_CHECK(mkdir((t->root + "/pub").c_str(), 0755) == 0);
  FUZZ_CHECK(mkdir((t->root + "/rw").c_str(), 0755) == 0);
  int fd = open((t->root + "/pub/a").c_str(), O_WRONLY | O_CREAT, 0644);
  FUZZ_CHECK(fd >= 0 && write(fd, "a", 1) == 1);
  close(fd);
  fd = open((t->root + "/secret").c_str(), O_WRONLY | O_CREAT, 0600);
  FUZZ_CHECK(fd >= 0 && write(fd, "s", 1) == 1);
  FUZZ_CHECK(fstat(fd, &t->secret) == 0);
  close(fd);
  FUZZ_CHECK(symlink("../secret", (t->root + "/pub/out").c_str()) == 0);
  FUZZ_CHECK(symlink("/etc", (t->root + "/pub/etc").c_str()) == 0);
  t->policy = broker_policy_new();
  FUZZ_CHECK(broker_policy_allow(t->policy, (t->root + "/pub").c_str(),
                                 BROKER_ALLOW_READ | BROKER_RECURSIVE) == 0);
  FUZZ_CHECK(broker_policy_allow(t->policy, (t->root + "/rw").c_str(),
                                 BROKER_ALLOW_READ | BROKER_ALLOW_WRITE |
                                     BROKER_ALLOW_CREATE | BROKER_RECURSIVE) ==
             0);
  g_tree = t;
  atexit(RemoveTree);
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Tree* tree = MakeTree();
  size_t fds_before = harness::CountOpenDescriptors();
  // Inputs starting with '@' have "@" replaced by the tree's root, so the
  // fuzzer reaches real paths quickly; the rest goes in raw.
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= BROKER_REQUEST_HEADER_BYTES + 1 &&
      bytes[BROKER_REQUEST_HEADER_BYTES] == '@') {
    std::string path =
        tree->root + bytes.substr(BROKER_REQUEST_HEADER_BYTES + 1);
    bytes.resize(BROKER_REQUEST_HEADER_BYTES);
    bytes += path;
    uint32_t len = static_cast<uint32_t>(path.size());
    memcpy(&bytes[16], &len, 4);
  }
  uint8_t reply[BROKER_REPLY_MAX_BYTES];
  int fd = -1;
  BrokerDecision d;
  size_t n = broker_handle_request(
      tree->policy, reinterpret_cast<const uint8_t*>(bytes.data()),
      bytes.size(), reply, &fd, &d);
  int32_t result = 0;
  struct stat st;
  // A status record comes with a successful stat only.
  FUZZ_CHECK(
      broker_decode_reply(reply, n, &result,
                          d.op == BROKER_DECISION_STAT ? &st : nullptr) == 0);
  FUZZ_CHECK(n == BROKER_REPLY_HEADER_BYTES ||
             (d.op == BROKER_DECISION_STAT && result == 0));
  FUZZ_CHECK(result == d.result || (result == 0 && d.result >= 0));
  if (fd >= 0) {
    FUZZ_CHECK(result == 0 && d.op == BROKER_DECISION_OPEN);
    struct stat got;
    FUZZ_CHECK(fstat(fd, &got) == 0);
    FUZZ_CHECK(!(got.st_dev == tree->secret.st_dev &&
                 got.st_ino == tree->secret.st_ino));
    FUZZ_CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    FUZZ_CHECK((fcntl(fd, F_GETFL) & O_PATH) == 0);
    close(fd);
  } else {
    FUZZ_CHECK(d.op != BROKER_DECISION_OPEN || d.result < 0);
  }
  // Nothing may appear beside the tree's own entries.
  struct stat extra;
  FUZZ_CHECK(lstat((tree->root + "/x").c_str(), &extra) != 0);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
