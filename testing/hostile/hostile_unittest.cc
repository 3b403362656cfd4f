// Every server of the tree against a hostile peer (hostile_peer, a real
// process): an SRPC server behind a BoundSocket (its accept loop and its
// channels), the plugin host's make_socket sockets, and the open() broker.
// For each attack, all four must hold:
//   1. the hostile end gets an error or a clean close; nothing crashes and
//      no sanitizer reports (the run's own check);
//   2. no descriptor leaks in this process (the server's);
//   3. a well-behaved client of the same server keeps getting correct
//      answers during the attack (its slowest answer is printed);
//   4. memory stays bounded (resident growth under a documented cap).

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_client.h"
#include "plugin/host/plugin_host.h"
#include "srpc/srpc.h"
#include "testing/harness/child_process.h"
#include "testing/harness/descriptors.h"

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

size_t ResidentMiB() {
  FILE* f = fopen("/proc/self/statm", "re");
  long pages = 0, resident = 0;
  if (f != nullptr) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return static_cast<size_t>(resident) * 4 / 1024;
}

// What a peer can make a server hold: one message of the server's bound
// (1 MiB here), a receive window, and the kernel's buffers, per connection;
// with the allocator's slack, well under this.
#if defined(__SANITIZE_ADDRESS__) || defined(__has_feature)
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define HOSTILE_UNDER_ASAN 1
#endif
#endif
#if defined(HOSTILE_UNDER_ASAN)
// AddressSanitizer keeps freed memory in its quarantine (256 MiB by
// default) before reusing it: a flood of messages, each freed, fills it.
const size_t kMemoryCapMiB = 96 + 256;
#else
const size_t kMemoryCapMiB = 96;
#endif

// Runs hostile_peer with `attack`, giving it `fd` as descriptor 3.
harness::ChildStatus Attack(const std::string& attack, int fd, int count) {
  pid_t pid = harness::SpawnProcess(harness::HelperPath("hostile_peer"),
                                    {attack, std::to_string(count)}, {{fd, 3}});
  return harness::WaitForChild(pid, 60000);
}

// Waits until the descriptor count is back to `want` (servers end their
// side of a connection a little after the peer goes).
bool SettlesTo(size_t want) {
  for (int i = 0; i < 5000; i++) {
    if (harness::CountOpenDescriptors() == want)
      return true;
    usleep(1000);
  }
  return harness::CountOpenDescriptors() == want;
}

const char* const kChannelAttacks[] = {
    "garbage",    "lying-lengths", "max-fds",    "wrong-kinds",
    "half-close", "kill-mid",      "never-read",
};

// ---- An SRPC server behind a BoundSocket ----

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kMethods[] = {{"add:ii:i", Add}};

class SrpcServerUnderAttack : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    service_ = srpc_service_new(kMethods, 1, nullptr, nullptr, nullptr);
    ASSERT_EQ(0, imc_makeboundsock(sock_));
    server_ =
        std::thread([this] { srpc_serve_bound(sock_[0], service_, 1 << 20); });
    good_ = srpc_channel_new(imc_connect(sock_[1]), nullptr, 0);
    ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(good_));
  }
  void TearDown() override {
    srpc_channel_free(good_);
    close(sock_[1]);  // no address left: the server returns
    server_.join();
    close(sock_[0]);
    srpc_service_free(service_);
  }
  // Calls add on the good channel until `stop`; records the slowest.
  void GoodClient(std::atomic<bool>* stop, double* slowest, int* wrong) {
    for (int i = 0; !stop->load() || i < 10; i++) {
      auto t0 = Clock::now();
      int32_t sum = -1;
      if (srpc_invoke(good_, "add", i, 1, &sum) != SRPC_RESULT_OK ||
          sum != i + 1)
        (*wrong)++;
      *slowest = std::max(*slowest, MsSince(t0));
    }
  }

  int sock_[2];
  SrpcService* service_ = nullptr;
  SrpcChannel* good_ = nullptr;
  std::thread server_;
};

TEST_P(SrpcServerUnderAttack, ServesTheGoodClientAndKeepsNothing) {
  std::string attack = GetParam();
  size_t fds = harness::CountOpenDescriptors();
  size_t rss = ResidentMiB();
  std::atomic<bool> stop{false};
  double slowest = 0;
  int wrong = 0;
  std::thread good([&] { GoodClient(&stop, &slowest, &wrong); });
  harness::ChildStatus status;
  if (attack == "connect-flood" || attack == "bad-connects") {
    status = Attack(attack == "bad-connects" ? "wrong-kinds" : attack, sock_[1],
                    200);
  } else {
    int conn = imc_connect(sock_[1]);
    ASSERT_GE(conn, 0);
    status = Attack(attack, conn, 200);
    close(conn);
  }
  stop = true;
  good.join();
  printf("%s: the good client's slowest call took %.2f ms\n", attack.c_str(),
         slowest);
  EXPECT_FALSE(status.timed_out) << status.Describe();
  EXPECT_EQ(0, wrong);
  EXPECT_TRUE(SettlesTo(fds))
      << harness::CountOpenDescriptors() << " vs " << fds;
  EXPECT_LT(ResidentMiB(), rss + kMemoryCapMiB);
  // And the server still serves new clients.
  SrpcChannel* again = srpc_channel_new(imc_connect(sock_[1]), nullptr, 0);
  EXPECT_EQ(SRPC_RESULT_OK, srpc_channel_discover(again));
  srpc_channel_free(again);
}

INSTANTIATE_TEST_SUITE_P(
    Attacks,
    SrpcServerUnderAttack,
    ::testing::Values("garbage",
                      "lying-lengths",
                      "max-fds",
                      "wrong-kinds",
                      "half-close",
                      "kill-mid",
                      "never-read",
                      "connect-flood",
                      "bad-connects"),
    [](const ::testing::TestParamInfo<const char*>& param) {
      std::string name = param.param;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// ---- The plugin host: make_socket sockets and the broker ----

struct Echo {
  int messages = 0;
  int ends = 0;
};

// Answers every message on the socket it came from.
void EchoBack(PluginSocket* s, PluginMessage* m, int, void* user) {
  Echo* e = static_cast<Echo*>(user);
  if (m == nullptr) {
    e->ends++;
    return;
  }
  e->messages++;
  plugin_socket_send(s, "ok", 2, nullptr, 0);
}

class HostUnderAttack : public ::testing::TestWithParam<const char*> {};

TEST_P(HostUnderAttack, MakeSocketAndBrokerServeTheGoodModule) {
  std::string attack = GetParam();
  size_t fds = harness::CountOpenDescriptors();
  size_t rss = ResidentMiB();
  char dir[] = "/tmp/hostile_XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(dir));
  std::string file = std::string(dir) + "/f";
  close(open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  PluginHost* host = plugin_host_new(nullptr);
  BrokerPolicy* policy = broker_policy_new();
  ASSERT_EQ(0, broker_policy_allow(policy, dir,
                                   BROKER_ALLOW_READ | BROKER_RECURSIVE));
  // The hostile end gets a socket and a broker of its own; the good one
  // uses others served by the same main thread.
  Echo hostile_echo, good_echo;
  PluginSocket *hostile_socket = nullptr, *good_socket = nullptr;
  int hostile_fd =
      plugin_make_socket(host, EchoBack, &hostile_echo, &hostile_socket);
  int good_fd = plugin_make_socket(host, EchoBack, &good_echo, &good_socket);
  BrokerServer *hostile_broker = nullptr, *good_broker = nullptr;
  int hostile_broker_fd =
      broker_serve(host, policy, nullptr, nullptr, &hostile_broker);
  int good_broker_fd =
      broker_serve(host, policy, nullptr, nullptr, &good_broker);

  std::atomic<bool> done{false};
  double slowest = 0;
  int wrong = 0;
  std::thread good([&] {
    for (int i = 0; !done.load() || i < 10; i++) {
      auto t0 = Clock::now();
      char reply[8];
      NaClImcMsgIoVec iov = {const_cast<char*>("hello"), 5};
      NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
      NaClImcMsgIoVec riov = {reply, sizeof(reply)};
      NaClImcMsgHdr rmsg = {&riov, 1, nullptr, 0, 0};
      if (imc_sendmsg(good_fd, &msg, 0) != 5 ||
          imc_recvmsg(good_fd, &rmsg, 0) != 2)
        wrong++;
      int f = broker_open_at(good_broker_fd, file.c_str(), O_RDONLY, 0);
      if (f < 0)
        wrong++;
      else
        close(f);
      slowest = std::max(slowest, MsSince(t0));
    }
  });
  std::thread attacker([&] {
    harness::ChildStatus a = Attack(attack, hostile_fd, 200);
    harness::ChildStatus b = Attack(attack, hostile_broker_fd, 200);
    EXPECT_FALSE(a.timed_out) << a.Describe();
    EXPECT_FALSE(b.timed_out) << b.Describe();
    done = true;
  });
  // The main thread serves everything while both run.
  auto start = Clock::now();
  while (!done.load() && MsSince(start) < 120000) {
    plugin_host_run_until_idle(host);
    usleep(100);
  }
  while (plugin_host_run_until_idle(host) > 0) {
  }
  attacker.join();
  // Let the good client finish its last rounds with the loop running.
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    good.join();
    joined = true;
  });
  while (!joined.load())
    plugin_host_run_until_idle(host);
  joiner.join();
  printf("%s: the good module's slowest round took %.2f ms\n", attack.c_str(),
         slowest);
  EXPECT_EQ(0, wrong);
  EXPECT_GT(good_echo.messages, 0);
  close(hostile_fd);
  close(hostile_broker_fd);
  close(good_fd);
  close(good_broker_fd);
  plugin_socket_close(hostile_socket);
  plugin_socket_close(good_socket);
  broker_server_free(hostile_broker);
  broker_server_free(good_broker);
  plugin_host_free(host);
  broker_policy_free(policy);
  unlink(file.c_str());
  rmdir(dir);
  EXPECT_TRUE(SettlesTo(fds))
      << harness::CountOpenDescriptors() << " vs " << fds;
  EXPECT_LT(ResidentMiB(), rss + kMemoryCapMiB);
}

INSTANTIATE_TEST_SUITE_P(
    Attacks,
    HostUnderAttack,
    ::testing::ValuesIn(kChannelAttacks),
    [](const ::testing::TestParamInfo<const char*>& param) {
      std::string name = param.param;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// ---- A hostile module against the host that launched it ----

struct ModuleEvents {
  int messages = 0;
  bool ended = false;
  int end_error = 0;
  int logs = 0;
};

PluginModuleCallbacks Counting(ModuleEvents* e) {
  PluginModuleCallbacks cb = {};
  cb.on_message = [](PluginModule*, PluginMessage* msg, int error, void* user) {
    ModuleEvents* ev = static_cast<ModuleEvents*>(user);
    if (msg == nullptr) {
      ev->ended = true;
      ev->end_error = error;
    } else {
      ev->messages++;
    }
  };
  cb.on_log = [](PluginModule*, int, const char*, void* user) {
    static_cast<ModuleEvents*>(user)->logs++;
  };
  cb.user = e;
  return cb;
}

struct ModuleAttack {
  const char* name;
  bool stream_ends;  // the message stream must end with an error
};

const ModuleAttack kModuleAttacks[] = {
    {"msg-garbage", true}, {"msg-lying", true},      {"msg-max-fds", false},
    {"msg-flood", false},  {"msg-half", true},       {"control-garbage", false},
    {"log-flood", false},  {"channel-flood", false},
};

class HostUnderHostileModule : public ::testing::TestWithParam<ModuleAttack> {};

// The host's main thread serves a well-behaved module (posts echoed, calls
// answered) while a module it launched attacks it through the message
// channel or the control channel; the hostile module's stream ends with a
// reason where it lied, nothing leaks, memory stays bounded.
TEST_P(HostUnderHostileModule, TheGoodModuleIsServedThroughout) {
  ModuleAttack attack = GetParam();
  size_t fds = harness::CountOpenDescriptors();
  size_t rss = ResidentMiB();
  PluginHost* host = plugin_host_new(nullptr);
  ASSERT_NE(nullptr, host);
  std::string good_path = harness::HelperPath("plugin_test_module");
  const char* good_argv[] = {good_path.c_str(), "--echo", nullptr};
  ModuleEvents bad_events;
  PluginLaunchOptions good = {};
  good.path = good_path.c_str();
  good.argv = good_argv;
  PluginModule* good_module = nullptr;
  ASSERT_EQ(PLUGIN_OK, plugin_module_launch(host, &good, &good_module));

  std::string bad_path = harness::HelperPath("hostile_module");
  const char* bad_argv[] = {bad_path.c_str(), attack.name, "300", nullptr};
  PluginLaunchOptions bad = {};
  bad.path = bad_path.c_str();
  bad.argv = bad_argv;
  bad.callbacks = Counting(&bad_events);
  PluginModule* bad_module = nullptr;
  ASSERT_EQ(PLUGIN_OK, plugin_module_launch(host, &bad, &bad_module));

  double slowest = 0;
  int rounds = 0, wrong = 0;
  auto start = Clock::now();
  // At least 600 ms and 20 rounds; for an attack that must end the stream,
  // until it has (slow builds start the module slowly).
  while (MsSince(start) < 600 || rounds < 20 ||
         (attack.stream_ends && !bad_events.ended && MsSince(start) < 20000)) {
    auto t0 = Clock::now();
    char text[16];
    int n = snprintf(text, sizeof(text), "round %d", rounds);
    PluginMessage echo;
    SrpcArg in[2] = {}, out = {};
    in[0].type = in[1].type = out.type = SRPC_TYPE_INT;
    in[0].u.ival = rounds;
    in[1].u.ival = 1;
    if (plugin_module_post(good_module, text, static_cast<size_t>(n), nullptr,
                           0) != PLUGIN_OK ||
        plugin_module_wait_message(good_module, 10000, &echo) != PLUGIN_OK) {
      wrong++;
    } else {
      if (echo.len != static_cast<size_t>(n) ||
          memcmp(echo.data, text, echo.len) != 0)
        wrong++;
      plugin_message_free(&echo);
    }
    if (plugin_module_call(good_module, "add", 10000, in, 2, &out, 1) !=
            SRPC_RESULT_OK ||
        out.u.ival != rounds + 1)
      wrong++;
    plugin_host_run_until_idle(host);  // the hostile module's events too
    slowest = std::max(slowest, MsSince(t0));
    rounds++;
  }
  printf(
      "%s: %d rounds, the good module's slowest took %.2f ms; hostile: %d "
      "messages, %d log lines, stream %s (%s)\n",
      attack.name, rounds, slowest, bad_events.messages, bad_events.logs,
      bad_events.ended ? "ended" : "open", strerror(bad_events.end_error));
  EXPECT_EQ(0, wrong);
  if (attack.stream_ends) {
    EXPECT_TRUE(bad_events.ended);
    EXPECT_NE(0, bad_events.end_error) << "a reason for the end";
  }
  if (strcmp(attack.name, "log-flood") == 0) {
    EXPECT_GT(bad_events.logs, 0) << "the attack reached the host";
  }
  if (strcmp(attack.name, "msg-flood") == 0 ||
      strcmp(attack.name, "msg-max-fds") == 0) {
    EXPECT_GT(bad_events.messages, 0) << "the attack reached the host";
  }
  plugin_module_free(bad_module);
  plugin_module_free(good_module);
  plugin_host_free(host);
  EXPECT_TRUE(SettlesTo(fds))
      << harness::CountOpenDescriptors() << " vs " << fds;
  EXPECT_LT(ResidentMiB(), rss + kMemoryCapMiB);
}

INSTANTIATE_TEST_SUITE_P(
    Attacks,
    HostUnderHostileModule,
    ::testing::ValuesIn(kModuleAttacks),
    [](const ::testing::TestParamInfo<ModuleAttack>& param) {
      std::string name = param.param.name;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// ---- Descriptor exhaustion ----

// Leaves this process exactly `room` free descriptors for the life of the
// object: the limit goes just above the highest open one, and the gaps
// below it are filled.
class DescriptorLimit {
 public:
  explicit DescriptorLimit(size_t room) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 0;
    for (int fd : harness::OpenDescriptors())
      highest = std::max(highest, fd);
    struct rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest) + 1 + room;
    setrlimit(RLIMIT_NOFILE, &low);
    for (;;) {
      int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        break;
      if (fd > highest) {
        close(fd);
        break;
      }
      fillers_.push_back(fd);
    }
  }
  ~DescriptorLimit() {
    for (int fd : fillers_)
      close(fd);
    setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  struct rlimit saved_;
  std::vector<int> fillers_;
};

// A server out of descriptors refuses what it cannot take (EMFILE at
// accept), leaks nothing, and serves again once descriptors are free.
TEST(DescriptorExhaustionTest, SrpcServerRecoversOnceDescriptorsAreFree) {
  SrpcService* service =
      srpc_service_new(kMethods, 1, nullptr, nullptr, nullptr);
  int sock[2];
  ASSERT_EQ(0, imc_makeboundsock(sock));
  std::thread server([&] { srpc_serve_bound(sock[0], service, 1 << 20); });
  SrpcChannel* first = srpc_channel_new(imc_connect(sock[1]), nullptr, 0);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(first));
  size_t fds = harness::CountOpenDescriptors();
  std::vector<int> conns;
  {
    DescriptorLimit limit(8);
    // Connect until this process (client and server alike) runs out.
    for (int i = 0; i < 64; i++) {
      int c = imc_connect_ex(sock[1], IMC_NONBLOCK, 0);
      if (c < 0) {
        EXPECT_TRUE(errno == EMFILE || errno == ENFILE ||
                    errno == ETOOMANYREFS || errno == EAGAIN)
            << strerror(errno);
        break;
      }
      conns.push_back(c);
    }
    EXPECT_FALSE(conns.empty());
    // The connection made before the limit still works.
    int32_t sum = 0;
    EXPECT_EQ(SRPC_RESULT_OK, srpc_invoke(first, "add", 2, 3, &sum));
    EXPECT_EQ(5, sum);
  }
  for (int c : conns)
    close(c);
  EXPECT_TRUE(SettlesTo(fds))
      << harness::CountOpenDescriptors() << " vs " << fds;
  // Descriptors free again: a new client is served.
  SrpcChannel* again = srpc_channel_new(imc_connect(sock[1]), nullptr, 0);
  EXPECT_EQ(SRPC_RESULT_OK, srpc_channel_discover(again));
  int32_t sum = 0;
  EXPECT_EQ(SRPC_RESULT_OK, srpc_invoke(again, "add", 20, 22, &sum));
  EXPECT_EQ(42, sum);
  srpc_channel_free(again);
  srpc_channel_free(first);
  close(sock[1]);
  server.join();
  close(sock[0]);
  srpc_service_free(service);
}

// The host's calls that make descriptors fail cleanly at the limit and
// work again after it.
TEST(DescriptorExhaustionTest, HostCallsFailCleanlyAtTheLimit) {
  PluginHost* host = plugin_host_new(nullptr);
  size_t fds = harness::CountOpenDescriptors();
  std::string path = harness::HelperPath("hostile_peer");
  {
    DescriptorLimit limit(0);
    errno = 0;
    EXPECT_EQ(-1, plugin_make_socket(host, EchoBack, nullptr, nullptr));
    EXPECT_TRUE(errno == EMFILE || errno == ENFILE) << strerror(errno);
    PluginLaunchOptions o = {};
    o.path = path.c_str();
    PluginModule* m = nullptr;
    int r = plugin_module_launch(host, &o, &m);
    EXPECT_TRUE(r == PLUGIN_ERROR_NO_DESCRIPTORS || r == PLUGIN_ERROR_SPAWN ||
                r == PLUGIN_ERROR_SYSTEM)
        << plugin_result_string(r);
    EXPECT_EQ(nullptr, m);
    BrokerPolicy* policy = broker_policy_new();
    EXPECT_NE(0, broker_policy_allow(policy, "/tmp",
                                     BROKER_ALLOW_READ | BROKER_RECURSIVE));
    broker_policy_free(policy);
  }
  plugin_host_run_until_idle(host);
  EXPECT_EQ(fds, harness::CountOpenDescriptors());
  Echo echo;
  PluginSocket* s = nullptr;
  int fd = plugin_make_socket(host, EchoBack, &echo, &s);
  EXPECT_GE(fd, 0);
  close(fd);
  plugin_socket_close(s);
  plugin_host_free(host);
}

}  // namespace
