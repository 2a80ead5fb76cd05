// text_syntax.h: the small pieces every control-file parser needs.
//
// ASCII only, whatever the locale: control files are bytes. Shared by the
// limits table's parser (spamt_syntax.h) and control/concurrencydomains
// (destination_table.h), so both read numbers and names the same way and
// quote bad input the same way in their messages.

#ifndef QT_TEXT_SYNTAX_H
#define QT_TEXT_SYNTAX_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "helpers.h"

namespace text {

inline bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
using helpers::lower;

// `s` without the blanks (is_space) at either end.
std::string_view trim(std::string_view s) noexcept;

// `s` in ASCII lower case.
using helpers::lowered;

// A piece of input for a message: printable ASCII as is, other bytes as
// \xNN, cut after 60 bytes ("..."). quoted() adds single quotes.
std::string shown(std::string_view s);
std::string quoted(std::string_view s);

// Decimal digits only (no sign, no blanks), 0 to 4294967295.
inline std::optional<std::uint32_t> parse_uint32(std::string_view s) noexcept { return helpers::parse_u32(s); }

// A lower-case domain: letters, digits, '-' and '_' in labels separated by
// single dots, no dot at either end, at most 253 bytes.
bool valid_domain(std::string_view d) noexcept;

}  // namespace text

#endif
