// The C facade must never throw or crash, whatever qmail-smtpd hands it.
#include <gtest/gtest.h>

#include "throttle.h"

TEST(ThrottleFacade, SessionAcceptsMissingAddress) {
  throttle_session(nullptr, 0);
  throttle_session("", 1);
  throttle_session("192.0.2.7", 1);
  SUCCEED();
}

TEST(ThrottleFacade, IsCallableFromC) {
  // the declaration is extern "C" and noexcept
  static_assert(noexcept(throttle_session("", 0)));
  void (*fn)(const char*, int) noexcept = &throttle_session;
  EXPECT_NE(fn, nullptr);
}

TEST(ThrottleFacade, AuthHooksAnswerOkUntilALimitIsConfigured) {
  throttle_session("192.0.2.7", 0);
  EXPECT_EQ(throttle_auth_attempt(), THROTTLE_OK);
  EXPECT_EQ(throttle_auth_failure(), THROTTLE_OK);
  throttle_user("alice@example.com");
  throttle_user(nullptr);
  static_assert(noexcept(throttle_auth_attempt()) && noexcept(throttle_auth_failure()) &&
                noexcept(throttle_user("")));
}
