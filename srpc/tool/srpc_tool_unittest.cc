// The srpc command against a real module process.

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/harness/child_process.h"

namespace {

using harness::ExitedWithCode;
using harness::HelperPath;
using harness::RunAndCapture;

// Runs `srpc --launch srpc_test_module -- ARGS...`.
harness::ChildStatus Srpc(std::vector<std::string> args,
                          std::string* out,
                          bool trace = false) {
  std::vector<std::string> all;
  if (trace)
    all.push_back("--trace");
  all.insert(all.end(), {"--launch", HelperPath("srpc_test_module"), "--"});
  all.insert(all.end(), args.begin(), args.end());
  return RunAndCapture(HelperPath("srpc"), all, 20000, out);
}

TEST(SrpcToolTest, ListsTheDiscoveredMethods) {
  std::string out;
  EXPECT_TRUE(ExitedWithCode(Srpc({"list"}, &out), 0)) << out;
  EXPECT_NE(std::string::npos, out.find("0 service_discovery::C\n")) << out;
  EXPECT_NE(std::string::npos, out.find("1 add:ii:i\n")) << out;
  EXPECT_NE(std::string::npos, out.find("6 read:h:C\n")) << out;
}

TEST(SrpcToolTest, CallsWithTypedLiterals) {
  struct {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"call", "add", "2", "3"}, "i 5\n"},
      {{"call", "add:ii:i", "-0x10", "1"}, "i -15\n"},
      {{"call", "concat", "foo", "bar"}, "s foobar\n"},
      {{"call", "sum", "1,2,3,-10"}, "l -4\n"},
      {{"call", "sum", ""}, "l 0\n"},
      {{"call", "reverse", "abc"}, "C cba\n"},
      {{"call", "scale", "2", "1.5,-1"}, "D 3,-2\n"},
  };
  for (const auto& c : cases) {
    std::string out;
    EXPECT_TRUE(ExitedWithCode(Srpc(c.args, &out), 0)) << out;
    EXPECT_EQ(c.expect, out) << c.args[1];
  }
}

TEST(SrpcToolTest, PassesAFileAsAHandle) {
  char path[] = "/tmp/srpc_tool_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(5, write(fd, "hello", 5));
  close(fd);
  std::string out;
  EXPECT_TRUE(ExitedWithCode(Srpc({"call", "read", path}, &out), 0)) << out;
  EXPECT_EQ("C hello\n", out);
  unlink(path);
}

TEST(SrpcToolTest, ReportsErrorsWithAnExitStatus) {
  std::string out;
  EXPECT_TRUE(ExitedWithCode(Srpc({"call", "fail"}, &out), 1));
  EXPECT_EQ("error 268 application error\n", out);
  out.clear();
  EXPECT_TRUE(ExitedWithCode(Srpc({"call", "add", "2", "x"}, &out), 1));
  EXPECT_NE(std::string::npos, out.find("not a 'i' literal")) << out;
  out.clear();
  EXPECT_TRUE(ExitedWithCode(Srpc({"call", "nothing"}, &out), 1));
  EXPECT_NE(std::string::npos, out.find("no method nothing")) << out;
  out.clear();
  EXPECT_TRUE(ExitedWithCode(
      RunAndCapture(HelperPath("srpc"), {"--bogus"}, 20000, &out), 2));
}

TEST(SrpcToolTest, RunsAScriptFromStandardInput) {
  std::string cmd =
      "printf '# a comment\\ncall add 40 2\\n\\ncall concat a b\\n' | " +
      HelperPath("srpc") + " --launch " + HelperPath("srpc_test_module") +
      " -- script";
  std::string out;
  EXPECT_TRUE(
      ExitedWithCode(RunAndCapture("/bin/sh", {"-c", cmd}, 20000, &out), 0))
      << out;
  EXPECT_EQ("> call\ni 42\n> call\ns ab\n", out);
}

TEST(SrpcToolTest, TraceShowsEachDatagramDecoded) {
  std::string out;
  EXPECT_TRUE(ExitedWithCode(Srpc({"call", "add", "2", "3"}, &out, true), 0))
      << out;
  // The request of the spec's worked example, with request id 2 (discovery
  // was 1), and its 60-byte reply.
  EXPECT_NE(std::string::npos,
            out.find("-> datagram 92 bytes, 0 descriptors: message 76 bytes"))
      << out;
  EXPECT_NE(std::string::npos, out.find("request id=2 rpc=1")) << out;
  EXPECT_NE(std::string::npos, out.find("value i 3")) << out;
  EXPECT_NE(std::string::npos, out.find("<- datagram 60 bytes")) << out;
  EXPECT_NE(std::string::npos, out.find("i 5\n")) << out;
}

}  // namespace
