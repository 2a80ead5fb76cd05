// checkpassword.h: asking a checkpassword-compatible program about a login.
//
// The interface qmail-popup uses (cr.yp.to/checkpwd/interface.html): the
// program reads "user\0password\0timestamp\0" from descriptor 3 and runs the
// rest of its command line when the password is right (exit 0 all in all),
// exits non-zero when it is wrong, 111 for a temporary problem. Here its
// descriptor 0 is /dev/null and 1 is a copy of 2, so that neither it nor what
// it runs can touch the client's connection; 2 is qmail-smtpd's log.

#ifndef QT_CHECKPASSWORD_H
#define QT_CHECKPASSWORD_H

#include <string>
#include <string_view>

namespace checkpassword {

enum class Result { accepted, refused, temporary };

struct Outcome {
  Result result;
  std::string problem;  // for the log when temporary: "exit 111", "timeout", ...
};

// Runs argv[0] (found through PATH, like qmail-popup) with argv as its
// arguments. Waits at most timeout_seconds for it, then kills it (temporary).
Outcome run(char* const* argv, std::string_view user, std::string_view password,
            unsigned timeout_seconds) noexcept;

}  // namespace checkpassword

#endif
