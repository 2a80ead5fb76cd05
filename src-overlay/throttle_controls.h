/* throttle_controls.h: the numbers in qmail-throttle's control files.
 *
 * control/throttlestoresize and control/tarpitbudget are read by one parser
 * with one set of defaults, whether qmail-smtpd reads them (C++ below) or
 * qmail-showctl explains them (the C function), so both say the same of a
 * value: a number in range applies; anything else ("2G", "-1", " 64", a
 * number out of range) is invalid, qmail-showctl says so and qmail-smtpd
 * logs it, and the default applies. A missing or empty file is the
 * default, silently. */

#ifndef QT_THROTTLE_CONTROLS_H
#define QT_THROTTLE_CONTROLS_H

#ifdef __cplusplus
extern "C" {
#endif

/* qmail-showctl: explains control file fn (tarpitbudget or
   throttlestoresize, relative to the control directory) through out(), one
   line without a newline. 0: absent or empty (the default), 1: a valid
   value, -1: invalid or unreadable (the default applies), -2: fn is not a
   number this module knows. */
int showctl_throttle_number(const char *fn, void (*out)(const char *line));

#ifdef __cplusplus
}

#include <cstdint>
#include <string>
#include <string_view>

namespace throttle_controls {

struct Number {
  const char* name;        // the file in control/
  std::uint32_t fallback;  // the default
  std::uint32_t min;
  std::uint32_t max;
  const char* sentence;    // qmail-showctl's explanation, "%" standing for the value
};

// The throttle store's size in MiB (store_lmdb.h's map_size).
inline constexpr Number store_size{"throttlestoresize", 1024, 1, 1048576,
                                   "The throttle store holds at most % MiB."};
// How many sessions the teergrube may hold at once (tarpit_budget.h;
// tcpserver's default -c is 40).
inline constexpr Number tarpit_budget{"tarpitbudget", 20, 0, 1000000,
                                      "At most % sessions are held by the teergrube at once."};

struct Reading {
  enum class Status { absent, ok, invalid, unreadable };
  Status status = Status::absent;
  std::uint32_t value = 0;  // what applies: the default unless ok
  std::string problem;      // why the default applies when invalid or unreadable
};

// Judges the first line of the file (trailing white space removed).
Reading judge(const Number& n, std::string_view first_line);

// Reads and judges the file at `path` (qmail-smtpd: "control/NAME").
Reading read(const Number& n, const char* path);

// qmail-smtpd's log line for a reading that is not ok or absent (without
// "qmail-smtpd: "): "throttle: control/NAME: PROBLEM".
std::string log_line(const Number& n, const Reading& r);

}  // namespace throttle_controls

#endif

#endif
