// plugin_perftests: the plugin layer against raw sockets and eventfds doing
// the same hops, measured interleaved in one run.
//
//   plugin_perftests [--quick] [--csv FILE]
//
// Rows:
//  - module -> host main-thread callback, round trip: a 16 B postMessage to
//    an echo module and its echo delivered to on_message on the main
//    thread; against a raw datagram to an echo process whose reply a reader
//    thread hands to the main thread through an eventfd.
//  - postMessage throughput, module -> host main thread and host ->
//    module, at 16 B and 64 KiB; against raw datagrams through the same
//    hops.
//  - launch to first call (launch, one call, shutdown); against starting
//    and reaping the same program with no protocol at all.
//  - a proxy's invoke of add:ii:i against a plain SRPC call of it.
//  - brokered open+close of a file (the host's main thread serving, this
//    thread as the module) against a direct open+close.

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "imc/imc.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_client.h"
#include "plugin/host/plugin_host.h"
#include "testing/perf/perf.h"

namespace {

std::string ModulePath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string self(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return self.substr(0, self.rfind('/') + 1) + "plugin_test_module";
}

// ---- The raw baseline: a peer process, a reader thread, an eventfd. ----

// Peer: echoes datagrams; a datagram of exactly 8 bytes "burst" command
// {count, size} is answered by `count` datagrams of `size` bytes; a "sink"
// command {count | 0x80000000, 0} reads `count` datagrams and answers one.
void RawPeer(int fd) {
  std::vector<char> buf(IMC_MAX_DATA_BYTES);
  for (;;) {
    NaClImcMsgIoVec iov = {buf.data(), buf.size()};
    NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
    int n = imc_recvmsg(fd, &msg, 0);
    if (n <= 0)
      return;
    uint32_t cmd[2];
    if (n == 8 && buf[0] == '#') {
      memcpy(cmd, buf.data(), 8);
      uint32_t count = cmd[0] >> 8;
      uint32_t size = cmd[1];
      if (size == 0) {  // sink
        for (uint32_t i = 0; i < count; i++) {
          iov = {buf.data(), buf.size()};
          imc_recvmsg(fd, &msg, 0);
        }
        iov = {buf.data(), 1};
        imc_sendmsg(fd, &msg, 0);
      } else {  // burst
        for (uint32_t i = 0; i < count; i++) {
          iov = {buf.data(), size};
          imc_sendmsg(fd, &msg, 0);
        }
      }
      continue;
    }
    iov.length = static_cast<size_t>(n);
    imc_sendmsg(fd, &msg, 0);
  }
}

// The host side of the baseline: what a minimal hand-written bridge does.
class RawBridge {
 public:
  explicit RawBridge(int fd) : fd_(fd) {
    event_ = eventfd(0, EFD_CLOEXEC);
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev = {};
    ev.events = EPOLLIN;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, event_, &ev);
    reader_ = std::thread([this] { Read(); });
  }
  ~RawBridge() {
    shutdown(fd_, SHUT_RDWR);
    reader_.join();
    close(fd_);
    close(event_);
    close(epoll_);
  }
  void Send(const void* data, size_t len) {
    NaClImcMsgIoVec iov = {const_cast<void*>(data), len};
    NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
    imc_sendmsg(fd_, &msg, 0);
  }
  // Main thread: waits for messages and takes them; returns how many.
  size_t Take() {
    epoll_event ev;
    epoll_wait(epoll_, &ev, 1, -1);
    uint64_t n;
    (void)!read(event_, &n, sizeof(n));
    std::deque<std::vector<char>> got;
    {
      std::lock_guard<std::mutex> lock(mu_);
      got.swap(queue_);
    }
    return got.size();
  }
  int fd() const { return fd_; }

 private:
  void Read() {
    std::vector<char> buf(IMC_MAX_DATA_BYTES);
    for (;;) {
      NaClImcMsgIoVec iov = {buf.data(), buf.size()};
      NaClImcMsgHdr msg = {&iov, 1, nullptr, 0, 0};
      int n = imc_recvmsg(fd_, &msg, 0);
      if (n <= 0)
        return;
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.emplace_back(buf.begin(), buf.begin() + n);
      }
      uint64_t one = 1;
      (void)!write(event_, &one, sizeof(one));
    }
  }
  int fd_;
  int event_;
  int epoll_;
  std::mutex mu_;
  std::deque<std::vector<char>> queue_;
  std::thread reader_;
};

// ---- The plugin side. ----

struct Counter {
  PluginHost* host;
  size_t got = 0;
  size_t want = 0;
};

PluginModule* Launch(PluginHost* host, const char* mode, Counter* counter) {
  std::string path = ModulePath();
  const char* argv[] = {path.c_str(), mode, nullptr};
  PluginLaunchOptions o = {};
  o.path = path.c_str();
  o.argv = argv;
  o.callbacks.user = counter;
  o.callbacks.on_message = [](PluginModule*, PluginMessage* m, int, void* u) {
    Counter* c = static_cast<Counter*>(u);
    if (m != nullptr && ++c->got == c->want)
      plugin_host_quit(c->host);
  };
  PluginModule* m = nullptr;
  int r = plugin_module_launch(host, &o, &m);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "plugin_perftests: launch %s: %s\n", path.c_str(),
            plugin_result_string(r));
    exit(1);
  }
  return m;
}

// Runs the host's loop until `n` more messages have reached on_message.
void Await(Counter* c, size_t n) {
  c->want = c->got + n;
  if (c->got < c->want)
    plugin_host_run(c->host);
}

int CallInts(PluginModule* m, const char* name, std::vector<int> ints) {
  std::vector<SrpcArg> in(ints.size());
  for (size_t i = 0; i < ints.size(); i++) {
    in[i].type = SRPC_TYPE_INT;
    in[i].u.ival = ints[i];
  }
  SrpcArg out[3] = {};
  out[0].type = out[1].type = out[2].type = SRPC_TYPE_LONG;
  bool drain = strcmp(name, "drain") == 0;
  return plugin_module_call(m, name, -1, in.data(), in.size(), out,
                            drain ? 3 : 0);
}

std::string Size(size_t n) {
  return n >= 1024 ? std::to_string(n >> 10) + " KiB"
                   : std::to_string(n) + " B";
}

// Per message instead of per burst of `count`.
perf::Comparison PerMessage(perf::Comparison c, int count) {
  for (double& v : c.baseline_ns)
    v /= count;
  for (double& v : c.subject_ns)
    v /= count;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const perf::Options options = perf::ParseOptions(argc, argv);
  const std::string& csv = options.csv;
  const int reps = options.repetitions;
  const int scale = options.scale;

  RawBridge raw(perf::ForkPeer(RawPeer));
  PluginHost* host = plugin_host_new(nullptr);
  Counter echo_count{host}, manual_count{host};
  PluginModule* echo = Launch(host, "--echo", &echo_count);
  PluginModule* manual = Launch(host, "--manual", &manual_count);

  printf("plugin_perftests: the plugin layer against raw sockets + eventfd\n");
  perf::PrintHeader("raw", "plugin");
  char small[16] = {};
  perf::Print(perf::Compare(
                  "module->main thread callback, round trip 16 B",
                  [&] {
                    raw.Send(small, sizeof(small));
                    raw.Take();
                  },
                  [&] {
                    plugin_module_post(echo, small, sizeof(small), nullptr, 0);
                    Await(&echo_count, 1);
                  },
                  10000 / scale, reps),
              csv);

  std::vector<char> body(64 * 1024, 'p');
  for (size_t size : {size_t{16}, size_t{64} * 1024}) {
    const int count = size == 16 ? 2000 : 128;
    const int iterations = std::max(2, 20 / scale);
    const uint32_t burst[2] = {(static_cast<uint32_t>(count) << 8) | '#',
                               static_cast<uint32_t>(size)};
    const uint32_t sink[2] = {(static_cast<uint32_t>(count) << 8) | '#', 0};
    perf::Print(
        PerMessage(
            perf::Compare(
                "postMessage module->host " + Size(size),
                [&] {
                  raw.Send(burst, sizeof(burst));
                  for (size_t got = 0; got < static_cast<size_t>(count);)
                    got += raw.Take();
                },
                [&] {
                  CallInts(manual, "post", {count, static_cast<int>(size)});
                  Await(&manual_count, static_cast<size_t>(count));
                },
                iterations, reps),
            count),
        csv);
    perf::Print(PerMessage(perf::Compare(
                               "postMessage host->module " + Size(size),
                               [&] {
                                 raw.Send(sink, sizeof(sink));
                                 for (int i = 0; i < count; i++)
                                   raw.Send(body.data(), size);
                                 raw.Take();
                               },
                               [&] {
                                 for (int i = 0; i < count; i++)
                                   plugin_module_post(manual, body.data(), size,
                                                      nullptr, 0);
                                 CallInts(manual, "drain", {count, -1});
                               },
                               iterations, reps),
                           count),
                csv);
  }

  // A proxy's invoke against a plain SRPC call of the same method.
  PluginObjects* objects = nullptr;
  PluginObject* root = nullptr;
  if (plugin_module_objects(manual, &objects) != PLUGIN_OK ||
      plugin_objects_root(objects, 10000, &root) != PLUGIN_OBJECT_OK) {
    fprintf(stderr, "plugin_perftests: no root object\n");
    return 1;
  }
  perf::PrintHeader("srpc call", "proxy");
  perf::Print(
      perf::Compare(
          "add:ii:i",
          [&] {
            int32_t sum;
            srpc_invoke(plugin_module_channel(manual), "add", 1, 2, &sum);
          },
          [&] {
            SrpcArg in[2] = {};
            in[0].type = in[1].type = SRPC_TYPE_INT;
            SrpcArg out = {};
            out.type = SRPC_TYPE_INT;
            plugin_object_invoke(root, "add", -1, nullptr, in, 2, &out, 1);
          },
          20000 / scale, reps),
      csv);
  plugin_object_unref(root);

  perf::PrintHeader("raw", "plugin");
  std::string path = ModulePath();
  perf::Print(perf::Compare(
                  "launch + first call + shutdown vs fork/exec/wait",
                  [&] {
                    pid_t pid = fork();
                    if (pid == 0) {
                      execl(path.c_str(), path.c_str(), "--exit-now", "0",
                            static_cast<char*>(nullptr));
                      _exit(127);
                    }
                    waitpid(pid, nullptr, 0);
                  },
                  [&] {
                    Counter c{host};
                    PluginModule* m = Launch(host, "--manual", &c);
                    CallInts(m, "sleep", {0});
                    plugin_module_shutdown(m, 1000, nullptr);
                    plugin_module_free(m);
                  },
                  std::max(3, 40 / scale), reps),
              csv);

  plugin_module_free(manual);
  plugin_module_free(echo);
  plugin_host_run_until_idle(host);
  plugin_host_free(host);

  // The broker: served by a host whose main thread is `server`; the client
  // is this thread, as a module thread would be.
  char dir[] = "/tmp/plugin_perf_XXXXXX";
  if (mkdtemp(dir) == nullptr)
    return 1;
  std::string file = std::string(dir) + "/f";
  close(open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  std::mutex mu;
  std::condition_variable cv;
  PluginHost* broker_host = nullptr;
  int broker = -1;
  std::thread server([&] {
    PluginHost* h = plugin_host_new(nullptr);
    BrokerPolicy* policy = broker_policy_new();
    broker_policy_allow(policy, dir, BROKER_ALLOW_READ | BROKER_RECURSIVE);
    BrokerServer* s = nullptr;
    int fd = broker_serve(h, policy, nullptr, nullptr, &s);
    {
      std::lock_guard<std::mutex> lock(mu);
      broker_host = h;
      broker = fd;
      cv.notify_all();
    }
    plugin_host_run(h);
    broker_server_free(s);
    plugin_host_free(h);
    broker_policy_free(policy);
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return broker_host != nullptr; });
  }
  perf::PrintHeader("direct", "brokered");
  perf::Print(
      perf::Compare(
          "open+close, broker on the main thread",
          [&] { close(open(file.c_str(), O_RDONLY | O_CLOEXEC)); },
          [&] { close(broker_open_at(broker, file.c_str(), O_RDONLY, 0)); },
          20000 / scale, reps),
      csv);
  close(broker);
  plugin_host_quit(broker_host);
  server.join();
  BrokerPolicy* policy = broker_policy_new();
  broker_policy_allow(policy, dir, BROKER_ALLOW_READ | BROKER_RECURSIVE);
  BrokerServer* threaded = nullptr;
  broker = broker_serve_on_thread(policy, nullptr, nullptr, &threaded);
  perf::Print(
      perf::Compare(
          "open+close, broker on its own thread",
          [&] { close(open(file.c_str(), O_RDONLY | O_CLOEXEC)); },
          [&] { close(broker_open_at(broker, file.c_str(), O_RDONLY, 0)); },
          20000 / scale, reps),
      csv);
  close(broker);
  broker_server_free(threaded);
  broker_policy_free(policy);
  unlink(file.c_str());
  rmdir(dir);
  return 0;
}
