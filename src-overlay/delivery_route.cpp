// delivery_route.cpp: see delivery_route.h.

#include "delivery_route.h"

#include "destination_table.h"  // canonical_name
#include "text_syntax.h"

namespace destinations {

std::optional<Route> parse_route(std::string_view text) {
  std::string_view field[3];
  for (std::string_view& f : field) {
    const std::size_t sp = text.find(' ');
    f = text.substr(0, sp);
    if (f.empty()) return std::nullopt;
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
  }
  if (!text.empty()) return std::nullopt;
  Route r;
  if (field[0] != "-") {
    r.host = canonical_name(field[0]);
    if (r.host.size() > max_name || !text::valid_domain(r.host)) return std::nullopt;
  }
  if (field[1] != "-") {
    r.address = ip::parse(field[1]);
    if (!r.address) return std::nullopt;
  }
  if (field[2] != "-") {
    std::optional<std::uint32_t> code = text::parse_uint32(field[2]);
    if (!code || field[2].size() != 3) return std::nullopt;
    r.greeting = static_cast<int>(*code);
  }
  return r;
}

}  // namespace destinations
