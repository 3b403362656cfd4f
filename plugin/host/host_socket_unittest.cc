// make_socket: every datagram reaches the main-thread callback in order
// with its descriptors, the end is reported once, replies go back, and
// many sockets live at once.

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "plugin/host/plugin_host.h"

namespace {

struct Log {
  std::vector<std::string> messages;
  std::vector<int> fds;  // taken from the messages
  int ends = 0;
  int end_error = -1;
  bool reply = false;
  bool close_on_first = false;
  PluginSocket* socket = nullptr;
};

void OnMessage(PluginSocket* s, PluginMessage* m, int error, void* user) {
  Log* log = static_cast<Log*>(user);
  if (m == nullptr) {
    log->ends++;
    log->end_error = error;
    plugin_socket_close(s);
    log->socket = nullptr;
    return;
  }
  log->messages.emplace_back(reinterpret_cast<char*>(m->data), m->len);
  for (size_t i = 0; i < m->num_fds; i++) {
    log->fds.push_back(m->fds[i]);
    m->fds[i] = -1;
  }
  if (log->reply) {
    std::string r = "re:" + log->messages.back();
    EXPECT_EQ(PLUGIN_OK, plugin_socket_send(s, r.data(), r.size(), nullptr, 0));
  }
  if (log->close_on_first) {
    plugin_socket_close(s);
    log->socket = nullptr;
  }
}

template <typename Pred>
bool RunUntil(PluginHost* host, Pred done, int timeout_ms = 10000) {
  for (int i = 0; i < timeout_ms * 2; i++) {
    plugin_host_run_until_idle(host);
    if (done())
      return true;
    usleep(500);
  }
  return false;
}

TEST(PluginSocketTest, DeliversBytesAndDescriptorsInOrderAndTheEndOnce) {
  PluginHost* host = plugin_host_new(nullptr);
  Log log;
  int fd = plugin_make_socket(host, OnMessage, &log, &log.socket);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(imc_test::IsCloseOnExec(fd));
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  const int kCount = 1000;
  std::thread module([&] {
    for (int i = 0; i < kCount; i++) {
      std::vector<int> fds;
      if (i % 100 == 0)
        fds = {p[0], p[1]};
      ASSERT_GT(imc_test::Send(fd, "m" + std::to_string(i), fds), 0);
    }
    close(fd);
  });
  ASSERT_TRUE(RunUntil(host, [&] { return log.ends > 0; }));
  module.join();
  ASSERT_EQ(static_cast<size_t>(kCount), log.messages.size());
  for (int i = 0; i < kCount; i++)
    EXPECT_EQ("m" + std::to_string(i), log.messages[static_cast<size_t>(i)]);
  ASSERT_EQ(20u, log.fds.size());
  for (size_t i = 0; i < log.fds.size(); i += 2) {
    EXPECT_TRUE(imc_test::SameFile(p[0], log.fds[i]));
    EXPECT_TRUE(imc_test::SameFile(p[1], log.fds[i + 1]));
  }
  for (int f : log.fds)
    close(f);
  EXPECT_EQ(1, log.ends);
  EXPECT_EQ(0, log.end_error);
  RunUntil(host, [] { return true; });
  EXPECT_EQ(1, log.ends);
  close(p[0]);
  close(p[1]);
  plugin_host_free(host);
}

TEST(PluginSocketTest, CallbackRepliesOnTheSameSocket) {
  PluginHost* host = plugin_host_new(nullptr);
  Log log;
  log.reply = true;
  int fd = plugin_make_socket(host, OnMessage, &log, &log.socket);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(4, imc_test::Send(fd, "open"));
  ASSERT_TRUE(RunUntil(host, [&] { return log.messages.size() == 1; }));
  imc_test::Received r = imc_test::Receive(fd);
  EXPECT_EQ("re:open", r.bytes);
  close(fd);
  ASSERT_TRUE(RunUntil(host, [&] { return log.ends == 1; }));
  plugin_host_free(host);
}

TEST(PluginSocketTest, OversizedDatagramEndsTheSocketWithEmsgsize) {
  PluginHost* host = plugin_host_new(nullptr);
  Log log;
  int fd = plugin_make_socket(host, OnMessage, &log, &log.socket);
  int sndbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  std::string huge(IMC_MAX_DATA_BYTES + 10, 'x');
  ASSERT_EQ(static_cast<ssize_t>(huge.size()),
            send(fd, huge.data(), huge.size(), MSG_NOSIGNAL));
  ASSERT_TRUE(RunUntil(host, [&] { return log.ends == 1; }));
  EXPECT_EQ(EMSGSIZE, log.end_error);
  EXPECT_TRUE(log.messages.empty());
  close(fd);
  plugin_host_free(host);
}

TEST(PluginSocketTest, CloseFromTheCallbackStopsDeliveries) {
  PluginHost* host = plugin_host_new(nullptr);
  Log log;
  log.close_on_first = true;
  int fd = plugin_make_socket(host, OnMessage, &log, &log.socket);
  for (int i = 0; i < 50; i++)
    ASSERT_EQ(1, imc_test::Send(fd, "x"));
  ASSERT_TRUE(RunUntil(host, [&] { return !log.messages.empty(); }));
  RunUntil(
      host, [] { return false; }, 50);
  EXPECT_EQ(1u, log.messages.size());
  EXPECT_EQ(0, log.ends);
  // The host's end is gone: the module sees the socket closed.
  EXPECT_EQ(-1, imc_test::Send(fd, "y"));
  close(fd);
  plugin_host_free(host);
}

TEST(PluginSocketTest, HundredsOfSocketsAtOnce) {
  PluginHost* host = plugin_host_new(nullptr);
  const int kSockets = 200;
  std::vector<Log> logs(kSockets);
  std::vector<int> fds;
  for (int i = 0; i < kSockets; i++) {
    int fd = plugin_make_socket(host, OnMessage, &logs[static_cast<size_t>(i)],
                                &logs[static_cast<size_t>(i)].socket);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < kSockets; i++)
      ASSERT_GT(imc_test::Send(fds[static_cast<size_t>(i)],
                               std::to_string(i) + "." + std::to_string(round)),
                0);
  }
  for (int fd : fds)
    close(fd);
  ASSERT_TRUE(RunUntil(host, [&] {
    for (const Log& l : logs) {
      if (l.ends == 0)
        return false;
    }
    return true;
  }));
  for (int i = 0; i < kSockets; i++) {
    const Log& l = logs[static_cast<size_t>(i)];
    ASSERT_EQ(3u, l.messages.size());
    for (int round = 0; round < 3; round++)
      EXPECT_EQ(std::to_string(i) + "." + std::to_string(round),
                l.messages[static_cast<size_t>(round)]);
  }
  plugin_host_free(host);
}

TEST(PluginSocketTest, BadArgumentsFail) {
  PluginHost* host = plugin_host_new(nullptr);
  errno = 0;
  EXPECT_EQ(-1, plugin_make_socket(host, nullptr, nullptr, nullptr));
  EXPECT_EQ(EINVAL, errno);
  plugin_host_free(host);
}

}  // namespace
