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
