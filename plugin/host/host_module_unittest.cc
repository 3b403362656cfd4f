// Modules as real processes (plugin_test_module): launch, the double
// connect and discovery, calls both ways, messages both ways in volume,
// unlimited buffering, synchronous waits and their cancellation, exits and
// crashes, module-to-module connections, make_socket with a module.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc_test_util.h"
#include "plugin/host/plugin_host.h"
#include "testing/harness/child_process.h"

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void Mul(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival * in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kHostMethods[] = {{"mul:ii:i", Mul}};

// What the callbacks saw.
struct Events {
  std::vector<std::string> messages;
  std::vector<std::vector<int>> fds;
  int message_ends = 0;
  int exits = 0;
  int status = -1;
  std::vector<std::string> logs;
  int quotas = 0;
  size_t quota_bytes = 0;
  uint32_t next_seq = 0;
  bool in_order = true;
  bool keep_bodies = true;
};

PluginModuleCallbacks Callbacks(Events* events) {
  PluginModuleCallbacks cb = {};
  cb.user = events;
  cb.on_message = [](PluginModule*, PluginMessage* m, int, void* u) {
    Events* e = static_cast<Events*>(u);
    if (m == nullptr) {
      e->message_ends++;
      return;
    }
    if (m->len >= 4) {
      uint32_t seq;
      memcpy(&seq, m->data, 4);
      if (seq != e->next_seq)
        e->in_order = false;
      e->next_seq = seq + 1;
    }
    if (e->keep_bodies)
      e->messages.emplace_back(reinterpret_cast<char*>(m->data), m->len);
    else
      e->messages.emplace_back();
    std::vector<int> fds;
    for (size_t i = 0; i < m->num_fds; i++) {
      fds.push_back(m->fds[i]);
      m->fds[i] = -1;
    }
    e->fds.push_back(fds);
  };
  cb.on_exit = [](PluginModule*, int status, void* u) {
    Events* e = static_cast<Events*>(u);
    e->exits++;
    e->status = status;
  };
  cb.on_log = [](PluginModule*, int level, const char* text, void* u) {
    static_cast<Events*>(u)->logs.push_back(std::to_string(level) + ":" + text);
  };
  cb.on_quota = [](PluginModule*, size_t bytes, void* u) {
    Events* e = static_cast<Events*>(u);
    e->quotas++;
    e->quota_bytes = bytes;
  };
  return cb;
}

class PluginModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PluginHostOptions options = {};
    options.methods = kHostMethods;
    options.num_methods = 1;
    host_ = plugin_host_new(&options);
    ASSERT_NE(nullptr, host_);
    path_ = harness::HelperPath("plugin_test_module");
  }
  void TearDown() override {
    for (PluginModule* m : modules_)
      plugin_module_free(m);
    plugin_host_run_until_idle(host_);
    plugin_host_free(host_);
    // No zombie left: every child was reaped.
    EXPECT_EQ(-1, waitpid(-1, nullptr, WNOHANG));
    EXPECT_EQ(ECHILD, errno);
  }
  int Launch(std::vector<std::string> args,
             Events* events,
             PluginModule** out,
             int timeout_ms = 10000) {
    std::vector<const char*> argv = {path_.c_str()};
    for (const std::string& a : args)
      argv.push_back(a.c_str());
    argv.push_back(nullptr);
    PluginLaunchOptions o = {};
    o.path = path_.c_str();
    o.argv = argv.data();
    o.start_timeout_ms = timeout_ms;
    o.callbacks = Callbacks(events);
    int r = plugin_module_launch(host_, &o, out);
    if (r == PLUGIN_OK)
      modules_.push_back(*out);
    return r;
  }
  template <typename Pred>
  bool RunUntil(Pred done, int timeout_ms = 20000) {
    auto start = Clock::now();
    while (MsSince(start) < timeout_ms) {
      plugin_host_run_until_idle(host_);
      if (done())
        return true;
      usleep(200);
    }
    return false;
  }
  void Forget(PluginModule* m) {
    modules_.erase(std::find(modules_.begin(), modules_.end(), m));
    plugin_module_free(m);
  }

  PluginHost* host_ = nullptr;
  std::string path_;
  std::vector<PluginModule*> modules_;
};

int Add(PluginModule* m, int a, int b, int32_t* sum, int timeout_ms = 10000) {
  SrpcArg in[2] = {};
  in[0].type = in[1].type = SRPC_TYPE_INT;
  in[0].u.ival = a;
  in[1].u.ival = b;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  int r = plugin_module_call(m, "add", timeout_ms, in, 2, &out, 1);
  *sum = out.u.ival;
  return r;
}

int CallInts(PluginModule* m,
             const char* name,
             std::vector<int> ints,
             int timeout_ms = 10000) {
  std::vector<SrpcArg> in(ints.size());
  for (size_t i = 0; i < ints.size(); i++) {
    in[i].type = SRPC_TYPE_INT;
    in[i].u.ival = ints[i];
  }
  return plugin_module_call(m, name, timeout_ms, in.data(), in.size(), nullptr,
                            0);
}

TEST_F(PluginModuleTest, LaunchDiscoversTheModulesMethodsAndCallsThem) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  EXPECT_GT(plugin_module_pid(m), 0);
  SrpcChannel* ch = plugin_module_channel(m);
  EXPECT_GE(srpc_channel_lookup(ch, "add:ii:i"), 1);
  EXPECT_GE(srpc_channel_lookup(ch, "drain:ii:lll"), 1);
  int32_t sum = 0;
  EXPECT_EQ(SRPC_RESULT_OK, Add(m, 40, 2, &sum));
  EXPECT_EQ(42, sum);
  // 1 MiB through the service channel.
  std::string big(1 << 20, 'b');
  std::string back(big.size(), '\0');
  uint32_t back_len = static_cast<uint32_t>(back.size());
  EXPECT_EQ(SRPC_RESULT_OK,
            srpc_invoke(ch, "echo", static_cast<uint32_t>(big.size()),
                        big.data(), &back_len, &back[0]));
  EXPECT_EQ(big, back);
  EXPECT_EQ(
      SRPC_RESULT_BAD_RPC_NUMBER,
      plugin_module_call(m, "no_such_method", 1000, nullptr, 0, nullptr, 0));
}

TEST_F(PluginModuleTest, TheModuleStartsWithOnlyItsProtocolDescriptors) {
  // A descriptor of ours without close-on-exec must not reach the module.
  int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  SrpcArg out = {};
  out.type = SRPC_TYPE_STRING;
  ASSERT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "start_fds", 10000, nullptr, 0, &out, 1));
  EXPECT_STREQ("0 1 2 3", out.u.str);
  free(out.u.str);
  close(leaky);
}

TEST_F(PluginModuleTest, ModuleCallsTheHostOnItsChannelsAndLogs) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--manual", "--log-at-start"}, &e, &m));
  SrpcArg in[2] = {};
  in[0].type = in[1].type = SRPC_TYPE_INT;
  in[0].u.ival = 6;
  in[1].u.ival = 7;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  EXPECT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "host_mul", 10000, in, 2, &out, 1));
  EXPECT_EQ(42, out.u.ival);
  in[0].u.ival = 5;
  EXPECT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "channel_mul", 10000, in, 2, &out, 1));
  EXPECT_EQ(35, out.u.ival);
  SrpcArg log_in[2] = {};
  log_in[0].type = SRPC_TYPE_INT;
  log_in[0].u.ival = 2;
  log_in[1].type = SRPC_TYPE_STRING;
  log_in[1].u.str = const_cast<char*>("hello host");
  log_in[1].count = 10;
  EXPECT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "log", 10000, log_in, 2, nullptr, 0));
  ASSERT_TRUE(RunUntil([&] { return e.logs.size() == 2; }));
  EXPECT_EQ("1:started", e.logs[0]);
  EXPECT_EQ("2:hello host", e.logs[1]);
}

// What a module can make the host hold is bounded: log lines are cut to
// PLUGIN_MAX_LOG_BYTES, extra channels stop at 64.
TEST_F(PluginModuleTest, LogLinesAndExtraChannelsAreBounded) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  EXPECT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "log_long", 10000, nullptr, 0, nullptr, 0));
  ASSERT_TRUE(RunUntil([&] { return e.logs.size() == 1; }));
  EXPECT_EQ(2u + 4096u, e.logs[0].size());  // "0:" and the cut text
  SrpcArg in = {};
  in.type = SRPC_TYPE_INT;
  in.u.ival = 70;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  ASSERT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "open_channels", 30000, &in, 1, &out, 1));
  EXPECT_EQ(64, out.u.ival);
}

TEST_F(PluginModuleTest, BadArgumentsAndWrongThreadsAreRefused) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  PluginMessage msg;
  PluginObjects* objects = nullptr;
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_module_post(nullptr, "x", 1, nullptr, 0));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_module_wait_message(m, 0, nullptr));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT, plugin_module_objects(m, nullptr));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_module_give_address(m, nullptr, m));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_module_give_address(m, std::string(300, 'n').c_str(), m));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_module_shutdown(nullptr, 0, nullptr));
  EXPECT_EQ(SRPC_RESULT_INTERNAL,
            plugin_module_call(nullptr, "add", 0, nullptr, 0, nullptr, 0));
  PluginLaunchOptions o = {};
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT, plugin_module_launch(host_, &o, &m));
  std::thread([&] {
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD, plugin_module_objects(m, &objects));
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD, plugin_module_give_address(m, "a", m));
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD, plugin_module_shutdown(m, 0, nullptr));
    o.path = "/bin/true";
    PluginModule* other = nullptr;
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD,
              plugin_module_launch(host_, &o, &other));
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD,
              plugin_module_wait_message(m, 0, &msg));
  }).join();
}

TEST_F(PluginModuleTest, ExitAndCrashReachTheEmbedderOnceWithTheirStatus) {
  Events e1, e2;
  PluginModule *m1, *m2;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e1, &m1));
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e2, &m2));
  EXPECT_EQ(SRPC_RESULT_INTERNAL, CallInts(m1, "exit", {7}));
  EXPECT_EQ(SRPC_RESULT_INTERNAL,
            plugin_module_call(m2, "crash", 10000, nullptr, 0, nullptr, 0));
  ASSERT_TRUE(RunUntil([&] { return e1.exits == 1 && e2.exits == 1; }));
  EXPECT_TRUE(WIFEXITED(e1.status));
  EXPECT_EQ(7, WEXITSTATUS(e1.status));
  EXPECT_TRUE(WIFSIGNALED(e2.status));
  EXPECT_EQ(SIGABRT, WTERMSIG(e2.status));
  // The message channel ended too, once; posting now fails cleanly.
  ASSERT_TRUE(RunUntil([&] { return e1.message_ends == 1; }));
  int r = PLUGIN_OK;
  for (int i = 0; i < 10 && r == PLUGIN_OK; i++)
    r = plugin_module_post(m1, "late", 4, nullptr, 0);
  EXPECT_EQ(PLUGIN_ERROR_CLOSED, r);
  RunUntil([] { return false; }, 50);
  EXPECT_EQ(1, e1.exits);
  EXPECT_EQ(1, e1.message_ends);
}

TEST_F(PluginModuleTest, ShutdownEndsTheModuleAndReapsIt) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  int status = -1;
  EXPECT_EQ(PLUGIN_OK, plugin_module_shutdown(m, 5000, &status));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(0, WEXITSTATUS(status));
  ASSERT_TRUE(RunUntil([&] { return e.exits == 1; }));
  // Grace 0: killed at once.
  Events e2;
  PluginModule* m2;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e2, &m2));
  EXPECT_EQ(PLUGIN_OK, plugin_module_shutdown(m2, 0, &status));
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(SIGKILL, WTERMSIG(status));
}

// A host killed without any clean-up: its module notices the control
// channel closing and ends, instead of living on without a host.
TEST_F(PluginModuleTest, ModuleEndsWhenItsHostDies) {
  int report[2];
  ASSERT_EQ(0, pipe2(report, O_CLOEXEC));
  std::string path = path_;
  pid_t host = harness::ForkChild([&] {
    PluginHost* h = plugin_host_new(nullptr);
    const char* argv[] = {path.c_str(), nullptr};
    PluginLaunchOptions o = {};
    o.path = path.c_str();
    o.argv = argv;
    PluginModule* m = nullptr;
    if (plugin_module_launch(h, &o, &m) != PLUGIN_OK)
      return 1;
    pid_t pid = plugin_module_pid(m);
    if (write(report[1], &pid, sizeof(pid)) != sizeof(pid))
      return 1;
    raise(SIGKILL);
    return 0;
  });
  close(report[1]);
  pid_t module = 0;
  ASSERT_EQ(static_cast<ssize_t>(sizeof(module)),
            read(report[0], &module, sizeof(module)));
  close(report[0]);
  harness::WaitForChild(host, 5000);
  // Gone, or a zombie waiting for init to reap it.
  auto alive = [&] {
    std::string stat = "/proc/" + std::to_string(module) + "/stat";
    FILE* f = fopen(stat.c_str(), "re");
    if (f == nullptr)
      return false;
    char state = 0;
    int scanned = fscanf(f, "%*d %*s %c", &state);
    fclose(f);
    return scanned == 1 && state != 'Z' && state != 'X';
  };
  auto start = Clock::now();
  while (alive() && MsSince(start) < 5000)
    usleep(1000);
  EXPECT_FALSE(alive());
}

TEST_F(PluginModuleTest, ModuleThatNeverAcceptsFailsLaunchAfterTheBound) {
  for (const char* mode : {"--never-accept", "--accept-once"}) {
    SCOPED_TRACE(mode);
    Events e;
    PluginModule* m = nullptr;
    auto start = Clock::now();
    EXPECT_EQ(PLUGIN_ERROR_START_TIMEOUT, Launch({mode}, &e, &m, 300));
    double ms = MsSince(start);
    EXPECT_GE(ms, 250.0);
    EXPECT_LT(ms, 5000.0);
    EXPECT_EQ(nullptr, m);
  }
}

TEST_F(PluginModuleTest, ModuleThatExitsAtStartFailsTheHandshake) {
  Events e;
  PluginModule* m = nullptr;
  EXPECT_EQ(PLUGIN_ERROR_HANDSHAKE, Launch({"--exit-now", "3"}, &e, &m));
}

TEST_F(PluginModuleTest, MissingProgramFailsWithItsErrno) {
  PluginLaunchOptions o = {};
  o.path = "/nonexistent/module";
  PluginModule* m = nullptr;
  errno = 0;
  EXPECT_EQ(PLUGIN_ERROR_SPAWN, plugin_module_launch(host_, &o, &m));
  EXPECT_EQ(ENOENT, errno);
  EXPECT_EQ(nullptr, m);
}

TEST_F(PluginModuleTest, HundredThousandMessagesEachWayWithCallsBetween) {
  Events e;
  e.keep_bodies = false;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--echo"}, &e, &m));
  const uint32_t kCount = 100000;
  for (uint32_t i = 0; i < kCount; i++) {
    char body[16];
    memcpy(body, &i, 4);
    memset(body + 4, static_cast<int>(i & 0xff), sizeof(body) - 4);
    ASSERT_EQ(PLUGIN_OK, plugin_module_post(m, body, sizeof(body), nullptr, 0));
    if (i % 10000 == 0) {
      int32_t sum = 0;
      ASSERT_EQ(SRPC_RESULT_OK, Add(m, static_cast<int>(i), 1, &sum));
      ASSERT_EQ(static_cast<int32_t>(i) + 1, sum);
      plugin_host_run_until_idle(host_);
    }
  }
  ASSERT_TRUE(RunUntil([&] { return e.messages.size() == kCount; }, 60000));
  EXPECT_TRUE(e.in_order);
  EXPECT_EQ(kCount, e.next_seq);
}

TEST_F(PluginModuleTest, ModulePostsAndDescriptorsRoundTrip) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--echo"}, &e, &m));
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  uint32_t seq = 0;
  char body[8] = {};
  memcpy(body, &seq, 4);
  int fds[2] = {p[0], p[1]};
  ASSERT_EQ(PLUGIN_OK, plugin_module_post(m, body, sizeof(body), fds, 2));
  ASSERT_TRUE(RunUntil([&] { return e.messages.size() == 1; }));
  ASSERT_EQ(2u, e.fds[0].size());
  EXPECT_TRUE(imc_test::SameFile(p[0], e.fds[0][0]));
  EXPECT_TRUE(imc_test::SameFile(p[1], e.fds[0][1]));
  // What the module echoed works: write through its copy of our pipe.
  ASSERT_EQ(1, write(e.fds[0][1], "z", 1));
  char c = 0;
  ASSERT_EQ(1, read(p[0], &c, 1));
  EXPECT_EQ('z', c);
  for (int fd : e.fds[0])
    close(fd);
  close(p[0]);
  close(p[1]);
}

// The module stops reading; the host posts 256 MiB: its main thread never
// blocks, the queue accounts for every byte, the quota notifies, and all of
// it arrives once the module reads.
TEST_F(PluginModuleTest, UnlimitedBufferingOfQuarterGibibyte) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--manual"}, &e, &m));
  const size_t kMessage = 64 * 1024;
  const uint32_t kCount = 4096;  // 256 MiB
  plugin_module_set_quota(m, 64u << 20);
  std::vector<uint8_t> body(kMessage);
  double longest_ms = 0;
  for (uint32_t i = 0; i < kCount; i++) {
    memcpy(body.data(), &i, 4);
    memset(body.data() + 4, static_cast<int>(i & 0xff), kMessage - 4);
    auto t0 = Clock::now();
    ASSERT_EQ(PLUGIN_OK,
              plugin_module_post(m, body.data(), body.size(), nullptr, 0));
    longest_ms = std::max(longest_ms, MsSince(t0));
  }
  size_t queued = plugin_module_queued_bytes(m);
  size_t queued_messages = plugin_module_queued_messages(m);
  std::printf("longest post: %.3f ms; queued %zu bytes in %zu messages\n",
              longest_ms, queued, queued_messages);
  EXPECT_LT(longest_ms, 1000.0);  // a block would never end
  EXPECT_EQ(queued_messages * kMessage, queued);
  EXPECT_GT(queued, size_t{200} << 20);
  ASSERT_TRUE(RunUntil([&] { return e.quotas >= 1; }));
  EXPECT_EQ(1, e.quotas);
  EXPECT_GT(e.quota_bytes, size_t{64} << 20);
  // Now the module reads everything and checks order and content.
  SrpcArg in[2] = {};
  in[0].type = in[1].type = SRPC_TYPE_INT;
  in[0].u.ival = static_cast<int>(kCount);
  in[1].u.ival = 60000;
  SrpcArg out[3] = {};
  out[0].type = out[1].type = out[2].type = SRPC_TYPE_LONG;
  ASSERT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "drain", 120000, in, 2, out, 3));
  EXPECT_EQ(static_cast<int64_t>(kCount * kMessage), out[0].u.lval);
  EXPECT_EQ(1, out[1].u.lval);
  for (int i = 0; i < 5000 && plugin_module_queued_bytes(m) != 0; i++)
    usleep(1000);  // the writer's accounting follows its last send
  EXPECT_EQ(0u, plugin_module_queued_bytes(m));
  EXPECT_EQ(1, e.quotas);
}

TEST_F(PluginModuleTest, WaitForMessageTimesOutIsCancelledAndDelivers) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--manual"}, &e, &m));
  PluginMessage msg;
  auto start = Clock::now();
  EXPECT_EQ(PLUGIN_ERROR_TIMED_OUT, plugin_module_wait_message(m, 100, &msg));
  EXPECT_GE(MsSince(start), 99.0);
  // Cancel from another thread: unblocks promptly.
  Clock::time_point cancelled;
  std::thread stopper([&] {
    usleep(50000);
    cancelled = Clock::now();
    plugin_host_cancel_waits(host_);
  });
  EXPECT_EQ(PLUGIN_ERROR_CANCELLED, plugin_module_wait_message(m, -1, &msg));
  double delay = MsSince(cancelled);
  stopper.join();
  std::printf("wait_message cancelled after %.3f ms\n", delay);
  EXPECT_LT(delay, 100.0);
  // The flag stays up until reset.
  EXPECT_EQ(PLUGIN_ERROR_CANCELLED, plugin_module_wait_message(m, -1, &msg));
  plugin_host_reset_cancel(host_);
  ASSERT_EQ(SRPC_RESULT_OK, CallInts(m, "post", {1, 10}));
  ASSERT_EQ(PLUGIN_OK, plugin_module_wait_message(m, 10000, &msg));
  EXPECT_EQ(10u, msg.len);
  plugin_message_free(&msg);
  // Taken by the wait: on_message does not see it.
  RunUntil([] { return false; }, 50);
  EXPECT_TRUE(e.messages.empty());
  // From another thread: refused.
  std::thread([&] {
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD,
              plugin_module_wait_message(m, 0, &msg));
  }).join();
}

TEST_F(PluginModuleTest, SynchronousCallTimesOutAndIsCancelled) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  auto start = Clock::now();
  EXPECT_EQ(SRPC_RESULT_TIMED_OUT, CallInts(m, "sleep", {500}, 100));
  EXPECT_LT(MsSince(start), 400.0);
  Clock::time_point cancelled;
  std::thread stopper([&] {
    usleep(50000);
    cancelled = Clock::now();
    plugin_host_cancel_waits(host_);
  });
  EXPECT_EQ(SRPC_RESULT_CANCELLED, CallInts(m, "sleep", {500}, -1));
  double delay = MsSince(cancelled);
  stopper.join();
  EXPECT_LT(delay, 100.0);
  plugin_host_reset_cancel(host_);
  int32_t sum = 0;
  EXPECT_EQ(SRPC_RESULT_OK, Add(m, 1, 2, &sum));
  EXPECT_EQ(3, sum);
}

TEST_F(PluginModuleTest, ModulesConnectToEachOtherDirectly) {
  Events ea, eb;
  PluginModule *a, *b;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &ea, &a));
  ASSERT_EQ(PLUGIN_OK, Launch({}, &eb, &b));
  ASSERT_EQ(PLUGIN_OK, plugin_module_give_address(a, "b", b));
  SrpcArg in[3] = {};
  in[0].type = SRPC_TYPE_STRING;
  in[0].u.str = const_cast<char*>("b");
  in[0].count = 1;
  in[1].type = in[2].type = SRPC_TYPE_INT;
  in[1].u.ival = 20;
  in[2].u.ival = 22;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  ASSERT_EQ(SRPC_RESULT_OK,
            plugin_module_call(a, "peer_add", 10000, in, 3, &out, 1));
  EXPECT_EQ(42, out.u.ival);
}

// ---- Objects between the host and real module processes. ----

struct Released {
  int count = 0;
};

void HostAdd(PluginObjectCall* call, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

const PluginMethodDef kHostObjectMethods[] = {{"add:ii:i", HostAdd}};
const PluginObjectClass kHostObjectClass = {
    kHostObjectMethods, 1,
    [](PluginObject*, PluginObjects*, void* user) {
      // On the channel's thread: counted under no lock but read only after
      // the main thread has waited for it.
      __atomic_add_fetch(&static_cast<Released*>(user)->count, 1,
                         __ATOMIC_SEQ_CST);
    },
    nullptr};

int ObjAdd(PluginObject* o, int a, int b, int32_t* sum) {
  SrpcArg in[2] = {};
  in[0].type = in[1].type = SRPC_TYPE_INT;
  in[0].u.ival = a;
  in[1].u.ival = b;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  int r = plugin_object_invoke(o, "add", 10000, nullptr, in, 2, &out, 1);
  *sum = out.u.ival;
  return r;
}

SrpcArg ObjArg(PluginObject* o) {
  SrpcArg a = {};
  a.type = PLUGIN_TYPE_OBJECT;
  a.u.ptr = o;
  return a;
}

PluginObject* RootOf(PluginModule* m) {
  PluginObjects* objects = nullptr;
  EXPECT_EQ(PLUGIN_OK, plugin_module_objects(m, &objects));
  PluginObject* root = nullptr;
  if (objects != nullptr) {
    EXPECT_EQ(PLUGIN_OBJECT_OK, plugin_objects_root(objects, 10000, &root));
  }
  return root;
}

TEST_F(PluginModuleTest, ObjectsOfAModuleAndTheHostCallEachOther) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  PluginObject* root = RootOf(m);
  ASSERT_NE(nullptr, root);
  int32_t sum = 0;
  EXPECT_EQ(PLUGIN_OBJECT_OK, ObjAdd(root, 40, 2, &sum));
  EXPECT_EQ(42, sum);
  // The module calls an object of ours, keeps it, and drops it: the
  // release reaches us exactly once.
  Released released;
  PluginObject* mine = plugin_object_new(&kHostObjectClass, &released);
  SrpcArg args[3] = {ObjArg(mine), {}, {}};
  args[1].type = args[2].type = SRPC_TYPE_INT;
  args[1].u.ival = 5;
  args[2].u.ival = 6;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  ASSERT_EQ(PLUGIN_OBJECT_OK, plugin_object_invoke(root, "call_add", 10000,
                                                   nullptr, args, 3, &out, 1));
  EXPECT_EQ(11, out.u.ival);
  ASSERT_EQ(PLUGIN_OBJECT_OK, plugin_object_invoke(root, "keep", 10000, nullptr,
                                                   args, 1, nullptr, 0));
  ASSERT_EQ(PLUGIN_OBJECT_OK, plugin_object_invoke(root, "drop", 10000, nullptr,
                                                   nullptr, 0, nullptr, 0));
  // Once nothing of ours is exported any more, every release has come: one
  // per time the module held it and let go (call_add's proxy may or may
  // not have gone before keep took it again).
  PluginObjects* objects = nullptr;
  ASSERT_EQ(PLUGIN_OK, plugin_module_objects(m, &objects));
  auto start = Clock::now();
  while (plugin_objects_exported(objects) > 0 && MsSince(start) < 5000)
    usleep(1000);
  EXPECT_EQ(0u, plugin_objects_exported(objects));
  int released_now = __atomic_load_n(&released.count, __ATOMIC_SEQ_CST);
  EXPECT_GE(released_now, 1);
  EXPECT_LE(released_now, 2);
  usleep(20000);
  EXPECT_EQ(released_now, __atomic_load_n(&released.count, __ATOMIC_SEQ_CST));
  plugin_object_unref(mine);
  plugin_object_unref(root);
}

// Host forwards module A's object to module B; B calls it through the
// host, and gets A's answer.
TEST_F(PluginModuleTest, ObjectsForwardThroughAThirdProcess) {
  Events ea, eb;
  PluginModule *a, *b;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &ea, &a));
  ASSERT_EQ(PLUGIN_OK, Launch({}, &eb, &b));
  PluginObject* ra = RootOf(a);
  PluginObject* rb = RootOf(b);
  ASSERT_NE(nullptr, ra);
  ASSERT_NE(nullptr, rb);
  SrpcArg args[3] = {ObjArg(ra), {}, {}};
  args[1].type = args[2].type = SRPC_TYPE_INT;
  args[1].u.ival = 20;
  args[2].u.ival = 22;
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  ASSERT_EQ(PLUGIN_OBJECT_OK, plugin_object_invoke(rb, "call_add", 10000,
                                                   nullptr, args, 3, &out, 1));
  EXPECT_EQ(42, out.u.ival);
  plugin_object_unref(ra);
  plugin_object_unref(rb);
}

// A module killed with live proxies both ways: ours of it die (calls give
// CLOSED), and what it held of ours is released.
TEST_F(PluginModuleTest, ModuleKilledWithLiveProxies) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  PluginObject* root = RootOf(m);
  Released released;
  PluginObject* mine = plugin_object_new(&kHostObjectClass, &released);
  SrpcArg arg = ObjArg(mine);
  ASSERT_EQ(PLUGIN_OBJECT_OK, plugin_object_invoke(root, "keep", 10000, nullptr,
                                                   &arg, 1, nullptr, 0));
  kill(plugin_module_pid(m), SIGKILL);
  auto start = Clock::now();
  while ((plugin_object_is_alive(root) ||
          __atomic_load_n(&released.count, __ATOMIC_SEQ_CST) == 0) &&
         MsSince(start) < 5000)
    usleep(1000);
  EXPECT_FALSE(plugin_object_is_alive(root));
  EXPECT_EQ(1, __atomic_load_n(&released.count, __ATOMIC_SEQ_CST));
  int32_t sum;
  EXPECT_EQ(PLUGIN_OBJECT_CLOSED, ObjAdd(root, 1, 1, &sum));
  plugin_object_unref(root);
  plugin_object_unref(mine);
}

// Posts made before the host starts the module wait, in order, with their
// descriptors; the runtime refuses bad input and a second init.
TEST_F(PluginModuleTest, PostsBeforeStartArriveInOrderAfterIt) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--manual", "--early-posts"}, &e, &m));
  ASSERT_TRUE(RunUntil([&] { return e.messages.size() == 5 || e.exits; }));
  ASSERT_EQ(0, e.exits) << "the module's checks failed: status " << e.status;
  for (int i = 0; i < 5; i++)
    EXPECT_EQ("early" + std::to_string(i), e.messages[static_cast<size_t>(i)]);
  ASSERT_EQ(1u, e.fds[0].size());
  EXPECT_GE(e.fds[0][0], 0);
  for (auto& fds : e.fds) {
    for (int fd : fds)
      close(fd);
  }
  // The quota of 10 bytes was passed before start (once).
  SrpcArg out = {};
  out.type = SRPC_TYPE_INT;
  ASSERT_EQ(SRPC_RESULT_OK,
            plugin_module_call(m, "quota_calls", 10000, nullptr, 0, &out, 1));
  EXPECT_GE(out.u.ival, 1);
}

struct SocketLog {
  std::vector<std::string> messages;
  size_t fds = 0;
  int ends = 0;
};

TEST_F(PluginModuleTest, MakeSocketCarriesAModulesDatagramsToTheCallback) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({}, &e, &m));
  SocketLog log;
  PluginSocket* socket = nullptr;
  int fd = plugin_make_socket(
      host_,
      [](PluginSocket* s, PluginMessage* msg, int, void* u) {
        SocketLog* seen = static_cast<SocketLog*>(u);
        if (msg == nullptr) {
          seen->ends++;
          return;
        }
        seen->messages.emplace_back(reinterpret_cast<char*>(msg->data),
                                    msg->len);
        seen->fds += msg->num_fds;
        plugin_socket_send(s, "world", 5, nullptr, 0);
      },
      &log, &socket);
  ASSERT_GE(fd, 0);
  // The module sends "hello" on the descriptor and returns the reply; the
  // reply is written by our callback, so the main thread must run while
  // the call is in flight.
  std::atomic<bool> done{false};
  int result = -1;
  std::string reply;
  std::thread caller([&] {
    SrpcArg in[2] = {};
    in[0].type = SRPC_TYPE_HANDLE;
    in[0].u.hval = fd;
    in[1].type = SRPC_TYPE_CHAR_ARRAY;
    in[1].u.carr = const_cast<char*>("hello");
    in[1].count = 5;
    char buf[64];
    SrpcArg out = {};
    out.type = SRPC_TYPE_CHAR_ARRAY;
    out.u.carr = buf;
    out.count = sizeof(buf);
    result = plugin_module_call(m, "socket_send", 10000, in, 2, &out, 1);
    reply.assign(buf, out.count);
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done.load(); }));
  caller.join();
  EXPECT_EQ(SRPC_RESULT_OK, result);
  EXPECT_EQ("world", reply);
  ASSERT_EQ(1u, log.messages.size());
  EXPECT_EQ("hello", log.messages[0]);
  EXPECT_EQ(1u, log.fds);
  close(fd);
  // The module's copy went when its call ended: the socket reports its
  // end.
  ASSERT_TRUE(RunUntil([&] { return log.ends == 1; }));
  plugin_socket_close(socket);
}

TEST_F(PluginModuleTest, ModuleKilledInTheMiddleOfAMessage) {
  Events e;
  PluginModule* m;
  ASSERT_EQ(PLUGIN_OK, Launch({"--manual"}, &e, &m));
  std::vector<uint8_t> big(32 << 20, 0x5a);
  ASSERT_EQ(PLUGIN_OK,
            plugin_module_post(m, big.data(), big.size(), nullptr, 0));
  usleep(20000);
  kill(plugin_module_pid(m), SIGKILL);
  ASSERT_TRUE(RunUntil([&] { return e.exits == 1 && e.message_ends == 1; }));
  EXPECT_TRUE(WIFSIGNALED(e.status));
  int r = PLUGIN_OK;
  for (int i = 0; i < 10 && r == PLUGIN_OK; i++) {
    r = plugin_module_post(m, "x", 1, nullptr, 0);
    usleep(1000);
  }
  EXPECT_EQ(PLUGIN_ERROR_CLOSED, r);
  int32_t sum;
  EXPECT_EQ(SRPC_RESULT_INTERNAL, Add(m, 1, 1, &sum));
}

}  // namespace
