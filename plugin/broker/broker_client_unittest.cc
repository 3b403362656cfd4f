// The client against a server in this process (the host's main loop on
// this thread, the client on others), and against hosts that misbehave:
// killed mid-request, answering nonsense, answering with descriptors.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_client.h"
#include "plugin/broker/broker_wire.h"
#include "testing/harness/child_process.h"
#include "testing/harness/descriptors.h"

namespace {

class BrokerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/broker_client_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    file_ = dir_ + "/f.txt";
    int fd = open(file_.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_EQ(5, write(fd, "hello", 5));
    close(fd);
    host_ = plugin_host_new(nullptr);
    policy_ = broker_policy_new();
    ASSERT_EQ(0, broker_policy_allow(policy_, dir_.c_str(),
                                     BROKER_ALLOW_READ | BROKER_RECURSIVE));
    broker_ = broker_serve(host_, policy_, nullptr, nullptr, &server_);
    ASSERT_GE(broker_, 0);
  }
  void TearDown() override {
    if (broker_ >= 0)
      close(broker_);
    broker_server_free(server_);
    plugin_host_run_until_idle(host_);
    plugin_host_free(host_);
    broker_policy_free(policy_);
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(0, system(cmd.c_str()));
  }
  // Runs `client` on another thread while this one serves.
  template <typename F>
  void WithClient(F client) {
    std::atomic<bool> done{false};
    std::thread t([&] {
      client();
      done = true;
      plugin_call_on_main_thread(
          host_, [](void* h) { plugin_host_quit(static_cast<PluginHost*>(h)); },
          host_);
    });
    plugin_host_run(host_);
    t.join();
    EXPECT_TRUE(done.load());
  }

  std::string dir_, file_;
  PluginHost* host_ = nullptr;
  BrokerPolicy* policy_ = nullptr;
  BrokerServer* server_ = nullptr;
  int broker_ = -1;
};

TEST_F(BrokerClientTest, OpenStatAccessThroughTheServer) {
  WithClient([&] {
    int fd = broker_open_at(broker_, file_.c_str(), O_RDONLY, 0);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(imc_test::IsCloseOnExec(fd));
    char buf[8] = {};
    EXPECT_EQ(5, read(fd, buf, sizeof(buf)));
    EXPECT_STREQ("hello", buf);
    close(fd);
    struct stat st;
    EXPECT_EQ(0, broker_stat_at(broker_, file_.c_str(), &st));
    EXPECT_EQ(5, st.st_size);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(0, broker_access_at(broker_, file_.c_str(), R_OK));
    errno = 0;
    EXPECT_EQ(-1, broker_access_at(broker_, file_.c_str(), W_OK));
    EXPECT_EQ(EACCES, errno);
    EXPECT_EQ(-1, broker_open_at(broker_, "/etc/hostname", O_RDONLY, 0));
    EXPECT_EQ(EACCES, errno);
    EXPECT_EQ(-1,
              broker_open_at(broker_, (dir_ + "/none").c_str(), O_RDONLY, 0));
    EXPECT_EQ(ENOENT, errno);
  });
  EXPECT_EQ(6u, broker_server_requests(server_));
  EXPECT_EQ(0u, broker_server_malformed(server_));
}

TEST_F(BrokerClientTest, RelativePathsAreMadeAbsolute) {
  char old[4096];
  ASSERT_NE(nullptr, getcwd(old, sizeof(old)));
  ASSERT_EQ(0, chdir(dir_.c_str()));
  WithClient([&] {
    int fd = broker_open_at(broker_, "f.txt", O_RDONLY, 0);
    EXPECT_GE(fd, 0);
    if (fd >= 0)
      close(fd);
  });
  ASSERT_EQ(0, chdir(old));
}

TEST_F(BrokerClientTest, ManyThreadsAtOnceWithNoLock) {
  WithClient([&] {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 8; t++) {
      threads.emplace_back([&] {
        for (int i = 0; i < 200; i++) {
          int fd = broker_open_at(broker_, file_.c_str(), O_RDONLY, 0);
          char c = 0;
          if (fd < 0 || read(fd, &c, 1) != 1 || c != 'h')
            failures++;
          if (fd >= 0)
            close(fd);
        }
      });
    }
    for (auto& t : threads)
      t.join();
    EXPECT_EQ(0, failures.load());
  });
  EXPECT_EQ(1600u, broker_server_requests(server_));
}

TEST_F(BrokerClientTest, MalformedRequestsAreCountedAndTheirDescriptorsFreed) {
  size_t before = harness::CountOpenDescriptors();
  WithClient([&] {
    // No reply socket at all; a pipe as the reply socket; junk bytes with
    // a real reply socket (answered -EPROTO).
    EXPECT_EQ(4, imc_test::Send(broker_, "junk"));
    int p[2];
    ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
    EXPECT_EQ(4, imc_test::Send(broker_, "junk", {p[0]}));
    close(p[0]);
    close(p[1]);
    int pair[2];
    ASSERT_EQ(0, imc_socketpair(pair));
    EXPECT_EQ(4, imc_test::Send(broker_, "junk", {pair[1]}));
    close(pair[1]);
    imc_test::Received r = imc_test::Receive(pair[0]);
    ASSERT_EQ(static_cast<int>(BROKER_REPLY_HEADER_BYTES), r.result);
    int32_t result = 0;
    ASSERT_EQ(
        0, broker_decode_reply(reinterpret_cast<const uint8_t*>(r.bytes.data()),
                               r.bytes.size(), &result, nullptr));
    EXPECT_EQ(-EPROTO, result);
    close(pair[0]);
  });
  EXPECT_EQ(3u, broker_server_malformed(server_));
  EXPECT_EQ(before, harness::CountOpenDescriptors());
}

TEST_F(BrokerClientTest, ClosedBrokerFailsWithEpipeNotSigpipe) {
  broker_server_free(server_);
  server_ = nullptr;
  plugin_host_run_until_idle(host_);
  errno = 0;
  EXPECT_EQ(-1, broker_open_at(broker_, file_.c_str(), O_RDONLY, 0));
  EXPECT_EQ(EPIPE, errno);
}

// A host that takes the request and dies without answering.
TEST(BrokerClientHostTest, HostKilledMidRequestGivesEpipe) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  pid_t pid = harness::ForkChild([&] {
    close(pair[0]);
    imc_test::Received r = imc_test::Receive(pair[1]);
    // Holding the reply socket, then killed.
    raise(SIGKILL);
    return 0;
  });
  close(pair[1]);
  errno = 0;
  EXPECT_EQ(-1, broker_open_at(pair[0], "/x", O_RDONLY, 0));
  EXPECT_EQ(EPIPE, errno);
  harness::WaitForChild(pid, 5000);
  close(pair[0]);
}

// A host that answers nonsense: wrong sizes, a descriptor on an error, no
// descriptor on a success. The client says EPROTO and leaks nothing.
TEST(BrokerClientHostTest, NonsenseRepliesGiveEprotoAndLeakNothing) {
  size_t before = harness::CountOpenDescriptors();
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  std::thread host([&] {
    for (int i = 0; i < 3; i++) {
      imc_test::Received r = imc_test::Receive(pair[1]);
      if (r.fds.size() != 1)
        return;
      uint8_t reply[BROKER_REPLY_MAX_BYTES];
      size_t n = broker_encode_reply(i == 1 ? -ENOENT : 0, nullptr, reply);
      std::string bytes(reinterpret_cast<char*>(reply), n);
      if (i == 0)
        bytes += "x";  // wrong size
      std::vector<int> fds;
      int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (i == 1)
        fds = {devnull};  // a descriptor with an error
      // i == 2: success with no descriptor
      imc_test::Send(r.fds[0], bytes, fds);
      close(devnull);
      r.CloseFds();
    }
  });
  for (int i = 0; i < 3; i++) {
    errno = 0;
    EXPECT_EQ(-1, broker_open_at(pair[0], "/x", O_RDONLY, 0)) << i;
    EXPECT_EQ(EPROTO, errno) << i;
  }
  host.join();
  close(pair[0]);
  close(pair[1]);
  EXPECT_EQ(before, harness::CountOpenDescriptors());
}

TEST(BrokerClientHostTest, ServedOnAThreadOfItsOwn) {
  size_t before = harness::CountOpenDescriptors();
  BrokerPolicy* policy = broker_policy_new();
  ASSERT_EQ(0, broker_policy_allow(policy, "/etc/hostname", BROKER_ALLOW_READ));
  std::atomic<int> logged{0};
  BrokerServer* server = nullptr;
  int fd = broker_serve_on_thread(
      policy,
      [](const BrokerDecision*, void* u) {
        (*static_cast<std::atomic<int>*>(u))++;
      },
      &logged, &server);
  ASSERT_GE(fd, 0);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; i++) {
        int f = broker_open_at(fd, "/etc/hostname", O_RDONLY, 0);
        if (f < 0)
          failures++;
        else
          close(f);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(0, failures.load());
  errno = 0;
  EXPECT_EQ(-1, broker_open_at(fd, "/etc/passwd", O_RDONLY, 0));
  EXPECT_EQ(EACCES, errno);
  EXPECT_EQ(401u, broker_server_requests(server));
  broker_server_free(server);  // joins the thread: every log call is done
  EXPECT_EQ(401, logged.load());
  EXPECT_EQ(-1, broker_open_at(fd, "/etc/hostname", O_RDONLY, 0));
  EXPECT_EQ(EPIPE, errno);
  close(fd);
  broker_policy_free(policy);
  EXPECT_EQ(before, harness::CountOpenDescriptors());
}

TEST(BrokerClientHostTest, PathsTooLongOrNullAreRefusedLocally) {
  std::string huge = "/" + std::string(5000, 'a');
  errno = 0;
  EXPECT_EQ(-1, broker_open_at(-1, huge.c_str(), O_RDONLY, 0));
  EXPECT_EQ(ENAMETOOLONG, errno);
  EXPECT_EQ(-1, broker_open_at(-1, nullptr, O_RDONLY, 0));
  EXPECT_EQ(EFAULT, errno);
}

}  // namespace
