// Main-thread calls: FIFO across threads, the built-in loop, the embedder's
// hook, watched descriptors, and the cancel flag.

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "plugin/host/plugin_host.h"

namespace {

struct Record {
  std::vector<std::pair<int, int>> seen;  // (thread, sequence)
  std::thread::id main;
  bool all_on_main = true;
};

struct Item {
  Record* record;
  int thread;
  int seq;
};

void RecordTask(void* arg) {
  Item* item = static_cast<Item*>(arg);
  item->record->seen.emplace_back(item->thread, item->seq);
  if (std::this_thread::get_id() != item->record->main)
    item->record->all_on_main = false;
  delete item;
}

TEST(PluginHostLoopTest, TasksFromManyThreadsRunOnTheMainThreadInOrder) {
  PluginHost* host = plugin_host_new(nullptr);
  ASSERT_NE(nullptr, host);
  Record record;
  record.main = std::this_thread::get_id();
  const int kThreads = 8, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; i++) {
        ASSERT_EQ(PLUGIN_OK, plugin_call_on_main_thread(
                                 host, RecordTask, new Item{&record, t, i}));
      }
    });
  }
  size_t ran = 0;
  while (ran < static_cast<size_t>(kThreads * kPerThread))
    ran += plugin_host_run_until_idle(host);
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(0u, plugin_host_run_until_idle(host));
  ASSERT_EQ(static_cast<size_t>(kThreads * kPerThread), record.seen.size());
  EXPECT_TRUE(record.all_on_main);
  std::vector<int> next(kThreads, 0);
  for (auto [t, seq] : record.seen) {
    ASSERT_EQ(next[static_cast<size_t>(t)], seq) << "thread " << t;
    next[static_cast<size_t>(t)]++;
  }
  plugin_host_free(host);
}

void Quit(void* arg) {
  plugin_host_quit(static_cast<PluginHost*>(arg));
}

TEST(PluginHostLoopTest, RunUntilQuitFromAnotherThread) {
  PluginHost* host = plugin_host_new(nullptr);
  std::atomic<int> count{0};
  std::thread poster([&] {
    for (int i = 0; i < 100; i++) {
      plugin_call_on_main_thread(
          host, [](void* c) { (*static_cast<std::atomic<int>*>(c))++; },
          &count);
    }
    plugin_call_on_main_thread(host, Quit, host);
  });
  EXPECT_EQ(PLUGIN_OK, plugin_host_run(host));
  poster.join();
  EXPECT_EQ(100, count.load());
  // A quit before run makes run return at once.
  plugin_host_quit(host);
  EXPECT_EQ(PLUGIN_OK, plugin_host_run(host));
  plugin_host_free(host);
}

TEST(PluginHostLoopTest, MainThreadOnlyCallsRefuseOtherThreads) {
  PluginHost* host = plugin_host_new(nullptr);
  std::thread([&] {
    EXPECT_EQ(PLUGIN_ERROR_WRONG_THREAD, plugin_host_run(host));
  }).join();
  plugin_host_free(host);
}

struct Hooked {
  std::atomic<int> hooks{0};
};

TEST(PluginHostLoopTest, EmbedderHookIsToldOncePerBatch) {
  Hooked hooked;
  PluginHostOptions options = {};
  options.post_hook = [](void* u) { static_cast<Hooked*>(u)->hooks++; };
  options.hook_user = &hooked;
  PluginHost* host = plugin_host_new(&options);
  ASSERT_NE(nullptr, host);
  int ran = 0;
  auto inc = [](void* r) { (*static_cast<int*>(r))++; };
  for (int i = 0; i < 10; i++)
    plugin_call_on_main_thread(host, inc, &ran);
  EXPECT_EQ(1, hooked.hooks.load());  // queue went from empty once
  EXPECT_EQ(10u, plugin_host_run_pending(host));
  EXPECT_EQ(10, ran);
  plugin_call_on_main_thread(host, inc, &ran);
  EXPECT_EQ(2, hooked.hooks.load());
  EXPECT_EQ(1u, plugin_host_run_pending(host));
  plugin_host_free(host);
}

TEST(PluginHostLoopTest, TasksQueuedByATaskRunInTheNextBatch) {
  PluginHost* host = plugin_host_new(nullptr);
  static PluginHost* g_host;
  static int g_ran;
  g_host = host;
  g_ran = 0;
  plugin_call_on_main_thread(
      host,
      [](void*) {
        g_ran++;
        plugin_call_on_main_thread(
            g_host, [](void*) { g_ran++; }, nullptr);
      },
      nullptr);
  EXPECT_EQ(1u, plugin_host_run_pending(host));
  EXPECT_EQ(1, g_ran);
  EXPECT_EQ(1u, plugin_host_run_until_idle(host));
  EXPECT_EQ(2, g_ran);
  plugin_host_free(host);
}

struct Watched {
  PluginHost* host;
  int reads = 0;
};

TEST(PluginHostLoopTest, WatchedDescriptorsWakeTheLoop) {
  PluginHost* host = plugin_host_new(nullptr);
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  Watched w{host};
  ASSERT_EQ(PLUGIN_OK, plugin_host_watch_fd(
                           host, p[0], EPOLLIN,
                           [](int fd, uint32_t events, void* u) {
                             auto* watched = static_cast<Watched*>(u);
                             char c;
                             if ((events & EPOLLIN) && read(fd, &c, 1) == 1)
                               watched->reads++;
                             if (watched->reads == 3)
                               plugin_host_quit(watched->host);
                           },
                           &w));
  std::thread writer([&] {
    for (int i = 0; i < 3; i++) {
      usleep(2000);
      ASSERT_EQ(1, write(p[1], "x", 1));
    }
  });
  EXPECT_EQ(PLUGIN_OK, plugin_host_run(host));
  writer.join();
  EXPECT_EQ(3, w.reads);
  EXPECT_EQ(PLUGIN_OK, plugin_host_unwatch_fd(host, p[0]));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT, plugin_host_unwatch_fd(host, p[0]));
  close(p[0]);
  close(p[1]);
  plugin_host_free(host);
}

struct Pair {
  PluginHost* host;
  int fds[2][2];
  int calls = 0;
};

// Both descriptors are ready in the same batch; the first callback to run
// unwatches and closes the other: the loop must not call it.
TEST(PluginHostLoopTest, UnwatchingAnotherDescriptorInTheSameBatchIsSafe) {
  PluginHost* host = plugin_host_new(nullptr);
  Pair pair{host, {{-1, -1}, {-1, -1}}};
  ASSERT_EQ(0, pipe2(pair.fds[0], O_CLOEXEC));
  ASSERT_EQ(0, pipe2(pair.fds[1], O_CLOEXEC));
  auto cb = [](int fd, uint32_t, void* u) {
    Pair* p = static_cast<Pair*>(u);
    p->calls++;
    int other = fd == p->fds[0][0] ? p->fds[1][0] : p->fds[0][0];
    plugin_host_unwatch_fd(p->host, other);
    plugin_host_unwatch_fd(p->host, fd);
    plugin_host_quit(p->host);
  };
  ASSERT_EQ(PLUGIN_OK,
            plugin_host_watch_fd(host, pair.fds[0][0], EPOLLIN, cb, &pair));
  ASSERT_EQ(PLUGIN_OK,
            plugin_host_watch_fd(host, pair.fds[1][0], EPOLLIN, cb, &pair));
  ASSERT_EQ(1, write(pair.fds[0][1], "x", 1));
  ASSERT_EQ(1, write(pair.fds[1][1], "x", 1));
  EXPECT_EQ(PLUGIN_OK, plugin_host_run(host));
  EXPECT_EQ(1, pair.calls);
  for (auto& f : pair.fds) {
    close(f[0]);
    close(f[1]);
  }
  plugin_host_free(host);
}

TEST(PluginHostLoopTest, FreeRunsTheTasksStillQueued) {
  PluginHost* host = plugin_host_new(nullptr);
  int ran = 0;
  plugin_call_on_main_thread(
      host, [](void* r) { (*static_cast<int*>(r))++; }, &ran);
  plugin_host_free(host);
  EXPECT_EQ(1, ran);
}

TEST(PluginHostLoopTest, WatchErrorsAndWatchesLeftAtFree) {
  PluginHost* host = plugin_host_new(nullptr);
  auto cb = [](int, uint32_t, void*) {};
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_host_watch_fd(host, -1, EPOLLIN, cb, nullptr));
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_host_watch_fd(host, 0, EPOLLIN, nullptr, nullptr));
  EXPECT_EQ(PLUGIN_ERROR_SYSTEM, plugin_host_watch_fd(host, 1000, EPOLLIN, cb,
                                                      nullptr));  // not open
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  EXPECT_EQ(PLUGIN_OK, plugin_host_watch_fd(host, p[0], EPOLLIN, cb, nullptr));
  plugin_host_free(host);  // the watch goes with the host
  close(p[0]);
  close(p[1]);
}

TEST(PluginHostLoopTest, BadMethodTableIsRefused) {
  SrpcMethod bad[] = {{"no colons", nullptr}};
  PluginHostOptions options = {};
  options.methods = bad;
  options.num_methods = 1;
  errno = 0;
  EXPECT_EQ(nullptr, plugin_host_new(&options));
  EXPECT_EQ(EINVAL, errno);
  EXPECT_EQ(PLUGIN_ERROR_INVALID_ARGUMENT,
            plugin_call_on_main_thread(nullptr, Quit, nullptr));
}

}  // namespace
