// Message framing: round trips at every boundary, and every way a peer can
// lie about a message, with the descriptors it sent always closed.

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "plugin/common/plugin_frame.h"
#include "testing/harness/descriptors.h"

namespace {

struct Datagram {
  std::vector<uint8_t> bytes;
};

// The datagrams a sender makes for a message of `body`.
std::vector<Datagram> Frame(const std::vector<uint8_t>& body) {
  std::vector<Datagram> out;
  size_t offset = 0;
  do {
    uint8_t header[PLUGIN_FRAME_HEADER_BYTES];
    size_t chunk = plugin_frame_header(header, body.size(), offset);
    Datagram d;
    d.bytes.assign(header, header + sizeof(header));
    d.bytes.insert(d.bytes.end(), body.begin() + static_cast<long>(offset),
                   body.begin() + static_cast<long>(offset + chunk));
    out.push_back(d);
    offset += chunk;
  } while (offset < body.size());
  return out;
}

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++)
    v[i] = static_cast<uint8_t>(i * 7 + 3);
  return v;
}

int Feed(PluginReassembly* r,
         const Datagram& d,
         std::vector<int> fds = {},
         int flags = 0) {
  return plugin_reassembly_feed(r, d.bytes.data(), d.bytes.size(),
                                fds.empty() ? nullptr : fds.data(), fds.size(),
                                flags);
}

void PutU32(std::vector<uint8_t>* v, size_t at, uint32_t x) {
  memcpy(v->data() + at, &x, 4);  // tests run on little-endian machines
}

TEST(PluginFrameTest, RoundTripsAtEveryChunkBoundary) {
  const size_t kChunk = PLUGIN_FRAME_MAX_CHUNK;
  for (size_t n : {size_t{0}, size_t{1}, kChunk - 1, kChunk, kChunk + 1,
                   3 * kChunk, 3 * kChunk + 17}) {
    SCOPED_TRACE(n);
    std::vector<uint8_t> body = Pattern(n);
    std::vector<Datagram> ds = Frame(body);
    EXPECT_EQ(n == 0 ? 1u : (n + kChunk - 1) / kChunk, ds.size());
    PluginReassembly r;
    plugin_reassembly_init(&r, 1 << 20);
    for (size_t i = 0; i < ds.size(); i++)
      ASSERT_EQ(i + 1 == ds.size() ? 1 : 0, Feed(&r, ds[i]));
    PluginMessage m;
    plugin_reassembly_take(&r, &m);
    ASSERT_EQ(n, m.len);
    if (n > 0) {
      EXPECT_EQ(0, memcmp(body.data(), m.data, n));
    }
    plugin_message_free(&m);
  }
}

TEST(PluginFrameTest, DescriptorsRideOnTheFirstDatagram) {
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  std::vector<Datagram> ds = Frame(Pattern(PLUGIN_FRAME_MAX_CHUNK + 5));
  PluginReassembly r;
  plugin_reassembly_init(&r, 1 << 20);
  ASSERT_EQ(0, Feed(&r, ds[0], {p[0], -1, p[1]}));
  ASSERT_EQ(1, Feed(&r, ds[1]));
  PluginMessage m;
  plugin_reassembly_take(&r, &m);
  ASSERT_EQ(3u, m.num_fds);
  EXPECT_EQ(p[0], m.fds[0]);
  EXPECT_EQ(-1, m.fds[1]);
  EXPECT_EQ(p[1], m.fds[2]);
  plugin_message_free(&m);  // closes both ends
  EXPECT_EQ(-1, fcntl(p[0], F_GETFD));
  EXPECT_EQ(-1, fcntl(p[1], F_GETFD));
}

// Each case: a sequence of datagrams the last of which must be refused with
// `error`, closing its descriptors and dropping the partial message.
struct Bad {
  const char* what;
  std::vector<Datagram> datagrams;
  int error;
  int flags;
};

std::vector<Bad> BadCases() {
  std::vector<Bad> cases;
  std::vector<Datagram> big = Frame(Pattern(3 * PLUGIN_FRAME_MAX_CHUNK));
  Datagram tiny;
  tiny.bytes = {1, 2, 3};
  cases.push_back({"shorter than a header", {tiny}, EPROTO, 0});
  Datagram unknown = Frame(Pattern(4))[0];
  PutU32(&unknown.bytes, 0, 0x12345678);
  cases.push_back({"unknown kind", {unknown}, EPROTO, 0});
  cases.push_back({"continuation first", {big[1]}, EPROTO, 0});
  cases.push_back({"second begin", {big[0], big[0]}, EPROTO, 0});
  cases.push_back({"skipped chunk", {big[0], big[2]}, EPROTO, 0});
  Datagram lying = Frame(Pattern(10))[0];
  PutU32(&lying.bytes, 4, 5);  // says 5 bytes, carries 10
  cases.push_back({"more bytes than announced", {lying}, EPROTO, 0});
  Datagram short_first = Frame(Pattern(10))[0];
  PutU32(&short_first.bytes, 4, 100);  // 100 announced, 10 carried, not full
  cases.push_back({"short chunk before the end", {short_first}, EPROTO, 0});
  Datagram huge = Frame(Pattern(4))[0];
  PutU32(&huge.bytes, 4, 0xffffffffu);
  huge.bytes.resize(PLUGIN_FRAME_HEADER_BYTES + PLUGIN_FRAME_MAX_CHUNK);
  cases.push_back({"over the bound", {huge}, EMSGSIZE, 0});
  cases.push_back({"truncated by the kernel",
                   {Frame(Pattern(4))[0]},
                   EPROTO,
                   RECVMSG_DATA_TRUNCATED});
  return cases;
}

TEST(PluginFrameTest, LiesAreRefusedAndEverythingReleased) {
  for (const Bad& bad : BadCases()) {
    SCOPED_TRACE(bad.what);
    size_t before = harness::CountOpenDescriptors();
    PluginReassembly r;
    plugin_reassembly_init(&r, 1 << 20);
    for (size_t i = 0; i + 1 < bad.datagrams.size(); i++) {
      int p[2];
      ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
      close(p[1]);
      ASSERT_EQ(0, Feed(&r, bad.datagrams[i], {p[0]}));
    }
    int p[2];
    ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
    errno = 0;
    EXPECT_EQ(-1, Feed(&r, bad.datagrams.back(), {p[0], p[1]}, bad.flags));
    EXPECT_EQ(bad.error, errno);
    EXPECT_FALSE(r.started);
    plugin_reassembly_reset(&r);
    EXPECT_EQ(before, harness::CountOpenDescriptors());
  }
}

TEST(PluginFrameTest, DescriptorsOnAContinuationAreRefused) {
  std::vector<Datagram> ds = Frame(Pattern(PLUGIN_FRAME_MAX_CHUNK + 1));
  PluginReassembly r;
  plugin_reassembly_init(&r, 1 << 20);
  ASSERT_EQ(0, Feed(&r, ds[0]));
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  EXPECT_EQ(-1, Feed(&r, ds[1], {p[0], p[1]}));
  EXPECT_EQ(EPROTO, errno);
  EXPECT_EQ(-1, fcntl(p[0], F_GETFD));
}

TEST(PluginFrameTest, ResultsHaveNames) {
  for (int r = PLUGIN_OK; r <= PLUGIN_ERROR_SYSTEM; r++) {
    if (r != 10) {  // retired
      EXPECT_STRNE("unknown result", plugin_result_string(r)) << r;
    }
  }
  EXPECT_STREQ("unknown result", plugin_result_string(999));
}

}  // namespace
