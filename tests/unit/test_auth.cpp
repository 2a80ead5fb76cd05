// auth::Session: the RFC 4954 exchange, its replies, limits and secrets.
#include <gtest/gtest.h>

#include <string>

#include "auth.h"
#include "base64_encode.h"

namespace {

using auth::Step;

auth::Config on(bool force_tls = true) { return auth::parse_config(true, "", force_tls ? nullptr : "0"); }

std::string b64(std::string_view s) { return test_util::base64_encode(s); }

std::string plain(std::string_view authzid, std::string_view user, std::string_view password) {
  std::string s(authzid);
  s += '\0';
  s += user;
  s += '\0';
  s += password;
  return b64(s);
}

std::string code(const auth::Outcome& o) { return std::string(o.reply.substr(0, 3)); }

}  // namespace

TEST(AuthConfig, SmtpauthValues) {
  EXPECT_EQ(auth::parse_config(true, nullptr, nullptr).mode, auth::Mode::on);
  EXPECT_EQ(auth::parse_config(true, "", nullptr).mode, auth::Mode::on);
  EXPECT_EQ(auth::parse_config(true, "!", nullptr).mode, auth::Mode::required);
  EXPECT_EQ(auth::parse_config(true, "!cram", nullptr).mode, auth::Mode::required);
  EXPECT_EQ(auth::parse_config(true, "-", nullptr).mode, auth::Mode::off);
  EXPECT_EQ(auth::parse_config(true, "+cram", nullptr).mode, auth::Mode::on);
  EXPECT_TRUE(auth::parse_config(true, "", nullptr).force_tls);
  EXPECT_TRUE(auth::parse_config(true, "", "1").force_tls);
  EXPECT_TRUE(auth::parse_config(true, "", "").force_tls);
  EXPECT_FALSE(auth::parse_config(true, "", "0").force_tls);
}

TEST(AuthSession, OfferedOnlyWithACheckerAndUnderTlsByDefault) {
  EXPECT_FALSE(auth::Session(auth::parse_config(false, "", "0")).offered(true));
  EXPECT_FALSE(auth::Session(auth::parse_config(true, "-", "0")).offered(true));
  auth::Session s(on());
  EXPECT_FALSE(s.offered(false));
  EXPECT_TRUE(s.offered(true));
  EXPECT_TRUE(auth::Session(on(false)).offered(false));
}

TEST(AuthSession, NotConfiguredAnswersLikeStock) {
  auth::Session s;
  auto o = s.begin("PLAIN AGFsaWNlAHNlY3JldA==", false, true);
  EXPECT_EQ(o.step, Step::error);
  EXPECT_EQ(o.reply, "502 unimplemented (#5.5.1)\r\n");
}

TEST(AuthSession, BeforeTlsIsRefusedWith538) {
  auth::Session s(on());
  auto o = s.begin("PLAIN " + plain("", "alice", "pw"), false, false);
  EXPECT_EQ(o.step, Step::error);
  EXPECT_EQ(code(o), "538");
  EXPECT_EQ(s.failures(), 0u);
}

TEST(AuthSession, PlainWithInitialResponse) {
  auth::Session s(on());
  auto o = s.begin("PLAIN " + plain("", "alice", "correct horse"), false, true);
  ASSERT_EQ(o.step, Step::check);
  EXPECT_EQ(s.user(), "alice");
  EXPECT_EQ(s.password(), "correct horse");
  EXPECT_EQ(s.mechanism(), "PLAIN");
  o = s.finish(auth::Verdict::accepted);
  EXPECT_EQ(o.step, Step::ok);
  EXPECT_EQ(o.reply, "235 2.7.0 authentication successful\r\n");
  EXPECT_TRUE(s.authenticated());
  EXPECT_EQ(s.password(), "");  // wiped once checked
}

TEST(AuthSession, PlainWithoutInitialResponseAndLowercaseMechanism) {
  auth::Session s(on());
  auto o = s.begin("plain", false, true);
  ASSERT_EQ(o.step, Step::more);
  EXPECT_EQ(o.reply, "334 \r\n");
  o = s.next(plain("alice", "alice", "pw"));  // authzid = authcid is fine
  ASSERT_EQ(o.step, Step::check);
  EXPECT_EQ(s.user(), "alice");
}

TEST(AuthSession, PlainAsAnotherUserIsRefused) {
  auth::Session s(on());
  auto o = s.begin("PLAIN " + plain("admin", "alice", "pw"), false, true);
  EXPECT_EQ(o.step, Step::fail);
  EXPECT_EQ(code(o), "535");
  EXPECT_EQ(s.refusal_reason(), "authorization identity");
  EXPECT_EQ(s.failures(), 1u);
}

TEST(AuthSession, LoginTwoStepsAndWithInitialUser) {
  auth::Session s(on());
  auto o = s.begin("LOGIN", false, true);
  ASSERT_EQ(o.step, Step::more);
  EXPECT_EQ(o.reply, "334 VXNlcm5hbWU6\r\n");
  o = s.next(b64("alice"));
  ASSERT_EQ(o.step, Step::more);
  EXPECT_EQ(o.reply, "334 UGFzc3dvcmQ6\r\n");
  o = s.next(b64("correct horse"));
  ASSERT_EQ(o.step, Step::check);
  EXPECT_EQ(s.user(), "alice");
  EXPECT_EQ(s.password(), "correct horse");
  EXPECT_EQ(s.mechanism(), "LOGIN");

  auth::Session t(on());
  o = t.begin("LOGIN " + b64("bob@other.example"), false, true);
  ASSERT_EQ(o.step, Step::more);
  EXPECT_EQ(o.reply, "334 UGFzc3dvcmQ6\r\n");
  o = t.next(b64("s3cret"));
  ASSERT_EQ(o.step, Step::check);
  EXPECT_EQ(t.user(), "bob@other.example");
}

TEST(AuthSession, UnknownMechanismAndSyntax) {
  auth::Session s(on());
  EXPECT_EQ(code(s.begin("CRAM-MD5", false, true)), "504");
  EXPECT_EQ(code(s.begin("", false, true)), "501");
  EXPECT_EQ(code(s.begin("PLAIN abc def", false, true)), "501");
  EXPECT_EQ(s.failures(), 0u);
}

TEST(AuthSession, MalformedBase64) {
  auth::Session s(on());
  auto o = s.begin("PLAIN not*base64", false, true);
  EXPECT_EQ(o.step, Step::error);
  EXPECT_EQ(o.reply, "501 5.5.2 cannot decode response\r\n");
  o = s.begin("LOGIN", false, true);
  o = s.next("%%%%");
  EXPECT_EQ(code(o), "501");
  // a PLAIN response without its two NULs
  EXPECT_EQ(code(s.begin("PLAIN " + b64("alice"), false, true)), "501");
  EXPECT_EQ(code(s.begin("PLAIN " + b64(std::string("alice\0pw", 8)), false, true)), "501");
  EXPECT_EQ(s.failures(), 0u);
  EXPECT_EQ(code(s.next("anything")), "503");  // no exchange in progress any more
}

TEST(AuthSession, ClientCancelsWithStar) {
  auth::Session s(on());
  s.begin("LOGIN", false, true);
  s.next(b64("alice"));
  auto o = s.next("*");
  EXPECT_EQ(o.step, Step::error);
  EXPECT_EQ(o.reply, "501 5.0.0 authentication cancelled\r\n");
  EXPECT_EQ(s.failures(), 0u);
  EXPECT_EQ(s.password(), "");
}

TEST(AuthSession, OverlongLines) {
  auth::Session s(on());
  s.begin("PLAIN", false, true);
  auto o = s.next(std::string(auth::line_max + 1, 'A'));
  EXPECT_EQ(o.reply, "500 5.5.6 authentication exchange line is too long\r\n");
  EXPECT_EQ(code(s.begin("PLAIN " + std::string(auth::line_max + 1, 'A'), false, true)), "500");
  // at the limit it is merely a very long (here: undecodable) response
  s.begin("PLAIN", false, true);
  EXPECT_EQ(code(s.next(std::string(auth::line_max - 1, 'A'))), "501");
}

TEST(AuthSession, TwiceAndDuringATransaction) {
  auth::Session s(on());
  EXPECT_EQ(s.begin("PLAIN " + plain("", "alice", "pw"), true, true).reply,
            "503 5.5.1 AUTH not permitted during a mail transaction\r\n");
  s.begin("PLAIN " + plain("", "alice", "pw"), false, true);
  s.finish(auth::Verdict::accepted);
  EXPECT_EQ(s.begin("PLAIN " + plain("", "alice", "pw"), false, true).reply, "503 5.5.1 already authenticated\r\n");
  EXPECT_TRUE(s.authenticated());
}

TEST(AuthSession, CredentialsRefusedWithoutAskingTheChecker) {
  for (auto [user, password, reason] :
       {std::tuple{std::string("alice"), std::string(""), "empty password"},
        std::tuple{std::string(""), std::string("pw"), "invalid user name"},
        std::tuple{std::string("al\nice"), std::string("pw"), "invalid user name"},
        std::tuple{std::string(auth::user_max + 1, 'u'), std::string("pw"), "invalid user name"},
        std::tuple{std::string("alice"), std::string(auth::password_max + 1, 'p'), "password too long"}}) {
    auth::Session s(on());
    auto o = s.begin("PLAIN " + plain("", user, password), false, true);
    EXPECT_EQ(o.step, Step::fail) << reason;
    EXPECT_EQ(s.refusal_reason(), reason);
  }
  auth::Session s(on());
  s.begin("LOGIN " + b64("alice"), false, true);
  auto o = s.next(b64(std::string("p\0w", 3)));
  EXPECT_EQ(o.step, Step::fail);
  EXPECT_EQ(s.refusal_reason(), "invalid password");
  // the largest record checkpassword can take still goes to the checker
  auth::Session t(on());
  o = t.begin("PLAIN " + plain("", std::string(auth::user_max, 'u'), std::string(auth::password_max, 'p')), false,
              true);
  EXPECT_EQ(o.step, Step::check);
}

TEST(AuthSession, FailuresAreDelayedMoreEachTimeAndTheThirdEndsTheSession) {
  auth::Session s(on());
  auto o = s.begin("PLAIN " + plain("", "alice", "wrong"), false, true);
  ASSERT_EQ(o.step, Step::check);
  o = s.finish(auth::Verdict::refused);
  EXPECT_EQ(o.step, Step::fail);
  EXPECT_EQ(o.reply, "535 5.7.8 authentication credentials invalid\r\n");
  EXPECT_EQ(o.delay_seconds, 1u);
  s.begin("PLAIN " + plain("", "alice", "wrong"), false, true);
  o = s.finish(auth::Verdict::refused);
  EXPECT_EQ(o.step, Step::fail);
  EXPECT_EQ(o.delay_seconds, 2u);
  // temporary failures and protocol errors do not count
  s.begin("PLAIN " + plain("", "alice", "pw"), false, true);
  EXPECT_EQ(s.finish(auth::Verdict::temporary).reply, "454 4.7.0 temporary authentication failure\r\n");
  s.begin("PLAIN ***", false, true);
  EXPECT_EQ(s.failures(), 2u);
  s.begin("PLAIN " + plain("", "alice", "wrong"), false, true);
  o = s.finish(auth::Verdict::refused);
  EXPECT_EQ(o.step, Step::drop);
  EXPECT_EQ(o.reply, "421 4.7.0 too many authentication failures, closing connection\r\n");
  EXPECT_EQ(o.delay_seconds, 3u);
  EXPECT_FALSE(s.authenticated());
}

TEST(AuthSession, RequiredRefusesMailUntilAuthenticated) {
  auth::Session s(auth::parse_config(true, "!", nullptr));
  EXPECT_EQ(s.refuse_mail(false).value_or(""), "530 5.7.0 must issue a STARTTLS command first\r\n");
  EXPECT_EQ(s.refuse_mail(true).value_or(""), "530 5.7.0 authentication required\r\n");
  s.begin("PLAIN " + plain("", "alice", "pw"), false, true);
  s.finish(auth::Verdict::accepted);
  EXPECT_FALSE(s.refuse_mail(true));
  // not required: never refused
  EXPECT_FALSE(auth::Session(on()).refuse_mail(false));
  EXPECT_FALSE(auth::Session().refuse_mail(false));
  // required without a checker: fail closed
  EXPECT_TRUE(auth::Session(auth::parse_config(false, "!", nullptr)).refuse_mail(true));
}

TEST(AuthIdentity, BareNamesGetTheDefaultDomain) {
  EXPECT_EQ(auth::identity("alice", "example.com"), "alice@example.com");
  EXPECT_EQ(auth::identity("bob@other.example", "example.com"), "bob@other.example");
  EXPECT_EQ(auth::identity("alice", ""), "alice");
}

TEST(AuthSecret, WipeClearsTheBuffer) {
  auth::Secret s;
  s.str() = "a long password that is not in the small buffer";
  const char* p = s.str().data();
  std::size_t n = s.str().size();
  s.wipe();
  EXPECT_TRUE(s.str().empty());
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(p[i], '\0');  // same buffer, capacity kept
}
