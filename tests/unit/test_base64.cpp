// base64: RFC 4648 vectors (decoding; the tests' encoder is checked against
// them too), and strictness on what SMTP clients may send.
#include <gtest/gtest.h>

#include <string>

#include "base64.h"
#include "base64_encode.h"

namespace {

std::string decoded(std::string_view text, bool* ok = nullptr) {
  std::string out = "left over";
  bool r = base64::decode(text, out);
  if (ok != nullptr) *ok = r;
  return r ? out : "<invalid>";
}

}  // namespace

TEST(Base64, Rfc4648Vectors) {
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(test_util::base64_encode(plain[i]), coded[i]);
    EXPECT_EQ(decoded(coded[i]), plain[i]);
  }
}

TEST(Base64, BinaryRoundTrip) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(decoded(test_util::base64_encode(all)), all);
  EXPECT_EQ(decoded("AGFsaWNlAHNlY3JldA=="), std::string("\0alice\0secret", 13));
}

TEST(Base64, RejectsWhatIsNotStrictBase64) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v Yg==", "Zm9v\r\n", "Zg==Zg==", "Zm=v", "Zm9*", "====",
                          "Zh==", "Zm9=", "-_8=", "\xff\xff\xff\xff"}) {
    bool ok = true;
    EXPECT_EQ(decoded(bad, &ok), "<invalid>") << bad;
    EXPECT_FALSE(ok) << bad;
  }
}

TEST(Base64, InvalidInputLeavesNothingBehind) {
  std::string out = "previous secret";
  EXPECT_FALSE(base64::decode("Zm9vYmFy!!!!", out));
  EXPECT_TRUE(out.empty());
}
