// Runs each JavaScript test script (plugin/js/test/*.js) in the binding,
// in this process: a script passes if it runs to its end, every test in it
// passed (the harness prints "ALL PASSED n"), and no handler's error went
// uncaught. The scripts get the test module's path, a scratch directory
// and whether the module may run in the sandbox.

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "plugin/js/plugin_js.h"
#include "testing/harness/child_process.h"

namespace {

#if defined(JS_MODULES_ARE_STATIC)
constexpr const char* kSandbox = "sandbox";
#else
constexpr const char* kSandbox = "no-sandbox";
#endif

class JsScriptTest : public ::testing::TestWithParam<const char*> {};

std::string ReadAll(FILE* f) {
  std::string text;
  rewind(f);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    text.append(buf, n);
  return text;
}

TEST_P(JsScriptTest, RunsToTheEndWithEveryTestPassing) {
  char dir[] = "/tmp/js_unittests.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(dir));
  std::string module = harness::HelperPath("js_test_module");
  std::string script =
      harness::HelperPath(std::string("js_tests/") + GetParam() + ".js");
  const char* args[] = {module.c_str(), dir, kSandbox};
  FILE* out = tmpfile();
  ASSERT_NE(nullptr, out);
  PluginJs* js = plugin_js_new(out, out);
  ASSERT_NE(nullptr, js);
  int r = plugin_js_run_file(js, script.c_str(), 3, args);
  int uncaught = plugin_js_uncaught_errors(js);
  plugin_js_free(js);
  std::string text = ReadAll(out);
  fclose(out);
  std::string cleanup = std::string("rm -rf ") + dir;
  ASSERT_EQ(0, system(cleanup.c_str()));

  EXPECT_EQ(0, r) << text;
  EXPECT_EQ(0, uncaught) << text;
  EXPECT_NE(std::string::npos, text.find("ALL PASSED")) << text;
  EXPECT_EQ(std::string::npos, text.find("FAIL")) << text;
}

INSTANTIATE_TEST_SUITE_P(Scripts,
                         JsScriptTest,
                         ::testing::Values("async",
                                           "binary",
                                           "broker",
                                           "cancel",
                                           "descriptors",
                                           "errors",
                                           "gc",
                                           "proxies"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });

// A script that throws, and one whose handler throws, fail: the harness
// cannot pass a broken script.
TEST(JsShellTest, ErrorsAreReportedAndFail) {
  char path[] = "/tmp/js_unittests_throw.XXXXXX.js";
  int fd = mkstemps(path, 3);
  ASSERT_GE(fd, 0);
  const char kThrow[] = "print('before'); throw new TypeError('on purpose');";
  ASSERT_EQ(static_cast<ssize_t>(sizeof(kThrow) - 1),
            write(fd, kThrow, sizeof(kThrow) - 1));
  close(fd);
  FILE* out = tmpfile();
  PluginJs* js = plugin_js_new(out, out);
  EXPECT_EQ(1, plugin_js_run_file(js, path, 0, nullptr));
  plugin_js_free(js);
  std::string text = ReadAll(out);
  fclose(out);
  EXPECT_NE(std::string::npos, text.find("before")) << text;
  EXPECT_NE(std::string::npos, text.find("TypeError: on purpose")) << text;
  EXPECT_EQ(2, plugin_js_run_script("/nonexistent/script.js", 0, nullptr));
  unlink(path);
}

}  // namespace
