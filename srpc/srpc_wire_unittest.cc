// The message encoding: golden bytes, every type both ways, every way a
// received message can be wrong.

#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "srpc/srpc_wire.h"
#include "testing/harness/descriptors.h"

namespace {

std::vector<uint8_t> Hex(const std::string& words) {
  // Big-endian-written 32-bit words as the spec prints them, little-endian
  // in memory.
  std::vector<uint8_t> out;
  for (size_t i = 0; i < words.size();) {
    if (!isxdigit(static_cast<unsigned char>(words[i]))) {
      i++;
      continue;
    }
    uint32_t w =
        static_cast<uint32_t>(std::stoul(words.substr(i, 8), nullptr, 16));
    for (int b = 0; b < 4; b++)
      out.push_back(static_cast<uint8_t>(w >> (8 * b)));
    i += 8;
  }
  return out;
}

SrpcArg Int(int32_t v) {
  SrpcArg a = {};
  a.type = SRPC_TYPE_INT;
  a.u.ival = v;
  return a;
}

SrpcArg Template(int type, uint32_t capacity = 0) {
  SrpcArg a = {};
  a.type = type;
  a.count = capacity;
  return a;
}

// Encodes and frames a message; returns the first datagram's bytes.
std::vector<uint8_t> SendAndCapture(const SrpcHeader& h,
                                    const std::vector<SrpcArg>& templates,
                                    const std::vector<SrpcArg>& values) {
  SrpcBuffer body = {};
  int fds[SRPC_MAX_ARGS];
  size_t num_fds;
  EXPECT_EQ(
      SRPC_RESULT_OK,
      srpc_wire_encode(&h, templates.data(), templates.size(), values.data(),
                       values.size(), &body, fds, &num_fds));
  int pair[2];
  EXPECT_EQ(0, imc_socketpair(pair));
  EXPECT_EQ(0, srpc_fragment_send(pair[0], body.data, body.len, fds, num_fds,
                                  SRPC_MAX_DATAGRAM_BYTES));
  std::vector<uint8_t> datagram(SRPC_MAX_DATAGRAM_BYTES);
  ssize_t n = read(pair[1], datagram.data(), datagram.size());
  datagram.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(pair[0]);
  close(pair[1]);
  srpc_buffer_free(&body);
  return datagram;
}

// The request for add:ii:i with 2 and 3, as the original library wrote it.
TEST(SrpcWireTest, GoldenAddRequest) {
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 0, 1, 1, SRPC_RESULT_OK, 0, 0};
  std::vector<uint8_t> bytes =
      SendAndCapture(h, {Template(SRPC_TYPE_INT)}, {Int(2), Int(3)});
  EXPECT_EQ(Hex("0000004c 00000000 0000004c 00000000"
                "c0da0002 00000000 00000001 00000001 00000100 00000002 00000001"
                "00000069 00000000 00000000 00000000"
                "00000069 00000000 00000002 00000000"
                "00000069 00000000 00000003 00000000"),
            bytes);
  EXPECT_EQ(92u, bytes.size());
}

TEST(SrpcWireTest, GoldenAddReply) {
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 0, 0, 1, SRPC_RESULT_OK, 0, 0};
  std::vector<uint8_t> bytes = SendAndCapture(h, {}, {Int(5)});
  EXPECT_EQ(Hex("0000002c 00000000 0000002c 00000000"
                "c0da0002 00000000 00000000 00000001 00000100 00000001 00000000"
                "00000069 00000000 00000005 00000000"),
            bytes);
  EXPECT_EQ(60u, bytes.size());
}

TEST(SrpcWireTest, GoldenDecodeOfTheAddRequest) {
  std::vector<uint8_t> body =
      Hex("c0da0002 00000007 00000001 00000001 00000100 00000002 00000001"
          "00000069 00000000 00000000 00000000"
          "00000069 00000000 00000002 00000000"
          "00000069 00000000 00000003 00000000");
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_wire_decode(body.data(), body.size(), nullptr,
                                             0, 1 << 20, &m));
  EXPECT_EQ(7u, m.header.request_id);
  EXPECT_EQ(1u, m.header.is_request);
  EXPECT_EQ(1u, m.header.rpc_number);
  ASSERT_EQ(2u, m.header.value_len);
  ASSERT_EQ(1u, m.header.template_len);
  EXPECT_EQ(SRPC_TYPE_INT, m.templates[0].type);
  EXPECT_EQ(2, m.values[0].u.ival);
  EXPECT_EQ(3, m.values[1].u.ival);
  srpc_message_free(&m);
}

// Every type as a value: encode, decode, compare.
TEST(SrpcWireTest, EveryTypeRoundTrips) {
  std::string big(100000, 'z');
  std::vector<int32_t> ints = {0, -1, std::numeric_limits<int32_t>::min(),
                               std::numeric_limits<int32_t>::max()};
  std::vector<int64_t> longs = {std::numeric_limits<int64_t>::min(), 0,
                                std::numeric_limits<int64_t>::max()};
  std::vector<double> doubles = {NAN, INFINITY, -INFINITY, -0.0, 1e-310};
  std::vector<char> chars = {'\0', 'a', '\xff'};
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<SrpcArg> v(13);
  v[0].type = SRPC_TYPE_BOOL;
  v[0].u.bval = 1;
  v[1] = Int(-42);
  v[2].type = SRPC_TYPE_LONG;
  v[2].u.lval = -(int64_t{1} << 62);
  v[3].type = SRPC_TYPE_DOUBLE;
  v[3].u.dval = -0.0;
  v[4].type = SRPC_TYPE_STRING;
  v[4].u.str = const_cast<char*>("");
  v[5].type = SRPC_TYPE_STRING;
  v[5].u.str = big.data();
  v[6].type = SRPC_TYPE_CHAR_ARRAY;
  v[6].count = 3;
  v[6].u.carr = chars.data();
  v[7].type = SRPC_TYPE_INT_ARRAY;
  v[7].count = 4;
  v[7].u.iarr = ints.data();
  v[8].type = SRPC_TYPE_LONG_ARRAY;
  v[8].count = 3;
  v[8].u.larr = longs.data();
  v[9].type = SRPC_TYPE_DOUBLE_ARRAY;
  v[9].count = 5;
  v[9].u.darr = doubles.data();
  v[10].type = SRPC_TYPE_CHAR_ARRAY;
  v[10].count = 0;
  v[10].u.carr = nullptr;
  v[11].type = SRPC_TYPE_HANDLE;
  v[11].u.hval = devnull;
  v[12].type = SRPC_TYPE_DOUBLE;
  v[12].u.dval = NAN;

  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 9, 0, 3, SRPC_RESULT_APP_ERROR, 0, 0};
  SrpcBuffer body = {};
  int fds[SRPC_MAX_ARGS];
  size_t num_fds;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_wire_encode(&h, nullptr, 0, v.data(), v.size(),
                                             &body, fds, &num_fds));
  ASSERT_EQ(1u, num_fds);
  EXPECT_EQ(devnull, fds[0]);
  fds[0] = dup(devnull);  // decode takes ownership of what it is given
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_decode(body.data, body.len, fds, 1, 1 << 20, &m));
  ASSERT_EQ(13u, m.header.value_len);
  EXPECT_EQ(SRPC_RESULT_APP_ERROR, static_cast<int>(m.header.result));
  const SrpcArg* d = m.values;
  EXPECT_EQ(1, d[0].u.bval);
  EXPECT_EQ(-42, d[1].u.ival);
  EXPECT_EQ(-(int64_t{1} << 62), d[2].u.lval);
  EXPECT_TRUE(std::signbit(d[3].u.dval));
  EXPECT_EQ(0.0, d[3].u.dval);
  EXPECT_EQ(0u, d[4].count);
  EXPECT_STREQ("", d[4].u.str);
  EXPECT_EQ(big.size(), d[5].count);
  EXPECT_EQ(big, d[5].u.str);
  EXPECT_EQ(0, memcmp(chars.data(), d[6].u.carr, 3));
  EXPECT_EQ(ints, std::vector<int32_t>(d[7].u.iarr, d[7].u.iarr + 4));
  EXPECT_EQ(longs, std::vector<int64_t>(d[8].u.larr, d[8].u.larr + 3));
  EXPECT_TRUE(std::isnan(d[9].u.darr[0]));
  EXPECT_EQ(INFINITY, d[9].u.darr[1]);
  EXPECT_EQ(-INFINITY, d[9].u.darr[2]);
  EXPECT_TRUE(std::signbit(d[9].u.darr[3]));
  EXPECT_EQ(1e-310, d[9].u.darr[4]);
  EXPECT_EQ(0u, d[10].count);
  EXPECT_TRUE(imc_test::SameFile(devnull, d[11].u.hval));
  EXPECT_TRUE(std::isnan(d[12].u.dval));
  srpc_message_free(&m);
  srpc_buffer_free(&body);
  close(devnull);
}

// The gathered encoding makes the same bytes as the plain one, with the
// large char arrays referenced where they are; decoding with the body kept
// makes the same values, the char arrays pointing into the body.
TEST(SrpcWireTest, GatheredEncodingAndBorrowedDecoding) {
  std::vector<char> big(100000), small(10, 's');
  for (size_t i = 0; i < big.size(); i++)
    big[i] = static_cast<char>(i * 31);
  SrpcArg v[5] = {Int(7), {}, {}, Int(9), {}};
  v[1].type = v[2].type = v[4].type = SRPC_TYPE_CHAR_ARRAY;
  v[1].u.carr = big.data();
  v[1].count = static_cast<uint32_t>(big.size());
  v[2].u.carr = small.data();
  v[2].count = static_cast<uint32_t>(small.size());
  v[4].u.carr = big.data();
  v[4].count = 5000;
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 5, 1, 2, SRPC_RESULT_OK, 0, 0};
  SrpcBuffer plain = {}, part = {};
  int fds[5];
  size_t num_fds;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_encode(&h, nullptr, 0, v, 5, &plain, fds, &num_fds));
  SrpcSegment segs[11];
  size_t num_segs = 0, len = 0;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_encode_gather(&h, nullptr, 0, v, 5, &part, segs,
                                    &num_segs, &len, fds, &num_fds));
  EXPECT_EQ(plain.len, len);
  EXPECT_LT(part.len, 1000u) << "the large arrays were not copied";
  EXPECT_EQ(4u, num_segs);  // records, big, small, 5000 (nothing after it)
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(big.data()), segs[1].data);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < num_segs; i++)
    joined.insert(joined.end(), segs[i].data, segs[i].data + segs[i].len);
  ASSERT_EQ(plain.len, joined.size());
  EXPECT_EQ(0, memcmp(plain.data, joined.data(), plain.len));

  uint8_t* body = static_cast<uint8_t*>(malloc(plain.len));
  memcpy(body, plain.data, plain.len);
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_decode_body(body, plain.len, nullptr, 0, 1 << 20, &m));
  EXPECT_EQ(body, m.body);
  EXPECT_TRUE(srpc_message_borrowed(&m, 1));
  EXPECT_FALSE(srpc_message_borrowed(&m, 0));
  uint8_t* p = reinterpret_cast<uint8_t*>(m.values[1].u.carr);
  EXPECT_TRUE(p >= body && p < body + plain.len);
  EXPECT_EQ(0, memcmp(big.data(), m.values[1].u.carr, big.size()));
  EXPECT_EQ(0, memcmp(small.data(), m.values[2].u.carr, small.size()));
  EXPECT_EQ(9, m.values[3].u.ival);
  srpc_message_free(&m);  // frees the body (ASan: nothing twice, no leak)

  // A body that fails to decode is freed too.
  uint8_t* bad = static_cast<uint8_t*>(malloc(plain.len - 1));
  memcpy(bad, plain.data, plain.len - 1);
  EXPECT_EQ(SRPC_RESULT_MESSAGE_TRUNCATED,
            srpc_wire_decode_body(bad, plain.len - 1, nullptr, 0, 1 << 20, &m));
  EXPECT_EQ(5u, m.header.request_id);
  srpc_buffer_free(&plain);
  srpc_buffer_free(&part);
}

TEST(SrpcWireTest, TemplatesCarryArrayCapacitiesOnly) {
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 1, 1, 0, SRPC_RESULT_OK, 0, 0};
  std::vector<SrpcArg> t = {Template(SRPC_TYPE_INT_ARRAY, 17),
                            Template(SRPC_TYPE_STRING, 99),
                            Template(SRPC_TYPE_HANDLE)};
  SrpcBuffer body = {};
  int fds[1];
  size_t n;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_wire_encode(&h, t.data(), t.size(), nullptr, 0,
                                             &body, fds, &n));
  EXPECT_EQ(28u + 3 * 16, body.len);
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_decode(body.data, body.len, nullptr, 0, 1 << 20, &m));
  EXPECT_EQ(17u, m.templates[0].count);
  EXPECT_EQ(0u, m.templates[1].count);  // a string result has no capacity
  EXPECT_EQ(SRPC_TYPE_HANDLE, m.templates[2].type);
  srpc_message_free(&m);
  srpc_buffer_free(&body);
}

TEST(SrpcWireTest, EncodeRejectsWhatCannotBeSent) {
  SrpcHeader h = {SRPC_PROTOCOL_VERSION, 1, 1, 0, SRPC_RESULT_OK, 0, 0};
  SrpcBuffer body = {};
  int fds[SRPC_MAX_ARGS];
  size_t n;
  SrpcArg bad = Template('x');
  EXPECT_EQ(SRPC_RESULT_BAD_ARG_TYPE,
            srpc_wire_encode(&h, nullptr, 0, &bad, 1, &body, fds, &n));
  SrpcArg null_array = Template(SRPC_TYPE_INT_ARRAY, 3);
  EXPECT_EQ(SRPC_RESULT_BAD_ARG_TYPE,
            srpc_wire_encode(&h, nullptr, 0, &null_array, 1, &body, fds, &n));
  std::vector<SrpcArg> many(SRPC_MAX_ARGS + 1, Int(1));
  EXPECT_EQ(SRPC_RESULT_TOO_MANY_ARGS,
            srpc_wire_encode(&h, nullptr, 0, many.data(), many.size(), &body,
                             fds, &n));
  EXPECT_EQ(0u, body.len);
  srpc_buffer_free(&body);
}

struct Corruption {
  const char* what;
  std::vector<uint8_t> body;
  int expect;
};

std::vector<uint8_t> Body(const std::string& words, const std::string& tail) {
  std::vector<uint8_t> b = Hex(words);
  b.insert(b.end(), tail.begin(), tail.end());
  return b;
}

TEST(SrpcWireTest, DecodeReportsEveryKindOfBadMessage) {
  const std::string head = "c0da0002 00000001 00000001 00000002 00000100";
  const std::string c3 = "00000043 00000000 00000003 00000000";
  const std::string s3 = "00000073 00000000 00000003 00000000";
  std::string body_ok = std::string("abc") + std::string("hi\0", 3);
  Corruption cases[] = {
      {"valid", Body(head + "00000002 00000000" + c3 + s3, body_ok),
       SRPC_RESULT_OK},
      {"shorter than a header", Hex("c0da0002 00000001"),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"other protocol",
       Body("c0da0001 00000001 00000001 00000002 00000100 00000002 00000000" +
                c3 + s3,
            body_ok),
       SRPC_RESULT_PROTOCOL_MISMATCH},
      {"129 values", Hex(head + "00000081 00000000"),
       SRPC_RESULT_TOO_MANY_ARGS},
      {"129 templates", Hex(head + "00000000 00000081"),
       SRPC_RESULT_TOO_MANY_ARGS},
      {"records missing", Hex(head + "00000002 00000000" + c3),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"body missing", Body(head + "00000002 00000000" + c3 + s3, "abc"),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"bytes left over",
       Body(head + "00000002 00000000" + c3 + s3, body_ok + "!"),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"unknown tag",
       Body(head + "00000002 00000000" + c3 +
                "00000078 00000000 00000003 00000000",
            body_ok),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"unknown template tag",
       Hex(head + "00000000 00000001 0000ff69 00000000 00000000 00000000"),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"string without its NUL",
       Body(head + "00000002 00000000" + c3 + s3, "abchi!"),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"string with a NUL inside",
       Body(head + "00000002 00000000" + c3 + s3, std::string("abc\0i\0", 6)),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"string of count 0",
       Body(head + "00000002 00000000" + c3 +
                "00000073 00000000 00000000 00000000",
            "abc"),
       SRPC_RESULT_BAD_ARG_TYPE},
      {"array count far beyond the bytes present",
       Body(head + "00000001 00000000 0000004c 00000000 ffffffff 00000000",
            "12345678"),
       SRPC_RESULT_MESSAGE_TRUNCATED},
      {"handle without a descriptor",
       Hex(head + "00000001 00000000 00000068 00000000 00000000 00000000"),
       SRPC_RESULT_MESSAGE_TRUNCATED},
  };
  for (const Corruption& c : cases) {
    SrpcMessage m;
    int r =
        srpc_wire_decode(c.body.data(), c.body.size(), nullptr, 0, 1 << 20, &m);
    EXPECT_EQ(c.expect, r) << c.what << ": " << srpc_result_string(r);
    if (c.body.size() >= SRPC_HEADER_BYTES) {
      EXPECT_EQ(1u, m.header.request_id) << c.what << ": header not kept";
    }
    if (r == SRPC_RESULT_OK)
      srpc_message_free(&m);
  }
}

// A result capacity is what the caller could take: one beyond what this
// side would ever send is cut to the limit, never refused or allocated.
TEST(SrpcWireTest, ResultCapacitiesBeyondTheLimitAreCutToIt) {
  std::vector<uint8_t> body =
      Hex("c0da0002 00000001 00000001 00000002 00000100 00000000 00000002"
          "00000043 00000000 ffffffff 00000000"    // C: 4 GiB - 1 elements
          "0000004c 00000000 ffffffff 00000000");  // L: as many int64
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK, srpc_wire_decode(body.data(), body.size(), nullptr,
                                             0, 1 << 20, &m));
  EXPECT_EQ(1u << 20, m.templates[0].count);  // the whole limit
  EXPECT_EQ(0u, m.templates[1].count);        // nothing left for the second
  srpc_message_free(&m);
}

TEST(SrpcWireTest, DecodeClosesDescriptorsItDoesNotUse) {
  std::vector<uint8_t> body =
      Hex("c0da0002 00000001 00000001 00000002 00000100 00000001 00000000"
          "00000068 00000000 00000000 00000000");
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  size_t before = harness::CountOpenDescriptors();
  int fds[3] = {dup(devnull), dup(devnull), dup(devnull)};
  SrpcMessage m;
  ASSERT_EQ(SRPC_RESULT_OK,
            srpc_wire_decode(body.data(), body.size(), fds, 3, 1 << 20, &m));
  EXPECT_EQ(before + 1, harness::CountOpenDescriptors());  // only the handle's
  srpc_message_free(&m);
  EXPECT_EQ(before, harness::CountOpenDescriptors());
  // On failure every descriptor is closed.
  int more[2] = {dup(devnull), dup(devnull)};
  body[0] = 1;  // wrong protocol
  EXPECT_EQ(SRPC_RESULT_PROTOCOL_MISMATCH,
            srpc_wire_decode(body.data(), body.size(), more, 2, 1 << 20, &m));
  EXPECT_EQ(before, harness::CountOpenDescriptors());
  close(devnull);
}

}  // namespace
