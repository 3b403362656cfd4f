// The policy, table-driven against a real directory tree: allowed and
// denied paths, "..", symbolic links inside and out, absolute and relative
// paths, trailing slashes, long paths, flags, and every kind of rule.

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_wire.h"

namespace {

// A tree:
//   root/pub/a.txt            "public"
//   root/pub/sub/b.txt        "deep"
//   root/pub/in -> a.txt      a link that stays inside
//   root/pub/up -> ../secret.txt   a link that leaves pub
//   root/pub/abs -> /etc/hostname  an absolute link
//   root/pub/dirlink -> sub
//   root/secret.txt           "secret"
//   root/rw/                  writable, creatable
//   root/one.txt              a single-file rule
//   root/one_link -> secret.txt   a file rule naming a link
class BrokerPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/broker_policy_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    root_ = tmpl;
    Mkdir("pub");
    Mkdir("pub/sub");
    Mkdir("rw");
    Write("pub/a.txt", "public");
    Write("pub/sub/b.txt", "deep");
    Write("secret.txt", "secret");
    Write("one.txt", "one");
    Link("a.txt", "pub/in");
    Link("../secret.txt", "pub/up");
    Link("/etc/hostname", "pub/abs");
    Link("sub", "pub/dirlink");
    Link("secret.txt", "one_link");
    policy_ = broker_policy_new();
    ASSERT_EQ(0, broker_policy_allow(policy_, P("pub").c_str(),
                                     BROKER_ALLOW_READ | BROKER_RECURSIVE));
    ASSERT_EQ(0,
              broker_policy_allow(policy_, P("rw").c_str(),
                                  BROKER_ALLOW_READ | BROKER_ALLOW_WRITE |
                                      BROKER_ALLOW_CREATE | BROKER_RECURSIVE));
    ASSERT_EQ(0, broker_policy_allow(policy_, P("one.txt").c_str(),
                                     BROKER_ALLOW_READ));
    ASSERT_EQ(0, broker_policy_allow(policy_, P("one_link").c_str(),
                                     BROKER_ALLOW_READ));
  }
  void TearDown() override {
    broker_policy_free(policy_);
    std::string cmd = "rm -rf '" + root_ + "'";
    ASSERT_EQ(0, system(cmd.c_str()));
  }
  std::string P(const std::string& rel) { return root_ + "/" + rel; }
  void Mkdir(const std::string& rel) {
    ASSERT_EQ(0, mkdir(P(rel).c_str(), 0755));
  }
  void Write(const std::string& rel, const std::string& text) {
    int fd = open(P(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(static_cast<ssize_t>(text.size()),
              write(fd, text.data(), text.size()));
    close(fd);
  }
  void Link(const std::string& target, const std::string& rel) {
    ASSERT_EQ(0, symlink(target.c_str(), P(rel).c_str()));
  }
  // Opens; returns 0 or -errno, and the first bytes read.
  int Open(const std::string& path,
           int flags,
           std::string* content,
           BrokerDecision* d = nullptr) {
    BrokerDecision local;
    int fd = broker_policy_open(policy_, path.c_str(), flags, 0644,
                                d != nullptr ? d : &local);
    if (fd < 0)
      return fd;
    EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[64] = {};
    ssize_t n = read(fd, buf, sizeof(buf));
    if (content != nullptr)
      content->assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
    close(fd);
    return 0;
  }

  std::string root_;
  BrokerPolicy* policy_ = nullptr;
};

struct Case {
  const char* path;  // relative to root unless it starts with '/' or '!'
  int flags;
  int expect;  // 0 or -errno
  const char* content;
};

TEST_F(BrokerPolicyTest, OpenTable) {
  const Case cases[] = {
      {"pub/a.txt", O_RDONLY, 0, "public"},
      {"pub/sub/b.txt", O_RDONLY, 0, "deep"},
      {"pub//sub/b.txt", O_RDONLY, 0, "deep"},  // empty component: same file
      {"pub/./a.txt", O_RDONLY, 0, "public"},   // "." is harmless
      {"pub/in", O_RDONLY, 0, "public"},        // link inside the tree
      {"pub/dirlink/b.txt", O_RDONLY, 0, "deep"},
      {"pub/up", O_RDONLY, -EACCES, nullptr},   // link leaving the tree
      {"pub/abs", O_RDONLY, -EACCES, nullptr},  // absolute link
      {"pub/../secret.txt", O_RDONLY, -EACCES, nullptr},
      {"pub/sub/../a.txt", O_RDONLY, -EACCES, nullptr},  // ".." refused
      {"pub/..", O_RDONLY, -EACCES, nullptr},
      {"secret.txt", O_RDONLY, -EACCES, nullptr},  // no rule
      {"pubx/a.txt", O_RDONLY, -EACCES, nullptr},  // prefix, not a component
      {"pub/missing", O_RDONLY, -ENOENT, nullptr},
      {"pub/a.txt/", O_RDONLY, -ENOTDIR, nullptr},  // trailing slash
      {"pub/a.txt", O_WRONLY, -EACCES, nullptr},    // read-only rule
      {"pub/a.txt", O_RDWR, -EACCES, nullptr},
      {"pub/a.txt", O_RDONLY | O_TRUNC, -EACCES, nullptr},
      {"pub/new.txt", O_WRONLY | O_CREAT, -EACCES, nullptr},
      {"pub/a.txt", O_RDONLY | O_PATH, -EINVAL, nullptr},
      {"pub/a.txt", O_RDWR | O_TMPFILE, -EINVAL, nullptr},
      {"pub/a.txt", O_ACCMODE, -EINVAL, nullptr},
      {"pub/a.txt", O_RDONLY | O_NOFOLLOW, 0, "public"},
      {"pub/in", O_RDONLY | O_NOFOLLOW, -ELOOP, nullptr},
      {"pub/sub", O_RDONLY | O_DIRECTORY, 0, ""},
      {"one.txt", O_RDONLY, 0, "one"},           // a file rule
      {"one_link", O_RDONLY, -EACCES, nullptr},  // a file rule follows no link
      {"rw/new.txt", O_WRONLY | O_CREAT, 0, ""},
      {"rw/new.txt", O_RDWR | O_TRUNC, 0, ""},
      {"rw/new.txt", O_WRONLY | O_CREAT | O_EXCL, -EEXIST, nullptr},
      {"!relative/pub/a.txt", O_RDONLY, -EACCES, nullptr},
      {"/", O_RDONLY, -EACCES, nullptr},
      {"!", O_RDONLY, -EACCES, nullptr},  // the empty path
  };
  for (const Case& c : cases) {
    std::string path = c.path[0] == '!'   ? std::string(c.path + 1)
                       : c.path[0] == '/' ? std::string(c.path)
                                          : P(c.path);
    SCOPED_TRACE(path);
    std::string content;
    BrokerDecision d;
    EXPECT_EQ(c.expect, Open(path, c.flags, &content, &d)) << d.reason;
    EXPECT_STREQ(path.c_str(), d.path);
    EXPECT_EQ(BROKER_DECISION_OPEN, d.op);
    if (c.expect == 0 && c.content != nullptr) {
      EXPECT_EQ(c.content, content);
    }
  }
}

TEST_F(BrokerPolicyTest, CreatedFilesGetAMaskedMode) {
  BrokerDecision d;
  int fd = broker_policy_open(policy_, P("rw/x").c_str(), O_WRONLY | O_CREAT,
                              04777, &d);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(0, fstat(fd, &st));
  EXPECT_EQ(0, st.st_mode & 07000);  // no set-id or sticky bits
  close(fd);
}

TEST_F(BrokerPolicyTest, LongPathsAreRefusedCleanly) {
  std::string longest = P("pub/") + std::string(BROKER_MAX_PATH, 'x');
  EXPECT_EQ(-ENAMETOOLONG, Open(longest, O_RDONLY, nullptr));
  std::string component = P("pub/") + std::string(300, 'y');
  EXPECT_EQ(-ENAMETOOLONG, Open(component, O_RDONLY, nullptr));
}

TEST_F(BrokerPolicyTest, StatAndAccess) {
  struct stat st;
  BrokerDecision d;
  EXPECT_EQ(0, broker_policy_stat(policy_, P("pub/a.txt").c_str(), 0, &st, &d));
  EXPECT_EQ(6, st.st_size);
  EXPECT_EQ(0, broker_policy_stat(policy_, P("pub/in").c_str(),
                                  AT_SYMLINK_NOFOLLOW, &st, &d));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(-EACCES,
            broker_policy_stat(policy_, P("secret.txt").c_str(), 0, &st, &d));
  EXPECT_EQ(-EACCES,
            broker_policy_stat(policy_, P("pub/up").c_str(), 0, &st, &d));
  EXPECT_EQ(-EINVAL, broker_policy_stat(policy_, P("pub/a.txt").c_str(),
                                        AT_EMPTY_PATH, &st, &d));
  EXPECT_EQ(0, broker_policy_access(policy_, P("pub/a.txt").c_str(), R_OK, &d));
  EXPECT_EQ(0, broker_policy_access(policy_, P("pub/a.txt").c_str(), F_OK, &d));
  EXPECT_EQ(-EACCES,
            broker_policy_access(policy_, P("pub/a.txt").c_str(), W_OK, &d));
  EXPECT_EQ(-EACCES,
            broker_policy_access(policy_, P("pub/a.txt").c_str(), X_OK, &d));
  EXPECT_EQ(-ENOENT,
            broker_policy_access(policy_, P("pub/none").c_str(), F_OK, &d));
  EXPECT_EQ(0, broker_policy_access(policy_, P("rw").c_str(), W_OK, &d));
}

TEST_F(BrokerPolicyTest, RulesMustBePlainAbsolutePaths) {
  BrokerPolicy* p = broker_policy_new();
  for (const char* bad :
       {"relative", "", "/tmp/", "/tmp/../etc", "/tmp/./x", "/tmp//x"}) {
    EXPECT_EQ(EINVAL,
              broker_policy_allow(p, bad, BROKER_ALLOW_READ | BROKER_RECURSIVE))
        << bad;
  }
  EXPECT_EQ(EINVAL, broker_policy_allow(
                        p, "/tmp", BROKER_ALLOW_CREATE | BROKER_RECURSIVE));
  EXPECT_EQ(EINVAL, broker_policy_allow(p, "/tmp", 1u << 20));
  EXPECT_EQ(ENOENT, broker_policy_allow(p, "/no/such/dir",
                                        BROKER_ALLOW_READ | BROKER_RECURSIVE));
  EXPECT_EQ(ENOTDIR, broker_policy_allow(p, "/etc/hostname",
                                         BROKER_ALLOW_READ | BROKER_RECURSIVE));
  broker_policy_free(p);
}

TEST_F(BrokerPolicyTest, TheLongestRuleDecides) {
  // pub is read-only; a rule for pub/sub grants writing beneath it only.
  ASSERT_EQ(0, broker_policy_allow(
                   policy_, P("pub/sub").c_str(),
                   BROKER_ALLOW_READ | BROKER_ALLOW_WRITE | BROKER_RECURSIVE));
  EXPECT_EQ(0, Open(P("pub/sub/b.txt"), O_RDWR, nullptr));
  EXPECT_EQ(-EACCES, Open(P("pub/a.txt"), O_RDWR, nullptr));
  // Spelled with "." or "//", the path meets the same rule.
  EXPECT_EQ(0, Open(P("pub/./sub/b.txt"), O_RDWR, nullptr));
  EXPECT_EQ(0, Open(P("pub//sub/b.txt"), O_RDWR, nullptr));
  // One rule per path.
  EXPECT_EQ(EEXIST, broker_policy_allow(policy_, P("pub/sub").c_str(),
                                        BROKER_ALLOW_READ | BROKER_RECURSIVE));
}

// A FIFO (or a device) would block the thread serving every module: it is
// refused without waiting.
TEST_F(BrokerPolicyTest, OnlyRegularFilesAndDirectoriesAreOpened) {
  ASSERT_EQ(0, mkfifo(P("pub/fifo").c_str(), 0644));
  EXPECT_EQ(-EACCES, Open(P("pub/fifo"), O_RDONLY, nullptr));
  ASSERT_EQ(0, broker_policy_allow(policy_, "/dev/null", BROKER_ALLOW_READ));
  EXPECT_EQ(-EACCES, Open("/dev/null", O_RDONLY, nullptr));
  // O_NONBLOCK is the caller's choice, not a leftover.
  BrokerDecision d;
  int fd = broker_policy_open(policy_, P("pub/a.txt").c_str(), O_RDONLY, 0, &d);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(0, fcntl(fd, F_GETFL) & O_NONBLOCK);
  close(fd);
}

TEST_F(BrokerPolicyTest, MovingTheDirectoryAfterwardsDoesNotMoveTheRule) {
  ASSERT_EQ(0, rename(P("pub").c_str(), P("moved").c_str()));
  ASSERT_EQ(0, mkdir(P("pub").c_str(), 0755));
  // The rule still means the directory it opened: a request for pub/...
  // reaches the moved directory, never the new pub; and the new name is
  // not covered by any rule.
  Write("pub/a.txt", "impostor");
  std::string content;
  EXPECT_EQ(0, Open(P("pub/a.txt"), O_RDONLY, &content));
  EXPECT_EQ("public", content);
  EXPECT_EQ(-EACCES, Open(P("moved/a.txt"), O_RDONLY, nullptr));
}

TEST_F(BrokerPolicyTest, RequestsDecodeOrGetAnError) {
  uint8_t req[BROKER_REQUEST_MAX_BYTES];
  std::string path = P("pub/a.txt");
  size_t n = broker_encode_request(BROKER_OP_OPEN, O_RDONLY, 0, path.data(),
                                   path.size(), req);
  ASSERT_GT(n, 0u);
  uint8_t reply[BROKER_REPLY_MAX_BYTES];
  int fd = -1;
  BrokerDecision d;
  size_t r = broker_handle_request(policy_, req, n, reply, &fd, &d);
  int32_t result = -1;
  ASSERT_EQ(0, broker_decode_reply(reply, r, &result, nullptr));
  EXPECT_EQ(0, result);
  EXPECT_GE(fd, 0);
  close(fd);
  // Truncated, wrong magic, bad op, NUL inside.
  r = broker_handle_request(policy_, req, n - 1, reply, &fd, &d);
  ASSERT_EQ(0, broker_decode_reply(reply, r, &result, nullptr));
  EXPECT_EQ(-EPROTO, result);
  EXPECT_EQ(-1, fd);
  EXPECT_EQ(0, d.op);
  req[0] ^= 1;
  r = broker_handle_request(policy_, req, n, reply, &fd, &d);
  broker_decode_reply(reply, r, &result, nullptr);
  EXPECT_EQ(-EPROTO, result);
  req[0] ^= 1;
  req[4] = 9;
  r = broker_handle_request(policy_, req, n, reply, &fd, &d);
  broker_decode_reply(reply, r, &result, nullptr);
  EXPECT_EQ(-EINVAL, result);
  req[4] = BROKER_OP_OPEN;
  req[BROKER_REQUEST_HEADER_BYTES + 3] = '\0';
  r = broker_handle_request(policy_, req, n, reply, &fd, &d);
  broker_decode_reply(reply, r, &result, nullptr);
  EXPECT_EQ(-EINVAL, result);
  EXPECT_EQ(0u, broker_encode_request(BROKER_OP_OPEN, 0, 0, "a\0b", 3, req));
}

}  // namespace
