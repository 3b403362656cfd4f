// Calls with a bound: timeouts, cancellation from another thread, late
// replies after a caller gave up, and result codes a peer must not be able
// to fake.

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>
#include <unistd.h>
#include <string>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "srpc/srpc_wire.h"
#include "testing/harness/descriptors.h"

namespace {

std::mutex g_mu;
std::vector<std::pair<SrpcRpc*, SrpcArg*>> g_held;

// Keeps the call; ReleaseHeld answers it later with a descriptor.
void Hold(SrpcRpc* rpc, SrpcArg*, SrpcArg* out, void*) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_held.emplace_back(rpc, out);
}

void Stop(SrpcRpc* rpc, SrpcArg*, SrpcArg*, void*) {
  srpc_rpc_complete(rpc, SRPC_RESULT_BREAK);
}

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

size_t ReleaseHeld() {
  std::vector<std::pair<SrpcRpc*, SrpcArg*>> held;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    held.swap(g_held);
  }
  for (auto [rpc, out] : held) {
    // The reply carries a descriptor: a caller that gave up must not leak
    // it.
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      close(p[1]);
      out[0].u.hval = p[0];
    }
    srpc_rpc_complete(rpc, SRPC_RESULT_OK);
  }
  return held.size();
}

const SrpcMethod kMethods[] = {{"hold::h", Hold},
                               {"add:ii:i", Add},
                               {"stop::", Stop}};

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t)
      .count();
}

// param: whether the client channel has a server loop of its own (then a
// bounded caller only waits; without one it reads).
class SrpcBoundedCallTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    service_ = srpc_service_new(kMethods, 3, nullptr, nullptr, nullptr);
    ASSERT_NE(nullptr, service_);
    int pair[2];
    ASSERT_EQ(0, imc_socketpair(pair));
    server_ = srpc_channel_new(pair[0], service_, 0);
    client_ = srpc_channel_new(pair[1], GetParam() ? service_ : nullptr, 0);
    server_thread_ = std::thread([this] { srpc_channel_serve(server_); });
    if (GetParam())
      client_thread_ = std::thread([this] { srpc_channel_serve(client_); });
    cancel_ = srpc_cancel_new();
    ASSERT_NE(nullptr, cancel_);
    ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client_));
  }
  void TearDown() override {
    ReleaseHeld();
    // A BREAK ends the server's loop; closing the server's end then ends
    // the client's.
    EXPECT_EQ(SRPC_RESULT_OK,
              srpc_invoke_args(client_, 3, nullptr, 0, nullptr, 0));
    server_thread_.join();
    srpc_channel_free(server_);
    if (client_thread_.joinable())
      client_thread_.join();
    srpc_channel_free(client_);
    srpc_service_free(service_);
    srpc_cancel_free(cancel_);
  }
  int CallHold(const SrpcCallOptions* opt, int* fd) {
    SrpcArg out = {};
    out.type = SRPC_TYPE_HANDLE;
    out.u.hval = -1;
    int r = srpc_invoke_args_opt(client_, 1, nullptr, 0, &out, 1, opt);
    *fd = out.u.hval;
    return r;
  }
  int CallAdd(int a, int b, int32_t* sum) {
    SrpcArg in[2] = {};
    in[0].type = in[1].type = SRPC_TYPE_INT;
    in[0].u.ival = a;
    in[1].u.ival = b;
    SrpcArg out = {};
    out.type = SRPC_TYPE_INT;
    int r = srpc_invoke_args(client_, 2, in, 2, &out, 1);
    *sum = out.u.ival;
    return r;
  }

  SrpcService* service_ = nullptr;
  SrpcChannel* server_ = nullptr;
  SrpcChannel* client_ = nullptr;
  SrpcCancel* cancel_ = nullptr;
  std::thread server_thread_;
  std::thread client_thread_;
};

TEST_P(SrpcBoundedCallTest, TimesOutAfterTheBoundAndTheChannelStaysUsable) {
  SrpcCallOptions opt = {50, nullptr};
  int fd = -1;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(SRPC_RESULT_TIMED_OUT, CallHold(&opt, &fd));
  double ms = MsSince(start);
  EXPECT_GE(ms, 49.0);
  EXPECT_LT(ms, 1000.0);
  EXPECT_EQ(-1, fd);
  // The late reply (with its descriptor) arrives and is dropped; the
  // channel goes on.
  EXPECT_EQ(1u, ReleaseHeld());
  int32_t sum = 0;
  EXPECT_EQ(SRPC_RESULT_OK, CallAdd(2, 3, &sum));
  EXPECT_EQ(5, sum);
}

TEST_P(SrpcBoundedCallTest, CancelFromAnotherThreadEndsTheWaitPromptly) {
  SrpcCallOptions opt = {-1, cancel_};
  std::chrono::steady_clock::time_point signalled;
  std::thread canceller([&] {
    usleep(30000);
    signalled = std::chrono::steady_clock::now();
    srpc_cancel_signal(cancel_);
  });
  int fd = -1;
  EXPECT_EQ(SRPC_RESULT_CANCELLED, CallHold(&opt, &fd));
  canceller.join();
  EXPECT_LT(MsSince(signalled), 100.0);
  EXPECT_EQ(1u, ReleaseHeld());
  int32_t sum = 0;
  EXPECT_EQ(SRPC_RESULT_OK, CallAdd(20, 22, &sum));
  EXPECT_EQ(42, sum);
}

TEST_P(SrpcBoundedCallTest, RaisedFlagFailsAtOnceWithoutSendingUntilReset) {
  srpc_cancel_signal(cancel_);
  EXPECT_EQ(1, srpc_cancel_is_signalled(cancel_));
  SrpcCallOptions opt = {-1, cancel_};
  int fd = -1;
  EXPECT_EQ(SRPC_RESULT_CANCELLED, CallHold(&opt, &fd));
  EXPECT_EQ(0u, ReleaseHeld());  // nothing was sent
  srpc_cancel_reset(cancel_);
  EXPECT_EQ(0, srpc_cancel_is_signalled(cancel_));
  opt.timeout_ms = 20;
  EXPECT_EQ(SRPC_RESULT_TIMED_OUT, CallHold(&opt, &fd));
  EXPECT_EQ(1u, ReleaseHeld());
}

TEST_P(SrpcBoundedCallTest, ReplyWithinTheBoundIsDelivered) {
  SrpcCallOptions opt = {5000, cancel_};
  std::thread releaser([] {
    for (int i = 0; i < 1000 && ReleaseHeld() == 0; i++)
      usleep(1000);
  });
  int fd = -1;
  EXPECT_EQ(SRPC_RESULT_OK, CallHold(&opt, &fd));
  releaser.join();
  EXPECT_GE(fd, 0);
  if (fd >= 0)
    close(fd);
}

TEST_P(SrpcBoundedCallTest, ManyBoundedCallersOneCancelAllReturn) {
  SrpcCallOptions opt = {-1, cancel_};
  std::vector<std::thread> callers;
  std::vector<int> results(8, 0);
  for (int i = 0; i < 8; i++) {
    callers.emplace_back([&, i] {
      int fd = -1;
      results[static_cast<size_t>(i)] = CallHold(&opt, &fd);
    });
  }
  usleep(30000);
  srpc_cancel_signal(cancel_);
  for (auto& t : callers)
    t.join();
  for (int r : results)
    EXPECT_EQ(SRPC_RESULT_CANCELLED, r);
  ReleaseHeld();
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutServerLoop,
                         SrpcBoundedCallTest,
                         ::testing::Bool());

TEST(SrpcResultTest, LocalOutcomesFromThePeerAreItsError) {
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  SrpcChannel* client = srpc_channel_new(pair[1], nullptr, 0);
  std::thread peer([&] {
    SrpcReassembly r;
    srpc_reassembly_init(&r, 1 << 20);
    ASSERT_EQ(1, srpc_fragment_receive(pair[0], &r));
    uint8_t* data;
    size_t len, num_fds;
    int fds[SRPC_MAX_ARGS];
    srpc_reassembly_take(&r, &data, &len, fds, &num_fds);
    SrpcMessage m;
    ASSERT_EQ(SRPC_RESULT_OK,
              srpc_wire_decode(data, len, fds, num_fds, 1 << 20, &m));
    free(data);
    SrpcHeader h = m.header;
    h.is_request = 0;
    h.result = SRPC_RESULT_TIMED_OUT;  // not the peer's to say
    h.value_len = h.template_len = 0;
    srpc_message_free(&m);
    SrpcBuffer body = {};
    int out_fds[1];
    size_t n;
    ASSERT_EQ(SRPC_RESULT_OK,
              srpc_wire_encode(&h, nullptr, 0, nullptr, 0, &body, out_fds, &n));
    EXPECT_EQ(0, srpc_fragment_send(pair[0], body.data, body.len, nullptr, 0,
                                    SRPC_MAX_DATAGRAM_BYTES));
    srpc_buffer_free(&body);
  });
  EXPECT_EQ(SRPC_RESULT_INTERNAL,
            srpc_invoke_args(client, 7, nullptr, 0, nullptr, 0));
  peer.join();
  srpc_channel_free(client);
  close(pair[0]);
}

// A variadic method sees what the caller sent and answers what it asked.
void Reflect(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  size_t n_in = srpc_rpc_num_in(rpc), n_out = srpc_rpc_num_out(rpc);
  // Result 0: how many inputs; result 1: the first input's type letter.
  if (n_out >= 1 && out[0].type == SRPC_TYPE_INT)
    out[0].u.ival = static_cast<int32_t>(n_in);
  if (n_out >= 2 && out[1].type == SRPC_TYPE_STRING) {
    char t[2] = {n_in > 0 ? static_cast<char>(in[0].type) : '-', 0};
    srpc_arg_set_string(&out[1], t);
  }
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

TEST(SrpcVariadicTest, AnyInputsAndTheResultsTheCallerAsksFor) {
  SrpcMethod methods[] = {{"reflect:*:*", Reflect}};
  SrpcService* s = srpc_service_new(methods, 1, nullptr, nullptr, nullptr);
  ASSERT_NE(nullptr, s);
  size_t len;
  std::string text(srpc_service_discovery_text(s, &len));
  EXPECT_NE(std::string::npos, text.find("reflect:*:*\n"));
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  SrpcChannel* server = srpc_channel_new(pair[0], s, 0);
  SrpcChannel* client = srpc_channel_new(pair[1], nullptr, 0);
  std::thread t([&] { srpc_channel_serve(server); });
  ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client));
  EXPECT_EQ(1, srpc_channel_lookup(client, "reflect:*:*"));
  SrpcArg in[3] = {};
  in[0].type = SRPC_TYPE_DOUBLE;
  in[1].type = in[2].type = SRPC_TYPE_INT;
  SrpcArg out[2] = {};
  out[0].type = SRPC_TYPE_INT;
  out[1].type = SRPC_TYPE_STRING;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke_args(client, 1, in, 3, out, 2));
  EXPECT_EQ(3, out[0].u.ival);
  EXPECT_STREQ("d", out[1].u.str);
  free(out[1].u.str);
  ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke_args(client, 1, nullptr, 0, out, 1));
  EXPECT_EQ(0, out[0].u.ival);
  // The varargs form has no types to go by.
  EXPECT_EQ(SRPC_RESULT_BAD_ARG_TYPE, srpc_invoke(client, "reflect"));
  srpc_channel_free(client);
  t.join();
  srpc_channel_free(server);
  srpc_service_free(s);
}

TEST(SrpcResultTest, LocalOutcomesHaveNames) {
  EXPECT_STREQ("timed out", srpc_result_string(SRPC_RESULT_TIMED_OUT));
  EXPECT_STREQ("cancelled", srpc_result_string(SRPC_RESULT_CANCELLED));
}

}  // namespace
