// spamt_settings.cpp: see spamt_settings.h.

#include "spamt_settings.h"


namespace spamt {

std::string_view kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::user: return "user";
    case Kind::domain: return "domain";
    case Kind::address: return "address";
    case Kind::network: return "network";
    case Kind::fallback: return "default";
  }
  return "unknown";
}

std::string_view field_name(std::uint16_t bit) noexcept {
  switch (bit) {
    case field::st: return "st";
    case field::stmax: return "stmax";
    case field::flush: return "flush";
    case field::strcpt: return "strcpt";
    case field::tg: return "tg";
    case field::tgtext: return "tgtext";
    case field::prefix4: return "prefix4";
    case field::prefix6: return "prefix6";
    case field::group: return "group";
    case field::tarpitrelay: return "tarpitrelay";
  }
  return "unknown";
}

bool Windows::operator==(const Windows& o) const noexcept {
  if (count != o.count) return false;
  for (std::size_t i = 0; i < count; ++i)
    if (!(at[i] == o.at[i])) return false;
  return true;
}

std::size_t format_windows(const Windows& w, char* out) noexcept {
  if (w.count == 0) {
    out[0] = '0';
    return 1;
  }
  std::size_t n = 0;
  for (std::size_t i = 0; i < w.count && i < max_windows; ++i) {
    if (i > 0) out[n++] = ',';
    n += helpers::put_decimal(out + n, w.at[i].limit);
    out[n++] = '/';
    n += format_period(w.at[i].seconds, out + n);
  }
  return n;
}

}  // namespace spamt
