// Result codes, type letters, signatures and discovery text.

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "srpc/srpc.h"

namespace {

TEST(SrpcTypesTest, EveryResultCodeHasItsOwnDescription) {
  std::set<std::string> seen;
  for (int r = SRPC_RESULT_OK; r <= SRPC_RESULT_APP_ERROR; r++) {
    std::string s = srpc_result_string(r);
    EXPECT_NE("unknown result", s) << r;
    EXPECT_TRUE(seen.insert(s).second) << "duplicate: " << s;
  }
  EXPECT_EQ(13u, seen.size());
  EXPECT_STREQ("unknown result", srpc_result_string(0));
  EXPECT_STREQ("unknown result", srpc_result_string(269));
}

TEST(SrpcTypesTest, TypeLettersAndElementSizes) {
  EXPECT_EQ(10, [] {
    int n = 0;
    for (int c = 0; c < 256; c++)
      n += srpc_type_is_valid(c);
    return n;
  }());
  EXPECT_EQ(1u, srpc_type_element_size('C'));
  EXPECT_EQ(4u, srpc_type_element_size('I'));
  EXPECT_EQ(8u, srpc_type_element_size('D'));
  EXPECT_EQ(8u, srpc_type_element_size('L'));
  EXPECT_EQ(0u, srpc_type_element_size('i'));
  EXPECT_EQ(0u, srpc_type_element_size('h'));
}

TEST(SrpcSignatureTest, ParsesNameInsAndOuts) {
  SrpcSignature sig;
  ASSERT_EQ(SRPC_SIGNATURE_OK, srpc_signature_parse("add:ii:i", &sig));
  EXPECT_STREQ("add", sig.name);
  EXPECT_STREQ("ii", sig.ins);
  EXPECT_STREQ("i", sig.outs);
  ASSERT_EQ(SRPC_SIGNATURE_OK, srpc_signature_parse("null::", &sig));
  EXPECT_STREQ("", sig.ins);
  EXPECT_STREQ("", sig.outs);
  ASSERT_EQ(SRPC_SIGNATURE_OK,
            srpc_signature_parse("every type:bCdDhiIlLs:sLlIihDdCb", &sig));
  EXPECT_STREQ("every type", sig.name);
}

TEST(SrpcSignatureTest, RefusesBadSignaturesWithAReason) {
  std::string long_name(256, 'n');
  std::string many(SRPC_MAX_ARGS + 1, 'i');
  struct {
    const char* sig;
    SrpcSignatureError error;
  } cases[] = {
      {"add", SRPC_SIGNATURE_MISSING_COLON},
      {"add:ii", SRPC_SIGNATURE_MISSING_COLON},
      {":ii:i", SRPC_SIGNATURE_EMPTY_NAME},
      {"add:ix:i", SRPC_SIGNATURE_UNKNOWN_TYPE},
      {"add:ii:i:", SRPC_SIGNATURE_UNKNOWN_TYPE},
      {"add:ii:i\n", SRPC_SIGNATURE_UNKNOWN_TYPE},
      {"a\nb:ii:i", SRPC_SIGNATURE_BAD_NAME_CHAR},
  };
  SrpcSignature sig;
  for (const auto& c : cases) {
    EXPECT_EQ(c.error, srpc_signature_parse(c.sig, &sig)) << c.sig;
    EXPECT_STRNE("ok", srpc_signature_error_string(c.error));
  }
  EXPECT_EQ(SRPC_SIGNATURE_NAME_TOO_LONG,
            srpc_signature_parse((long_name + "::").c_str(), &sig));
  EXPECT_EQ(SRPC_SIGNATURE_OK,
            srpc_signature_parse((long_name.substr(1) + "::").c_str(), &sig));
  EXPECT_EQ(SRPC_SIGNATURE_TOO_MANY_ARGS,
            srpc_signature_parse(("f:" + many + ":").c_str(), &sig));
  EXPECT_EQ(SRPC_SIGNATURE_OK,
            srpc_signature_parse(("f:" + many.substr(1) + ":").c_str(), &sig));
  EXPECT_EQ(SRPC_SIGNATURE_NULL, srpc_signature_parse(nullptr, &sig));
}

TEST(SrpcSignatureTest, DiscoveryTextOfHundredsOfMethodsHasNoSizeCap) {
  std::string text;
  for (int i = 0; i < 500; i++)
    text += "method_number_" + std::to_string(i) + ":iis:CdL\n";
  ASSERT_GT(text.size(), 4000u);  // the original's cap
  std::vector<SrpcSignature> sigs(500);
  ASSERT_EQ(500, srpc_discovery_parse(text.data(), text.size(), sigs.data(),
                                      sigs.size()));
  EXPECT_STREQ("method_number_499", sigs[499].name);
  EXPECT_STREQ("CdL", sigs[499].outs);
  // Counting without storing.
  EXPECT_EQ(500, srpc_discovery_parse(text.data(), text.size(), nullptr, 0));
  EXPECT_EQ(0, srpc_discovery_parse("", 0, nullptr, 0));
}

TEST(SrpcSignatureTest, DiscoveryRejectsMalformedText) {
  const char* bad[] = {"add:ii:i", "add:ii:i\nsub:ii", "add:ii:i\n\n",
                       "add:iq:i\n"};
  for (const char* t : bad)
    EXPECT_EQ(-1, srpc_discovery_parse(t, strlen(t), nullptr, 0)) << t;
  std::string with_nul("a\0d:ii:i\n", 9);
  EXPECT_EQ(-1,
            srpc_discovery_parse(with_nul.data(), with_nul.size(), nullptr, 0));
}

}  // namespace
