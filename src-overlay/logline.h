// logline.h: qmail-smtpd's log lines from the overlay's TLS and AUTH code.
//
// One line each on descriptor 2 (tcpserver passes it to multilog), written
// with a single write(2), prefixed "qmail-smtpd: ". Anything that came from
// the client goes through field() first, so it can neither break the line nor
// the fixed field order that people and fail2ban rely on.

#ifndef QT_LOGLINE_H
#define QT_LOGLINE_H

#include <cstddef>
#include <string>
#include <string_view>

namespace logline {

// Untrusted text made safe as one field: printable ASCII other than space
// kept, every other byte becomes '?', cut after `max` bytes; "" becomes "-".
std::string field(std::string_view text, std::size_t max = 255);

// The same for free text at the end of a line (a reason): spaces kept.
std::string text(std::string_view text, std::size_t max = 400);

// The client's address as qmail-smtpd knows it: TCPREMOTEIP, or "unknown".
std::string_view remote_ip() noexcept;

// Writes "qmail-smtpd: " + text + "\n" to descriptor 2 in one write.
void emit(std::string_view text) noexcept;

}  // namespace logline

#endif
