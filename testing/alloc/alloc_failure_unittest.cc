// Allocation failure at every point it can be injected: each test runs an
// operation with its k-th allocation failing, for k = 0, 1, 2... until a
// run needs no failure, and checks that every failed run reports
// out-of-memory the documented way, leaves nothing allocated and no
// descriptor open (the harness's listener), and that the same object works
// normally afterwards.

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "plugin/broker/broker.h"
#include "plugin/common/plugin_frame.h"
#include "plugin/host/plugin_host.h"
#include "plugin/objects/plugin_objects.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "srpc/srpc_wire.h"
#include "testing/alloc/alloc_fault.h"
#include "testing/harness/child_process.h"

namespace {

constexpr long kMaxPoints = 100000;

// Runs attempt() with the k-th allocation of this thread failing, for
// every k until a run hits no failure. attempt returns whether it
// succeeded; a run that hit a failure must not succeed unless it says the
// failure was absorbed (a retry, or a fallback). Returns the number of
// failing points visited.
template <typename Attempt>
long EveryFailurePoint(Attempt attempt, bool may_absorb = false) {
  for (long k = 0; k < kMaxPoints; k++) {
    long live = alloc_fault::Live();
    alloc_fault::FailAfter(k);
    bool ok = attempt();
    long failures = alloc_fault::Failures();
    alloc_fault::FailAfter(-1);
    EXPECT_EQ(live, alloc_fault::Live()) << "left allocated at point " << k;
    if (failures == 0) {
      EXPECT_TRUE(ok) << "failed with no allocation failing";
      return k;
    }
    if (!may_absorb) {
      EXPECT_FALSE(ok) << "succeeded although allocation " << k << " failed";
    }
    if (::testing::Test::HasFailure())
      return k;
  }
  ADD_FAILURE() << "never ran to the end";
  return kMaxPoints;
}

SrpcArg Arg(int type) {
  SrpcArg a = {};
  a.type = type;
  return a;
}

// Encodes a request with every type (and one descriptor) into *buf.
int EncodeEveryType(SrpcBuffer* buf, size_t* num_fds) {
  static char chars[] = "bytes";
  static double doubles[] = {1.5, -2.5};
  static int32_t ints[] = {1, 2, 3};
  static int64_t longs[] = {INT64_MIN};
  static char text[] = "a string";
  SrpcArg v[10] = {Arg('b'), Arg('C'), Arg('d'), Arg('D'), Arg('h'),
                   Arg('i'), Arg('I'), Arg('l'), Arg('L'), Arg('s')};
  v[1].u.carr = chars;
  v[1].count = 5;
  v[3].u.darr = doubles;
  v[3].count = 2;
  v[4].u.hval = 0;
  v[6].u.iarr = ints;
  v[6].count = 3;
  v[8].u.larr = longs;
  v[8].count = 1;
  v[9].u.str = text;
  v[9].count = static_cast<uint32_t>(strlen(text));
  SrpcArg t[2] = {Arg('C'), Arg('s')};
  t[0].count = 100;
  SrpcHeader h = {};
  h.protocol_version = SRPC_PROTOCOL_VERSION;
  h.request_id = 7;
  h.is_request = 1;
  h.rpc_number = 1;
  int fds[10];
  return srpc_wire_encode(&h, t, 2, v, 10, buf, fds, num_fds);
}

TEST(AllocFailureTest, TheInjectorWorks) {
  long live = alloc_fault::Live();
  alloc_fault::FailAfter(1);
  void* a = malloc(10);
  void* b = malloc(10);
  alloc_fault::FailAfter(-1);
  EXPECT_NE(nullptr, a);
  EXPECT_EQ(nullptr, b);
  EXPECT_EQ(live + 1, alloc_fault::Live());
  free(a);
  EXPECT_EQ(live, alloc_fault::Live());
}

TEST(AllocFailureTest, SrpcEncode) {
  EveryFailurePoint([] {
    SrpcBuffer buf = {};
    size_t num_fds = 0;
    int r = EncodeEveryType(&buf, &num_fds);
    srpc_buffer_free(&buf);
    if (r != SRPC_RESULT_OK) {
      EXPECT_EQ(SRPC_RESULT_NO_MEMORY, r);
    }
    return r == SRPC_RESULT_OK;
  });
}

TEST(AllocFailureTest, SrpcDecodeOfEveryType) {
  SrpcBuffer buf = {};
  size_t num_fds = 0;
  ASSERT_EQ(SRPC_RESULT_OK, EncodeEveryType(&buf, &num_fds));
  ASSERT_EQ(1u, num_fds);
  std::vector<uint8_t> bytes(buf.data, buf.data + buf.len);
  srpc_buffer_free(&buf);
  long points = EveryFailurePoint([&] {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    SrpcMessage m;
    int r = srpc_wire_decode(bytes.data(), bytes.size(), &fd, 1, 1 << 20, &m);
    if (r == SRPC_RESULT_OK) {
      EXPECT_EQ(7u, m.header.request_id);
      srpc_message_free(&m);
      return true;
    }
    EXPECT_EQ(SRPC_RESULT_NO_MEMORY, r);
    EXPECT_EQ(7u, m.header.request_id) << "the header, for the error reply";
    return false;
  });
  EXPECT_GE(points, 7);  // templates, values, and one per array or string
}

TEST(AllocFailureTest, SrpcReassemblyOfAFragmentedMessage) {
  // A 200 KiB message in four datagrams, a descriptor on the first.
  const size_t kTotal = 200 * 1024;
  std::vector<uint8_t> body(kTotal, 0x5a);
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(0, srpc_fragment_send(pair[0], body.data(), kTotal, &devnull, 1,
                                  SRPC_MAX_DATAGRAM_BYTES));
  close(devnull);
  // Capture the datagrams once, then replay them for every point.
  std::vector<std::vector<uint8_t>> datagrams;
  std::vector<int> flags;
  for (;;) {
    std::vector<uint8_t> d(SRPC_MAX_DATAGRAM_BYTES + 64);
    int fds[8];
    struct NaClImcMsgIoVec iov = {d.data(), d.size()};
    struct NaClImcMsgHdr h = {&iov, 1, fds, 8, 0};
    int n = imc_recvmsg(pair[1], &h, IMC_NONBLOCK);
    if (n < 0)
      break;
    for (size_t i = 0; i < h.desc_length; i++)
      close(fds[i]);
    d.resize(static_cast<size_t>(n));
    datagrams.push_back(d);
    flags.push_back(h.flags);
  }
  close(pair[0]);
  close(pair[1]);
  ASSERT_GE(datagrams.size(), 4u);
  EveryFailurePoint([&] {
    SrpcReassembly r;
    srpc_reassembly_init(&r, 1 << 20);
    int got = 0;
    for (size_t i = 0; i < datagrams.size() && got == 0; i++) {
      int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      got = srpc_reassembly_feed(&r, datagrams[i].data(), datagrams[i].size(),
                                 &fd, i == 0 ? 1 : 0, flags[i]);
      if (i != 0)
        close(fd);
    }
    if (got != 1) {
      // Read whole, dropped: the header is kept to answer it.
      EXPECT_EQ(2, got);
      uint8_t head[SRPC_HEADER_BYTES];
      EXPECT_EQ(static_cast<size_t>(SRPC_HEADER_BYTES),
                srpc_reassembly_take_header(&r, head));
      EXPECT_EQ(0x5a, head[0]);
      return false;
    }
    uint8_t* data = nullptr;
    size_t len = 0, n = 0;
    int fds[SRPC_MAX_ARGS];
    srpc_reassembly_take(&r, &data, &len, fds, &n);
    EXPECT_EQ(kTotal, len);
    EXPECT_EQ(1u, n);
    for (size_t i = 0; i < n; i++)
      close(fds[i]);
    free(data);
    return true;
  });
}

TEST(AllocFailureTest, PluginMessageReassembly) {
  const size_t kTotal = 3 * PLUGIN_FRAME_MAX_CHUNK + 17;
  std::vector<uint8_t> message(kTotal, 0x33);
  EveryFailurePoint([&] {
    PluginReassembly r;
    plugin_reassembly_init(&r, 1 << 20);
    int got = 0;
    for (size_t offset = 0; offset < kTotal && got == 0;) {
      uint8_t d[PLUGIN_FRAME_MAX_DATAGRAM];
      size_t n = plugin_frame_header(d, kTotal, offset);
      memcpy(d + PLUGIN_FRAME_HEADER_BYTES, message.data() + offset, n);
      int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      got = plugin_reassembly_feed(&r, d, PLUGIN_FRAME_HEADER_BYTES + n, &fd,
                                   offset == 0 ? 1 : 0, 0);
      if (offset != 0)
        close(fd);
      offset += n;
    }
    if (got != 1) {
      EXPECT_EQ(-1, got);
      EXPECT_EQ(ENOMEM, errno);
      plugin_reassembly_reset(&r);
      return false;
    }
    PluginMessage m;
    plugin_reassembly_take(&r, &m);
    EXPECT_EQ(kTotal, m.len);
    EXPECT_EQ(1u, m.num_fds);
    plugin_message_free(&m);
    return true;
  });
}

void Add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void Echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void*) {
  void* p = srpc_arg_alloc(&out[0], in[0].count);
  if (p == nullptr && in[0].count > 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  if (in[0].count > 0)
    memcpy(p, in[0].u.carr, in[0].count);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

const SrpcMethod kMethods[] = {{"add:ii:i", Add}, {"echo:C:C", Echo}};

TEST(AllocFailureTest, SrpcServiceTables) {
  EveryFailurePoint([] {
    SrpcService* s = srpc_service_new(kMethods, 2, nullptr, nullptr, nullptr);
    if (s == nullptr)
      return false;
    srpc_service_free(s);
    return true;
  });
}

// A call whose caller cannot allocate: it fails with NO_MEMORY (or, once
// the request is out, the caller still gets its answer), the channel goes
// on, and nothing stays allocated once the channel is gone.
TEST(AllocFailureTest, SrpcCallsOnALiveChannel) {
  // glibc keeps a finished thread's stack (and what it allocated for its
  // TLS) for the next one: start one first, so that the count compares
  // like with like.
  std::thread([] {}).join();
  std::vector<char> data(100000, 'e');
  long live = alloc_fault::Live();
  SrpcService* service =
      srpc_service_new(kMethods, 2, nullptr, nullptr, nullptr);
  ASSERT_NE(nullptr, service);
  int pair[2];
  ASSERT_EQ(0, imc_socketpair(pair));
  SrpcChannel* server = srpc_channel_new(pair[0], service, 0);
  SrpcChannel* client = srpc_channel_new(pair[1], nullptr, 0);
  ASSERT_NE(nullptr, server);
  ASSERT_NE(nullptr, client);
  std::thread serving([&] { srpc_channel_serve(server); });
  ASSERT_EQ(SRPC_RESULT_OK, srpc_channel_discover(client));

  long points = 0, refused = 0;
  for (long k = 0; k < kMaxPoints; k++) {
    SrpcArg in = Arg('C');
    in.u.carr = data.data();
    in.count = static_cast<uint32_t>(data.size());
    SrpcArg out = Arg('C');  // allocated by srpc
    out.count = static_cast<uint32_t>(data.size());
    alloc_fault::FailAfter(k);
    int r = srpc_invoke_args(client, 2, &in, 1, &out, 1);
    long failures = alloc_fault::Failures();
    alloc_fault::FailAfter(-1);
    if (r == SRPC_RESULT_OK) {
      EXPECT_EQ(data.size(), out.count);
      EXPECT_EQ(0, memcmp(out.u.carr, data.data(), data.size()));
    } else {
      EXPECT_EQ(SRPC_RESULT_NO_MEMORY, r) << "at point " << k;
      refused++;
    }
    free(out.u.ptr);
    // The channel still answers. (What stays allocated is counted once
    // the server's thread has ended: it frees after it replies.)
    int32_t sum = 0;
    ASSERT_EQ(SRPC_RESULT_OK, srpc_invoke(client, "add", 40, 2, &sum));
    EXPECT_EQ(42, sum);
    if (failures == 0) {
      points = k;
      break;
    }
  }
  EXPECT_GT(points, 0);
  EXPECT_GT(refused, 0);
  shutdown(pair[1], SHUT_RDWR);
  serving.join();
  srpc_channel_free(client);
  srpc_channel_free(server);
  srpc_service_free(service);
  EXPECT_EQ(live, alloc_fault::Live());
}

TEST(AllocFailureTest, BrokerPolicies) {
  EveryFailurePoint([] {
    BrokerPolicy* p = broker_policy_new();
    if (p == nullptr)
      return false;
    int r =
        broker_policy_allow(p, "/tmp", BROKER_ALLOW_READ | BROKER_RECURSIVE);
    if (r == 0)
      r = broker_policy_allow(p, "/etc/hostname", BROKER_ALLOW_READ);
    if (r == 0) {
      BrokerDecision d;
      int fd = broker_policy_open(p, "/etc/hostname", O_RDONLY, 0, &d);
      if (fd >= 0)
        close(fd);
      else
        r = -fd;
    }
    broker_policy_free(p);
    if (r != 0) {
      EXPECT_EQ(ENOMEM, r);
    }
    return r == 0;
  });
}

void Nothing(PluginObjectCall* call, SrpcArg*, SrpcArg*, void*) {
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

TEST(AllocFailureTest, ObjectsAndTheirTables) {
  static const PluginMethodDef kDefs[] = {{"a:ii:i", Nothing},
                                          {"b:o:o", Nothing}};
  static const PluginObjectClass kClass = {kDefs, 2, nullptr, nullptr};
  EveryFailurePoint([] {
    PluginObject* o = plugin_object_new(&kClass, nullptr);
    if (o == nullptr)
      return false;
    plugin_object_unref(o);
    return true;
  });
}

// postMessage with the poster's allocations failing: a refused post is
// reported as NO_MEMORY and leaves the stream intact: the module echoes
// exactly the posts that were accepted, in order.
TEST(AllocFailureTest, PostMessageKeepsTheStreamWhole) {
  PluginHost* host = plugin_host_new(nullptr);
  ASSERT_NE(nullptr, host);
  std::string path = harness::HelperPath("plugin_test_module");
  const char* argv[] = {path.c_str(), "--echo", nullptr};
  PluginLaunchOptions options = {};
  options.path = path.c_str();
  options.argv = argv;
  PluginModule* m = nullptr;
  ASSERT_EQ(PLUGIN_OK, plugin_module_launch(host, &options, &m));

  std::vector<uint32_t> accepted;
  uint8_t body[70000];  // more than one frame
  for (uint32_t i = 0; i < 40; i++) {
    memset(body, static_cast<int>(i), sizeof(body));
    memcpy(body, &i, 4);
    alloc_fault::FailAfter(i % 4);  // early, at varied points
    int r = plugin_module_post(m, body, sizeof(body), nullptr, 0);
    alloc_fault::FailAfter(-1);
    if (r == PLUGIN_OK)
      accepted.push_back(i);
    else
      EXPECT_EQ(PLUGIN_ERROR_NO_MEMORY, r) << "post " << i;
  }
  ASSERT_GT(accepted.size(), 0u);
  ASSERT_LT(accepted.size(), 40u);
  for (uint32_t want : accepted) {
    PluginMessage msg;
    ASSERT_EQ(PLUGIN_OK, plugin_module_wait_message(m, 10000, &msg));
    ASSERT_EQ(sizeof(body), msg.len);
    uint32_t got;
    memcpy(&got, msg.data, 4);
    EXPECT_EQ(want, got);
    EXPECT_EQ(static_cast<uint8_t>(want), msg.data[sizeof(body) - 1]);
    plugin_message_free(&msg);
  }
  PluginMessage extra;
  EXPECT_EQ(PLUGIN_ERROR_TIMED_OUT, plugin_module_wait_message(m, 100, &extra));
  plugin_module_free(m);
  plugin_host_free(host);
}

}  // namespace
