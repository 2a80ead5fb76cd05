// base64.h: RFC 4648 base64 decoding, as SMTP AUTH (RFC 4954) uses it.
// qmail-smtpd only decodes (its AUTH LOGIN prompts are constants); tests
// encode with tests/unit/base64_encode.h.

#ifndef QT_BASE64_H
#define QT_BASE64_H

#include <string>
#include <string_view>

namespace base64 {

// Strict decoding into `out` (replaced): only the standard alphabet, length
// a multiple of 4, '=' padding only at the end, no bits left over, no white
// space. Returns false (out left empty) for anything else. Decodes in place
// into the caller's string so that secrets leave no temporary copies.
bool decode(std::string_view text, std::string& out);

}  // namespace base64

#endif
