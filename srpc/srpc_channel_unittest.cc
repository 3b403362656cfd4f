// Channels, services and clients end to end over real socket pairs (and a
// real process where a peer must die): every type both ways, every result
// code from a real situation, concurrent calls, deferred completion,
// upcalls, peer death, big messages, handles used by the receiver.

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "srpc/srpc_wire.h"
#include "testing/harness/child_process.h"
#include "testing/harness/descriptors.h"

namespace {

// --- The test service. ---

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

// Echoes every type: each result is its input.
void EchoAll(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  for (int i = 0; i < 10; i++) {
    switch (in[i].type) {
      case SRPC_TYPE_STRING:
        srpc_arg_set_string(&out[i], in[i].u.str);
        break;
      case SRPC_TYPE_HANDLE:
        out[i].u.hval = dup(in[i].u.hval);
        break;
      case SRPC_TYPE_CHAR_ARRAY:
      case SRPC_TYPE_INT_ARRAY:
      case SRPC_TYPE_LONG_ARRAY:
      case SRPC_TYPE_DOUBLE_ARRAY: {
        void* p = srpc_arg_alloc(&out[i], in[i].count);
        if (p == nullptr && in[i].count > 0) {
          srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
          return;
        }
        if (in[i].count > 0)
          memcpy(p, in[i].u.ptr,
                 in[i].count * srpc_type_element_size(in[i].type));
        break;
      }
      default:
        out[i].u = in[i].u;
    }
  }
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Fail(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
}

void Stop(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_BREAK);
}

// A thread that completes deferred calls, in the order they were deferred.
// JoinDeferred (each test's TearDown) waits until it has completed them all.
class Completer {
 public:
  void Push(SrpcRpc* rpc, SrpcArg* out, int32_t v) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable())
      thread_ = std::thread([this] { Run(); });
    queue_.push_back({rpc, out, v});
    cv_.notify_all();
  }
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!thread_.joinable())
      return;
    stop_ = true;
    cv_.notify_all();
    lock.unlock();
    thread_.join();
    stop_ = false;
  }

 private:
  struct Item {
    SrpcRpc* rpc;
    SrpcArg* out;
    int32_t v;
  };
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      Item item = queue_.front();
      queue_.pop_front();
      lock.unlock();
      usleep(200);
      item.out[0].u.ival = 2 * item.v;
      srpc_rpc_complete(item.rpc, SRPC_RESULT_OK);
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::thread thread_;
  bool stop_ = false;
};

Completer g_completer;

void JoinDeferred() {
  g_completer.Drain();
}

// Completes later, from another thread.
void Defer(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  g_completer.Push(rpc, out, in[0].u.ival);
}

// Completes with BREAK later, from another thread.
void DeferBreak(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  std::thread([rpc] {
    usleep(20000);
    srpc_rpc_complete(rpc, SRPC_RESULT_BREAK);
  }).detach();
}

// Keeps every call until ReleaseHeld().
std::mutex g_held_mu;
std::vector<SrpcRpc*> g_held;

void Hold(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  std::lock_guard<std::mutex> lock(g_held_mu);
  g_held.push_back(rpc);
}

size_t ReleaseHeld() {
  std::vector<SrpcRpc*> held;
  {
    std::lock_guard<std::mutex> lock(g_held_mu);
    held.swap(g_held);
  }
  for (SrpcRpc* rpc : held)
    srpc_rpc_complete(rpc, SRPC_RESULT_OK);
  return held.size();
}

// Connects to the SocketAddress it is given and says "hi".
void ConnectTo(SrpcRpc* rpc, SrpcArg* in, SrpcArg*, void*) {
  int conn = imc_connect(in[0].u.hval);
  int r = conn >= 0 && imc_test::Send(conn, "hi") == 2 ? SRPC_RESULT_OK
                                                       : SRPC_RESULT_APP_ERROR;
  if (conn >= 0)
    close(conn);
  srpc_rpc_complete(rpc, r);
}

// Calls "twice" back on the caller, then answers twice(x) + 1.
void Callback(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  SrpcArg arg = {};
  arg.type = SRPC_TYPE_INT;
  arg.u.ival = in[0].u.ival;
  SrpcArg result = {};
  result.type = SRPC_TYPE_INT;
  int r = srpc_invoke_args(srpc_rpc_channel(rpc), 1, &arg, 1, &result, 1);
  out[0].u.ival = result.u.ival + 1;
  srpc_rpc_complete(rpc, r == SRPC_RESULT_OK ? SRPC_RESULT_OK : r);
}

void Twice(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = 2 * in[0].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

// Writes "srpc" at the start of the shared memory it is given.
void ShmWrite(SrpcRpc* rpc, SrpcArg* in, SrpcArg*, void*) {
  size_t size = 0;
  int r = SRPC_RESULT_APP_ERROR;
  if (imc_mem_obj_size(in[0].u.hval, &size) == 0) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   in[0].u.hval, 0);
    if (p != MAP_FAILED) {
      memcpy(p, "srpc", 4);
      munmap(p, size);
      r = SRPC_RESULT_OK;
    }
  }
  srpc_rpc_complete(rpc, r);
}

void ExitNow(SrpcRpc*, SrpcArg*, SrpcArg*, void*) {
  _exit(0);
}

const SrpcMethod kMethods[] = {
    {"add:ii:i", Add},
    {"echo_all:bCdDhiIlLs:bCdDhiIlLs", EchoAll},
    {"fail::", Fail},
    {"stop::", Stop},
    {"defer:i:i", Defer},
    {"callback:i:i", Callback},
    {"shm_write:h:", ShmWrite},
    {"exit_now::", ExitNow},
    {"connect_to:h:", ConnectTo},
    {"defer_break::", DeferBreak},
    {"hold::", Hold},
    {"take_handles:hhhhhhhhhh:", Fail},
};
const SrpcMethod kClientMethods[] = {{"twice:i:i", Twice}};

SrpcArg IntArg(int32_t v) {
  SrpcArg a = {};
  a.type = SRPC_TYPE_INT;
  a.u.ival = v;
  return a;
}

SrpcArg Typed(int type) {
  SrpcArg a = {};
  a.type = type;
  return a;
}

// A server channel served by a thread, and a client channel.
class SrpcChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ =
        srpc_service_new(kMethods, sizeof(kMethods) / sizeof(kMethods[0]),
                         nullptr, nullptr, nullptr);
    client_service_ =
        srpc_service_new(kClientMethods, 1, nullptr, nullptr, nullptr);
    ASSERT_NE(nullptr, service_);
    int pair[2];
    ASSERT_EQ(0, imc_socketpair(pair));
    server_ = srpc_channel_new(pair[0], service_, 0);
    client_ = srpc_channel_new(pair[1], client_service_, 0);
    serve_result_ = -1;
    server_thread_ =
        std::thread([this] { serve_result_ = srpc_channel_serve(server_); });
    ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client_));
  }
  void TearDown() override {
    JoinDeferred();
    srpc_channel_free(client_);
    client_ = nullptr;
    if (server_thread_.joinable())
      server_thread_.join();
    srpc_channel_free(server_);
    srpc_service_free(service_);
    srpc_service_free(client_service_);
  }
  int Add(int a, int b, int32_t* sum) {
    return srpc_invoke(client_, "add", a, b, sum);
  }

  SrpcService* service_ = nullptr;
  SrpcService* client_service_ = nullptr;
  SrpcChannel* server_ = nullptr;
  SrpcChannel* client_ = nullptr;
  std::thread server_thread_;
  std::atomic<int> serve_result_;
};

TEST_F(SrpcChannelTest, DiscoveryListsEveryMethodWithDiscoveryFirst) {
  ASSERT_EQ(13u, srpc_channel_method_count(client_));
  EXPECT_STREQ("service_discovery", srpc_channel_method(client_, 0)->name);
  EXPECT_STREQ("C", srpc_channel_method(client_, 0)->outs);
  EXPECT_STREQ("add", srpc_channel_method(client_, 1)->name);
  EXPECT_EQ(1, srpc_channel_lookup(client_, "add"));
  EXPECT_EQ(1, srpc_channel_lookup(client_, "add:ii:i"));
  EXPECT_EQ(-1, srpc_channel_lookup(client_, "add:ii:d"));
  EXPECT_EQ(-1, srpc_channel_lookup(client_, "nope"));
  EXPECT_EQ(nullptr, srpc_channel_method(client_, 13));
}

TEST_F(SrpcChannelTest, CallsByNameSignatureAndNumber) {
  int32_t sum = 0;
  ASSERT_EQ(SRPC_RESULT_OK, Add(2, 3, &sum));
  EXPECT_EQ(5, sum);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "add:ii:i", -7, 3, &sum));
  EXPECT_EQ(-4, sum);
  SrpcArg in[2] = {IntArg(40), IntArg(2)};
  SrpcArg out = Typed(SRPC_TYPE_INT);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke_args(client_, 1, in, 2, &out, 1));
  EXPECT_EQ(42, out.u.ival);
  EXPECT_EQ(SRPC_RESULT_BAD_RPC_NUMBER, srpc_invoke(client_, "missing"));
}

TEST_F(SrpcChannelTest, EveryTypeBothWays) {
  std::vector<char> chars = {'\0', 'x', '\xff'};
  std::vector<double> doubles = {NAN, -INFINITY, -0.0};
  std::vector<int32_t> ints(1000);
  for (int i = 0; i < 1000; i++)
    ints[static_cast<size_t>(i)] = i * i - 500;
  std::vector<int64_t> longs = {INT64_MIN, INT64_MAX};
  std::string long_string(200000, 's');
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

  int b = 0, h = -1;
  double d = 0;
  int32_t i = 0;
  int64_t l = 0;
  char* s = nullptr;
  std::vector<char> c_out(3);
  std::vector<double> d_out(3);
  std::vector<int32_t> i_out(1000);
  std::vector<int64_t> l_out(2);
  uint32_t c_n = 3, d_n = 3, i_n = 1000, l_n = 2;
  int r = srpc_invoke(client_, "echo_all",
                      // inputs: b C d D h i I l L s
                      1, uint32_t{3}, chars.data(), -0.0, uint32_t{3},
                      doubles.data(), devnull, int32_t{-9}, uint32_t{1000},
                      ints.data(), int64_t{1} << 40, uint32_t{2}, longs.data(),
                      long_string.c_str(),
                      // results
                      &b, &c_n, c_out.data(), &d, &d_n, d_out.data(), &h, &i,
                      &i_n, i_out.data(), &l, &l_n, l_out.data(), &s);
  ASSERT_EQ(SRPC_RESULT_OK, r) << srpc_result_string(r);
  EXPECT_EQ(1, b);
  EXPECT_EQ(chars, c_out);
  EXPECT_TRUE(std::signbit(d));
  EXPECT_TRUE(std::isnan(d_out[0]));
  EXPECT_EQ(-INFINITY, d_out[1]);
  EXPECT_TRUE(std::signbit(d_out[2]));
  EXPECT_TRUE(imc_test::SameFile(devnull, h));
  EXPECT_EQ(-9, i);
  EXPECT_EQ(ints, i_out);
  EXPECT_EQ(int64_t{1} << 40, l);
  EXPECT_EQ(longs, l_out);
  ASSERT_NE(nullptr, s);
  EXPECT_EQ(long_string, s);
  free(s);
  close(h);

  // Empty arrays and an empty string.
  c_n = d_n = i_n = l_n = 0;
  r = srpc_invoke(client_, "echo_all", 0, uint32_t{0}, nullptr, 1.5,
                  uint32_t{0}, nullptr, devnull, int32_t{0}, uint32_t{0},
                  nullptr, int64_t{0}, uint32_t{0}, nullptr, "", &b, &c_n,
                  c_out.data(), &d, &d_n, d_out.data(), &h, &i, &i_n,
                  i_out.data(), &l, &l_n, l_out.data(), &s);
  ASSERT_EQ(SRPC_RESULT_OK, r);
  EXPECT_EQ(0u, c_n + d_n + i_n + l_n);
  EXPECT_STREQ("", s);
  free(s);
  close(h);
  close(devnull);
}

TEST_F(SrpcChannelTest, ResultLargerThanTheCallersBufferIsTruncatedNotOverrun) {
  std::vector<int32_t> ints(10, 7);
  std::vector<int32_t> small(4, -1);
  int b, h;
  double d;
  int32_t i;
  int64_t l;
  char* s = nullptr;
  uint32_t c_n = 0, d_n = 0, i_n = 4, l_n = 0;
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int r = srpc_invoke(client_, "echo_all", 0, uint32_t{0}, nullptr, 0.0,
                      uint32_t{0}, nullptr, devnull, 0, uint32_t{10},
                      ints.data(), int64_t{0}, uint32_t{0}, nullptr, "x", &b,
                      &c_n, nullptr, &d, &d_n, nullptr, &h, &i, &i_n,
                      small.data(), &l, &l_n, nullptr, &s);
  // The server sees the caller can take 4 and refuses to send 10.
  EXPECT_EQ(SRPC_RESULT_APP_ERROR, r);
  EXPECT_EQ(std::vector<int32_t>(4, -1), small);
  close(devnull);
}

TEST_F(SrpcChannelTest, EveryErrorIsAnsweredAndTheServerKeepsServing) {
  SrpcArg one[1] = {IntArg(1)};
  SrpcArg three[3] = {IntArg(1), IntArg(2), IntArg(3)};
  SrpcArg doubles[2] = {Typed(SRPC_TYPE_DOUBLE), Typed(SRPC_TYPE_DOUBLE)};
  SrpcArg two[2] = {IntArg(1), IntArg(2)};
  SrpcArg int_out = Typed(SRPC_TYPE_INT);
  SrpcArg double_out = Typed(SRPC_TYPE_DOUBLE);
  EXPECT_EQ(SRPC_RESULT_BAD_RPC_NUMBER,
            srpc_invoke_args(client_, 99, two, 2, &int_out, 1));
  EXPECT_EQ(SRPC_RESULT_TOO_FEW_ARGS,
            srpc_invoke_args(client_, 1, one, 1, &int_out, 1));
  EXPECT_EQ(SRPC_RESULT_TOO_MANY_ARGS,
            srpc_invoke_args(client_, 1, three, 3, &int_out, 1));
  EXPECT_EQ(SRPC_RESULT_IN_ARG_TYPE_MISMATCH,
            srpc_invoke_args(client_, 1, doubles, 2, &int_out, 1));
  EXPECT_EQ(SRPC_RESULT_OUT_ARG_TYPE_MISMATCH,
            srpc_invoke_args(client_, 1, two, 2, &double_out, 1));
  EXPECT_EQ(SRPC_RESULT_APP_ERROR, srpc_invoke(client_, "fail"));
  int32_t sum = 0;
  ASSERT_EQ(SRPC_RESULT_OK, Add(20, 22, &sum));
  EXPECT_EQ(42, sum);
}

TEST_F(SrpcChannelTest, BreakRepliesThenEndsTheServerLoop) {
  EXPECT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "stop"));
  server_thread_.join();
  EXPECT_EQ(SRPC_RESULT_BREAK, serve_result_.load());
}

TEST_F(SrpcChannelTest, DeferredCompletionFromAnotherThread) {
  for (int v = 0; v < 20; v++) {
    int32_t out = 0;
    ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "defer", v, &out));
    EXPECT_EQ(2 * v, out);
  }
}

TEST_F(SrpcChannelTest, UpcallServedByTheWaitingCaller) {
  int32_t out = 0;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "callback", 20, &out));
  EXPECT_EQ(41, out);
}

TEST_F(SrpcChannelTest, ManyThreadsCallAtOnceAndEveryReplyIsTheirs) {
  const int kThreads = 8, kCalls = 10000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kCalls; n++) {
        int32_t sum = -1;
        const char* method = (n % 3 == 0) ? "defer" : "add";
        int r = (n % 3 == 0)
                    ? srpc_invoke(client_, method, t * kCalls + n, &sum)
                    : Add(t * kCalls, n, &sum);
        if (r != SRPC_RESULT_OK ||
            sum != ((n % 3 == 0) ? 2 * (t * kCalls + n) : t * kCalls + n))
          wrong++;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(0, wrong.load());
}

TEST_F(SrpcChannelTest, HandlesAreUsableByTheReceiver) {
  // The receiver connects to a SocketAddress it was given...
  int bound[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "connect_to", bound[1]));
  int conn = imc_accept(bound[0]);
  ASSERT_GE(conn, 0);
  EXPECT_EQ("hi", imc_test::Receive(conn).bytes);
  close(conn);
  // ... and writes into shared memory it was given.
  int shm = imc_mem_obj_create(IMC_MEM_OBJ_GRANULARITY);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "shm_write", shm));
  char* p = static_cast<char*>(
      mmap(nullptr, IMC_MEM_OBJ_GRANULARITY, PROT_READ, MAP_SHARED, shm, 0));
  ASSERT_NE(MAP_FAILED, p);
  EXPECT_EQ(0, memcmp(p, "srpc", 4));
  munmap(p, IMC_MEM_OBJ_GRANULARITY);
  close(shm);
  close(bound[0]);
  close(bound[1]);
}

TEST_F(SrpcChannelTest, SixteenMebibyteEcho) {
  const uint32_t kSize = 16 * 1024 * 1024;
  std::vector<char> in(kSize), out(kSize);
  for (uint32_t i = 0; i < kSize; i++)
    in[i] = static_cast<char>(i * 13);
  int b, h;
  double d;
  int32_t i32;
  int64_t l;
  char* s = nullptr;
  uint32_t c_n = kSize, d_n = 0, i_n = 0, l_n = 0;
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(
      SRPC_RESULT_OK,
      srpc_invoke(client_, "echo_all", 0, kSize, in.data(), 0.0, uint32_t{0},
                  nullptr, devnull, 0, uint32_t{0}, nullptr, int64_t{0},
                  uint32_t{0}, nullptr, "", &b, &c_n, out.data(), &d, &d_n,
                  nullptr, &h, &i32, &i_n, nullptr, &l, &l_n, nullptr, &s));
  EXPECT_EQ(kSize, c_n);
  EXPECT_TRUE(in == out);
  free(s);
  close(h);
  close(devnull);
}

// A NULL buffer asks for the array itself, malloc'd at its exact size: a
// caller that cannot know the size (a script binding) need not allocate
// the whole capacity. The capacity still bounds it.
TEST_F(SrpcChannelTest, ArrayResultsCanArriveAllocated) {
  std::vector<char> chars(70000, 'q');
  std::vector<double> doubles = {1.5, -2.5};
  std::vector<int64_t> longs = {INT64_MIN};
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  SrpcArg in[10] = {};
  const char kTypes[] = "bCdDhiIlLs";
  for (int i = 0; i < 10; i++)
    in[i].type = kTypes[i];
  in[1].u.carr = chars.data();
  in[1].count = static_cast<uint32_t>(chars.size());
  in[3].u.darr = doubles.data();
  in[3].count = 2;
  in[4].u.hval = devnull;
  in[8].u.larr = longs.data();
  in[8].count = 1;
  in[9].u.str = const_cast<char*>("s");
  in[9].count = 1;
  SrpcArg out[10] = {};
  for (int i = 0; i < 10; i++) {
    out[i].type = kTypes[i];
    out[i].count = 1u << 20;  // capacities; no buffers
  }
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke_args(client_, 2, in, 10, out, 10));
  ASSERT_EQ(70000u, out[1].count);
  EXPECT_EQ(0, memcmp(out[1].u.carr, chars.data(), chars.size()));
  ASSERT_EQ(2u, out[3].count);
  EXPECT_EQ(-2.5, out[3].u.darr[1]);
  EXPECT_EQ(0u, out[6].count);  // an empty array: nothing, or a pointer
  ASSERT_EQ(1u, out[8].count);
  EXPECT_EQ(INT64_MIN, out[8].u.larr[0]);
  EXPECT_STREQ("s", out[9].u.str);
  free(out[1].u.ptr);
  free(out[3].u.ptr);
  free(out[6].u.ptr);
  free(out[8].u.ptr);
  free(out[9].u.str);
  close(out[4].u.hval);

  // Over the capacity: the handler cannot even allocate the result (it
  // answers APP_ERROR), and nothing is handed out.
  SrpcArg small[10] = {};
  for (int i = 0; i < 10; i++) {
    small[i].type = kTypes[i];
    small[i].count = 100;
  }
  EXPECT_EQ(SRPC_RESULT_APP_ERROR,
            srpc_invoke_args(client_, 2, in, 10, small, 10));
  EXPECT_EQ(nullptr, small[1].u.ptr);
  close(devnull);
}

TEST_F(SrpcChannelTest, ClosedPeerFailsTheCallPromptly) {
  srpc_invoke(client_, "stop");
  server_thread_.join();
  srpc_channel_free(server_);  // closes the server's end
  server_ = nullptr;
  int32_t sum;
  EXPECT_EQ(SRPC_RESULT_INTERNAL, Add(1, 2, &sum));
  EXPECT_EQ(SRPC_RESULT_INTERNAL, Add(1, 2, &sum));
}

// --- Raw requests, as a peer running other code would send them. ---

class SrpcRawTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ =
        srpc_service_new(kMethods, sizeof(kMethods) / sizeof(kMethods[0]),
                         nullptr, nullptr, nullptr);
    int pair[2];
    ASSERT_EQ(0, imc_socketpair(pair));
    raw_ = pair[1];
    server_ = srpc_channel_new(pair[0], service_, 0);
    server_thread_ =
        std::thread([this] { serve_result_ = srpc_channel_serve(server_); });
  }
  void TearDown() override {
    if (raw_ >= 0)
      close(raw_);
    server_thread_.join();
    srpc_channel_free(server_);
    srpc_service_free(service_);
  }
  // Sends `body` with `fds` and returns the reply.
  SrpcMessage Call(const std::vector<uint8_t>& body,
                   const std::vector<int>& fds = {}) {
    EXPECT_EQ(0, srpc_fragment_send(raw_, body.data(), body.size(), fds.data(),
                                    fds.size(), SRPC_MAX_DATAGRAM_BYTES));
    SrpcReassembly r;
    srpc_reassembly_init(&r, 1 << 20);
    SrpcMessage m = {};
    EXPECT_EQ(1, srpc_fragment_receive(raw_, &r));
    uint8_t* data = nullptr;
    size_t len = 0, num_fds = 0;
    int got_fds[SRPC_MAX_ARGS];
    srpc_reassembly_take(&r, &data, &len, got_fds, &num_fds);
    EXPECT_EQ(SRPC_RESULT_OK,
              srpc_wire_decode(data, len, got_fds, num_fds, 1 << 20, &m));
    free(data);
    return m;
  }
  std::vector<uint8_t> AddRequest(uint32_t id,
                                  uint32_t version = SRPC_PROTOCOL_VERSION) {
    SrpcHeader h = {version, id, 1, 1, SRPC_RESULT_OK, 0, 0};
    SrpcArg t = Typed(SRPC_TYPE_INT);
    SrpcArg v[2] = {IntArg(2), IntArg(3)};
    SrpcBuffer b = {};
    int fds[2];
    size_t n;
    srpc_wire_encode(&h, &t, 1, v, 2, &b, fds, &n);
    std::vector<uint8_t> out(b.data, b.data + b.len);
    srpc_buffer_free(&b);
    return out;
  }
  SrpcService* service_ = nullptr;
  SrpcChannel* server_ = nullptr;
  int raw_ = -1;
  std::thread server_thread_;
  std::atomic<int> serve_result_{-1};
};

TEST_F(SrpcRawTest, OriginalClientWithRequestIdZeroGetsInOrderReplies) {
  for (int n = 0; n < 3; n++) {
    SrpcMessage m = Call(AddRequest(0));
    EXPECT_EQ(0u, m.header.request_id);
    EXPECT_EQ(0u, m.header.is_request);
    EXPECT_EQ(SRPC_RESULT_OK, static_cast<int>(m.header.result));
    ASSERT_EQ(1u, m.header.value_len);
    EXPECT_EQ(5, m.values[0].u.ival);
    srpc_message_free(&m);
  }
}

TEST_F(SrpcRawTest, MalformedRequestsGetTheMatchingCode) {
  struct {
    const char* what;
    std::vector<uint8_t> body;
    int expect;
  } cases[] = {
      {"protocol mismatch", AddRequest(1, 0xc0da0001),
       SRPC_RESULT_PROTOCOL_MISMATCH},
      {"records missing",
       [this] {
         auto b = AddRequest(2);
         b[20] = 3;  // value_len 3, only 2 records
         return b;
       }(),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"unknown tag",
       [this] {
         auto b = AddRequest(3);
         b[28 + 16] = 'x';  // the first value's tag
         return b;
       }(),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"a result of the wrong type, its capacity beyond the limit",
       [this] {
         auto b = AddRequest(4);
         b[28] = 'C';  // the template: a char array of 0xffffffff
         for (int k = 8; k < 12; k++)
           b[28 + static_cast<size_t>(k)] = 0xff;
         return b;
       }(),
       SRPC_RESULT_OUT_ARG_TYPE_MISMATCH},
  };
  for (const auto& c : cases) {
    SrpcMessage m = Call(c.body);
    EXPECT_EQ(c.expect, static_cast<int>(m.header.result)) << c.what;
    EXPECT_EQ(0u, m.header.value_len) << c.what;
    srpc_message_free(&m);
  }
  SrpcMessage m = Call(AddRequest(9));
  EXPECT_EQ(SRPC_RESULT_OK, static_cast<int>(m.header.result));
  srpc_message_free(&m);
}

TEST_F(SrpcRawTest, ExtraDescriptorsAreClosed) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  size_t before = harness::CountOpenDescriptors();
  SrpcMessage m = Call(AddRequest(5), {devnull, devnull, devnull});
  EXPECT_EQ(SRPC_RESULT_OK, static_cast<int>(m.header.result));
  srpc_message_free(&m);
  EXPECT_EQ(before, harness::CountOpenDescriptors());
  close(devnull);
}

TEST_F(SrpcRawTest, UnframeableMessageClosesOnlyThatChannel) {
  // Half of a two-datagram message, then close: the server loop ends with
  // an error, cleanly.
  std::vector<uint8_t> d(64, 0);
  uint32_t total = 100000, chunk = 48;
  memcpy(d.data(), &total, 4);
  memcpy(d.data() + 8, &chunk, 4);
  ASSERT_EQ(64, imc_test::Send(raw_, std::string(d.begin(), d.end())));
  close(raw_);
  raw_ = -1;
  server_thread_.join();
  EXPECT_EQ(SRPC_RESULT_INTERNAL, serve_result_.load());
  server_thread_ = std::thread([] {});
}

TEST(SrpcServiceTest, RefusesBadTablesWithAReason) {
  SrpcSignatureError err;
  size_t index = 99;
  SrpcMethod bad[] = {{"add:ii:i", Add}, {"sub:iz:i", Add}};
  EXPECT_EQ(nullptr, srpc_service_new(bad, 2, nullptr, &err, &index));
  EXPECT_EQ(SRPC_SIGNATURE_UNKNOWN_TYPE, err);
  EXPECT_EQ(1u, index);
  SrpcMethod dup[] = {{"add:ii:i", Add}, {"add:dd:d", Add}};
  EXPECT_EQ(nullptr, srpc_service_new(dup, 2, nullptr, &err, &index));
  EXPECT_EQ(SRPC_SIGNATURE_DUPLICATE, err);
  SrpcMethod reserved[] = {{"service_discovery::C", Add}};
  EXPECT_EQ(nullptr, srpc_service_new(reserved, 1, nullptr, &err, &index));
  EXPECT_EQ(SRPC_SIGNATURE_DUPLICATE, err);
  SrpcMethod no_handler[] = {{"add:ii:i", nullptr}};
  EXPECT_EQ(nullptr, srpc_service_new(no_handler, 1, nullptr, &err, &index));
  EXPECT_EQ(SRPC_SIGNATURE_NULL, err);
  SrpcMethod colon[] = {{"add", Add}};
  EXPECT_EQ(nullptr, srpc_service_new(colon, 1, nullptr, &err, &index));
  EXPECT_EQ(SRPC_SIGNATURE_MISSING_COLON, err);
}

TEST(SrpcServiceTest, DiscoveryOfHundredsOfMethods) {
  std::vector<std::string> names;
  std::vector<SrpcMethod> methods;
  for (int i = 0; i < 400; i++)
    names.push_back("a_rather_long_method_name_" + std::to_string(i) +
                    ":iIsC:LdD");
  for (const auto& n : names)
    methods.push_back({n.c_str(), Add});
  SrpcService* service = srpc_service_new(methods.data(), methods.size(),
                                          nullptr, nullptr, nullptr);
  ASSERT_NE(nullptr, service);
  size_t len;
  srpc_service_discovery_text(service, &len);
  EXPECT_GT(len, 4000u);
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  SrpcChannel* server = srpc_channel_new(pair[0], service, 0);
  SrpcChannel* client = srpc_channel_new(pair[1], nullptr, 0);
  std::thread t([server] { srpc_channel_serve(server); });
  ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client));
  EXPECT_EQ(401u, srpc_channel_method_count(client));
  EXPECT_EQ(400, srpc_channel_lookup(client, "a_rather_long_method_name_399"));
  srpc_channel_free(client);
  t.join();
  srpc_channel_free(server);
  srpc_service_free(service);
}

// The server is a real process that dies in the middle of a call.
TEST(SrpcPeerDeathTest, CallerGetsAnErrorWhenTheServerProcessDies) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  pid_t pid = harness::ForkChild([&] {
    close(pair[1]);
    SrpcService* s =
        srpc_service_new(kMethods, sizeof(kMethods) / sizeof(kMethods[0]),
                         nullptr, nullptr, nullptr);
    SrpcChannel* ch = srpc_channel_new(pair[0], s, 0);
    srpc_channel_serve(ch);
    return 3;
  });
  close(pair[0]);
  SrpcChannel* client = srpc_channel_new(pair[1], nullptr, 0);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client));
  int32_t sum = 0;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client, "add", 1, 2, &sum));
  std::atomic<int> other{-1};
  std::thread waiter([&] {
    int32_t x;
    other = srpc_invoke(client, "defer", 1, &x);  // may or may not finish
  });
  EXPECT_EQ(SRPC_RESULT_INTERNAL, srpc_invoke(client, "exit_now"));
  waiter.join();
  EXPECT_TRUE(other == SRPC_RESULT_OK || other == SRPC_RESULT_INTERNAL);
  JoinDeferred();
  EXPECT_TRUE(harness::ExitedWithCode(harness::WaitForChild(pid, 10000), 0));
  srpc_channel_free(client);
}

}  // namespace

namespace {

// Every connection of a BoundSocket is served at once, each on its own
// thread; the loop returns when every address is closed.
TEST(SrpcServeBoundTest, ServesConnectionsConcurrentlyUntilTheAddressCloses) {
  SrpcService* service =
      srpc_service_new(kMethods, sizeof(kMethods) / sizeof(kMethods[0]),
                       nullptr, nullptr, nullptr);
  int bound[2];
  ASSERT_EQ(0, imc_makeboundsock(bound));
  std::atomic<int> result{-1};
  std::thread acceptor(
      [&] { result = srpc_serve_bound(bound[0], service, 0); });
  const int kClients = 6;
  std::vector<SrpcChannel*> clients;
  for (int i = 0; i < kClients; i++) {
    int fd = imc_connect_ex(bound[1], IMC_CONNECT_CONFIRM, 10000);
    ASSERT_GE(fd, 0);
    clients.push_back(srpc_channel_new(fd, nullptr, 0));
  }
  close(bound[1]);
  // All connections are live at once: each makes a deferred call while
  // the others are open, from its own thread.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 0; i < kClients; i++) {
    threads.emplace_back([&, i] {
      int32_t out = 0;
      if (srpc_channel_discover(clients[static_cast<size_t>(i)]) !=
              SRPC_RESULT_OK ||
          srpc_invoke(clients[static_cast<size_t>(i)], "defer", i, &out) !=
              SRPC_RESULT_OK ||
          out != 2 * i)
        wrong++;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(0, wrong.load());
  EXPECT_EQ(-1, result.load()) << "returned while connections were open";
  for (SrpcChannel* c : clients)
    srpc_channel_free(c);
  acceptor.join();
  EXPECT_EQ(SRPC_RESULT_OK, result.load());
  JoinDeferred();
  close(bound[0]);
  srpc_service_free(service);
}

// Several threads wait at once, and the server calls back into the client
// for each of them: upcalls are served by whichever caller is reading.
TEST_F(SrpcChannelTest, UpcallsWhileSeveralThreadsWait) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < 200; n++) {
        int32_t out = 0;
        int v = t * 1000 + n;
        if (srpc_invoke(client_, "callback", v, &out) != SRPC_RESULT_OK ||
            out != 2 * v + 1)
          wrong++;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(0, wrong.load());
}

}  // namespace

namespace {

// A BREAK completed later, from another thread, ends the server loop even
// though it is waiting for input and no more requests come.
TEST_F(SrpcChannelTest, DeferredBreakEndsAnIdleServerLoop) {
  EXPECT_EQ(SRPC_RESULT_OK, srpc_invoke(client_, "defer_break"));
  for (int i = 0; i < 500 && serve_result_.load() == -1; i++)
    usleep(10000);
  EXPECT_EQ(SRPC_RESULT_BREAK, serve_result_.load());
}

// A failure after part of a message went out leaves the stream unusable:
// the channel closes at once, and the peer sees it, rather than the next
// message being read as the rest of this one.
TEST_F(SrpcChannelTest, HalfSentMessageClosesTheChannel) {
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // The ninth descriptor goes in the second datagram, and is not open.
  EXPECT_EQ(
      SRPC_RESULT_INTERNAL,
      srpc_invoke(client_, "take_handles", devnull, devnull, devnull, devnull,
                  devnull, devnull, devnull, devnull, 999, devnull));
  int32_t sum;
  EXPECT_EQ(SRPC_RESULT_INTERNAL, Add(1, 2, &sum));
  server_thread_.join();
  EXPECT_EQ(SRPC_RESULT_INTERNAL, serve_result_.load());
  close(devnull);
}

// A peer cannot pile up deferred calls without bound.
TEST_F(SrpcRawTest, DeferredCallsPerChannelAreCapped) {
  // Requests for "hold" (method 11), never completed until released.
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 0, 1, 11, SRPC_RESULT_OK, 0, 0};
  SrpcBuffer b = {};
  int unused[1];
  size_t n;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_encode(&h, nullptr, 0, nullptr, 0, &b, unused, &n));
  std::thread sender([&] {
    for (int i = 0; i <= SRPC_MAX_OUTSTANDING_CALLS; i++)
      srpc_fragment_send(raw_, b.data, b.len, nullptr, 0,
                         SRPC_MAX_DATAGRAM_BYTES);
  });
  // The one past the cap is refused at once (bounded wait: without the cap
  // no answer would ever come).
  struct pollfd pfd = {raw_, POLLIN, 0};
  ASSERT_EQ(1, poll(&pfd, 1, 10000)) << "no answer: calls are not capped";
  SrpcReassembly r;
  srpc_reassembly_init(&r, 1 << 20);
  ASSERT_EQ(1, srpc_fragment_receive(raw_, &r));
  uint8_t* data;
  size_t len, num_fds;
  int fds[SRPC_MAX_ARGS];
  srpc_reassembly_take(&r, &data, &len, fds, &num_fds);
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_decode(data, len, fds, num_fds, 1 << 20, &m));
  EXPECT_EQ(SRPC_RESULT_NO_MEMORY, static_cast<int>(m.header.result));
  free(data);
  srpc_message_free(&m);
  sender.join();
  // Released, the held calls are answered; read the answers meanwhile (they
  // do not all fit the socket buffer).
  std::atomic<int> ok{0};
  std::thread reader([&] {
    SrpcReassembly rr;
    srpc_reassembly_init(&rr, 1 << 20);
    for (int i = 0; i < SRPC_MAX_OUTSTANDING_CALLS; i++) {
      if (srpc_fragment_receive(raw_, &rr) != 1)
        break;
      uint8_t* d;
      size_t l, nf;
      int f[SRPC_MAX_ARGS];
      srpc_reassembly_take(&rr, &d, &l, f, &nf);
      SrpcMessage reply;
      if (srpc_wire_decode(d, l, f, nf, 1 << 20, &reply) == SRPC_RESULT_OK) {
        ok += reply.header.result == SRPC_RESULT_OK;
        srpc_message_free(&reply);
      }
      free(d);
    }
  });
  EXPECT_EQ(static_cast<size_t>(SRPC_MAX_OUTSTANDING_CALLS), ReleaseHeld());
  reader.join();
  EXPECT_EQ(SRPC_MAX_OUTSTANDING_CALLS, ok.load());
  srpc_buffer_free(&b);
}

}  // namespace
