// The broker end to end with real module processes, sandboxed and not:
// reads, writes, denials, escapes, 8 threads at once, descriptor limits in
// the module, and the sandbox itself.

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "plugin/broker/broker.h"
#include "testing/harness/child_process.h"
#include "testing/harness/descriptors.h"

namespace {

// param: run the module in the sandbox.
class BrokerModuleTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
#ifndef BROKER_MODULES_ARE_STATIC
    if (GetParam())
      GTEST_SKIP() << "a sandboxed module must be statically linked, which "
                      "this build's sanitizer runtimes do not allow";
#endif
    char tmpl[] = "/tmp/broker_module_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_EQ(0, mkdir((dir_ + "/ro").c_str(), 0755));
    ASSERT_EQ(0, mkdir((dir_ + "/rw").c_str(), 0755));
    Write("ro/hello.txt", "hello, module");
    Write("secret.txt", "secret");
    ASSERT_EQ(0, symlink("../secret.txt", (dir_ + "/ro/escape").c_str()));
    host_ = plugin_host_new(nullptr);
    policy_ = broker_policy_new();
    ASSERT_EQ(0, broker_policy_allow(policy_, (dir_ + "/ro").c_str(),
                                     BROKER_ALLOW_READ | BROKER_RECURSIVE));
    ASSERT_EQ(0,
              broker_policy_allow(policy_, (dir_ + "/rw").c_str(),
                                  BROKER_ALLOW_READ | BROKER_ALLOW_WRITE |
                                      BROKER_ALLOW_CREATE | BROKER_RECURSIVE));
    int broker = broker_serve(host_, policy_, nullptr, nullptr, &server_);
    ASSERT_GE(broker, 0);
    std::string path = harness::HelperPath("broker_test_module");
    PluginLaunchOptions o = {};
    o.path = path.c_str();
    o.sandbox = GetParam();
    ASSERT_EQ(PLUGIN_OK, plugin_module_launch(host_, &o, &module_));
    SrpcArg in = {};
    in.type = SRPC_TYPE_HANDLE;
    in.u.hval = broker;
    ASSERT_EQ(SRPC_RESULT_OK, plugin_module_call(module_, "set_broker", 10000,
                                                 &in, 1, nullptr, 0));
    close(broker);
  }
  void TearDown() override {
    if (host_ == nullptr)
      return;
    plugin_module_free(module_);
    broker_server_free(server_);
    plugin_host_run_until_idle(host_);
    plugin_host_free(host_);
    broker_policy_free(policy_);
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(0, system(cmd.c_str()));
  }
  void Write(const std::string& rel, const std::string& text) {
    int fd = open((dir_ + "/" + rel).c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(static_cast<ssize_t>(text.size()),
              write(fd, text.data(), text.size()));
    close(fd);
  }
  // Calls `name` on another thread while this one serves the broker.
  int Call(const char* name,
           std::vector<SrpcArg> in,
           std::vector<SrpcArg>* out,
           int timeout_ms = 30000) {
    std::atomic<int> result{-1};
    std::thread t([&] {
      result = plugin_module_call(module_, name, timeout_ms, in.data(),
                                  in.size(), out->data(), out->size());
      plugin_call_on_main_thread(
          host_, [](void* h) { plugin_host_quit(static_cast<PluginHost*>(h)); },
          host_);
    });
    plugin_host_run(host_);
    t.join();
    return result;
  }
  static SrpcArg Str(const std::string& s) {
    SrpcArg a = {};
    a.type = SRPC_TYPE_STRING;
    a.u.str = const_cast<char*>(s.c_str());
    a.count = static_cast<uint32_t>(s.size());
    return a;
  }
  static SrpcArg Int(int v) {
    SrpcArg a = {};
    a.type = SRPC_TYPE_INT;
    a.u.ival = v;
    return a;
  }
  static SrpcArg Out(int type) {
    SrpcArg a = {};
    a.type = type;
    return a;
  }
  // open_read: errno and content.
  int Read(const std::string& path, std::string* content = nullptr) {
    char buf[256];
    std::string p = path;
    std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT), Out(SRPC_TYPE_CHAR_ARRAY)};
    out[1].u.carr = buf;
    out[1].count = sizeof(buf);
    EXPECT_EQ(SRPC_RESULT_OK, Call("open_read", {Str(p)}, &out));
    if (content != nullptr)
      content->assign(buf, out[0].u.ival == 0 ? out[1].count : 0);
    return out[0].u.ival;
  }

  std::string dir_;
  PluginHost* host_ = nullptr;
  BrokerPolicy* policy_ = nullptr;
  BrokerServer* server_ = nullptr;
  PluginModule* module_ = nullptr;
};

TEST_P(BrokerModuleTest, ReadsWhatThePolicyAllowsAndNothingElse) {
  std::string content;
  EXPECT_EQ(0, Read(dir_ + "/ro/hello.txt", &content));
  EXPECT_EQ("hello, module", content);
  EXPECT_EQ(EACCES, Read(dir_ + "/secret.txt"));
  EXPECT_EQ(EACCES, Read(dir_ + "/ro/escape"));
  EXPECT_EQ(EACCES, Read(dir_ + "/ro/../secret.txt"));
  EXPECT_EQ(EACCES, Read("/etc/hostname"));
  EXPECT_EQ(ENOENT, Read(dir_ + "/ro/none"));
}

TEST_P(BrokerModuleTest, WritesWhereAllowed) {
  std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT)};
  SrpcArg text = {};
  text.type = SRPC_TYPE_CHAR_ARRAY;
  text.u.carr = const_cast<char*>("written");
  text.count = 7;
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("open_write", {Str(dir_ + "/rw/out.txt"), text}, &out));
  EXPECT_EQ(0, out[0].u.ival);
  std::string content;
  EXPECT_EQ(0, Read(dir_ + "/rw/out.txt", &content));
  EXPECT_EQ("written", content);
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("open_write", {Str(dir_ + "/ro/out.txt"), text}, &out));
  EXPECT_EQ(EACCES, out[0].u.ival);
  std::vector<SrpcArg> st = {Out(SRPC_TYPE_INT), Out(SRPC_TYPE_LONG)};
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("stat_size", {Str(dir_ + "/rw/out.txt")}, &st));
  EXPECT_EQ(0, st[0].u.ival);
  EXPECT_EQ(7, st[1].u.lval);
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("access", {Str(dir_ + "/ro/hello.txt"), Int(W_OK)}, &out));
  EXPECT_EQ(EACCES, out[0].u.ival);
}

TEST_P(BrokerModuleTest, EightThreadsOpenAtOnce) {
  std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT)};
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("threads_open",
                 {Str(dir_ + "/ro/hello.txt"), Int(8), Int(250)}, &out));
  EXPECT_EQ(0, out[0].u.ival);
  EXPECT_GE(broker_server_requests(server_), 2000u);
}

TEST_P(BrokerModuleTest, DescriptorLimitInTheModuleIsCleanEmfile) {
  size_t before = harness::CountOpenDescriptors();
  std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT), Out(SRPC_TYPE_INT),
                              Out(SRPC_TYPE_INT)};
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("nofile_flood", {Str(dir_ + "/ro/hello.txt"), Int(64)}, &out));
  EXPECT_GT(out[0].u.ival, 10);                        // some opens worked
  EXPECT_LT(out[0].u.ival, 64);                        // and then the limit
  EXPECT_EQ(EMFILE, out[1].u.ival);                    // a clean EMFILE
  EXPECT_EQ(0, out[2].u.ival);                         // and it recovers
  EXPECT_EQ(before, harness::CountOpenDescriptors());  // the host kept none
}

TEST_P(BrokerModuleTest, TheSandboxRefusesDirectAccess) {
  std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT)};
  ASSERT_EQ(SRPC_RESULT_OK,
            Call("direct_open", {Str(dir_ + "/ro/hello.txt")}, &out));
  EXPECT_EQ(GetParam() ? EACCES : 0, out[0].u.ival);
  ASSERT_EQ(SRPC_RESULT_OK, Call("direct_socket", {}, &out));
  EXPECT_EQ(GetParam() ? EACCES : 0, out[0].u.ival);
  // Brokered opens still work inside it.
  EXPECT_EQ(0, Read(dir_ + "/ro/hello.txt"));
}

TEST_P(BrokerModuleTest, TheSandboxClosesTheOtherRoadsOut) {
  int32_t r[12];
  std::vector<SrpcArg> out = {Out(SRPC_TYPE_INT_ARRAY)};
  out[0].u.iarr = r;
  out[0].count = 12;
  ASSERT_EQ(SRPC_RESULT_OK, Call("probe", {}, &out));
  ASSERT_EQ(12u, out[0].count);
  bool sandboxed = GetParam();
  EXPECT_EQ(sandboxed ? EACCES : 0, r[0]) << "datagram socket pair";
  EXPECT_EQ(0, r[1]) << "IMC socket pair";
  EXPECT_EQ(sandboxed ? EACCES : 0, r[2]) << "signal to the host";
  EXPECT_EQ(0, r[3]) << "signal to itself";
  EXPECT_EQ(0, r[4]) << "a thread";
  if (sandboxed) {
    EXPECT_EQ(EACCES, r[5]) << "new user namespace";
    EXPECT_EQ(ENOSYS, r[6]) << "unknown system call";
    EXPECT_EQ(EACCES, r[7]) << "pidfd_open";
    EXPECT_EQ(EACCES, r[8]) << "mkdir by name";
    EXPECT_EQ(EACCES, r[9]) << "queued signal to the host";
    EXPECT_EQ(EACCES, r[10]) << "prlimit of the host";
  }
  EXPECT_EQ(0, r[11]) << "prlimit of itself";
}

INSTANTIATE_TEST_SUITE_P(SandboxedAndNot,
                         BrokerModuleTest,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Sandboxed" : "Unsandboxed";
                         });

}  // namespace
