// throttle_controls.cpp: see throttle_controls.h.

#include "throttle_controls.h"

#include <cstring>

#include "control_file.h"
#include "helpers.h"
#include "logline.h"

namespace throttle_controls {

namespace {

std::string applied(const Number& n, std::uint32_t v) {
  std::string s = n.sentence;
  s.replace(s.find('%'), 1, std::to_string(v));
  return s;
}

}  // namespace

Reading judge(const Number& n, std::string_view first_line) {
  Reading r;
  r.value = n.fallback;
  if (first_line.empty()) return r;
  const std::optional<std::uint32_t> v = helpers::parse_u32(first_line);
  if (v && *v >= n.min && *v <= n.max) {
    r.status = Reading::Status::ok;
    r.value = *v;
    return r;
  }
  r.status = Reading::Status::invalid;
  r.problem = "'" + logline::text(first_line, 40) + "' is not a whole number from " + std::to_string(n.min) +
              " to " + std::to_string(n.max);
  return r;
}

Reading read(const Number& n, const char* path) {
  control_file::Contents c = control_file::read(path);
  if (c.status == control_file::Contents::Status::unreadable) {
    Reading r;
    r.status = Reading::Status::unreadable;
    r.value = n.fallback;
    r.problem = std::string("unable to read it: ") + std::strerror(c.error);
    return r;
  }
  std::string_view text = c.text;
  std::string_view line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
  return judge(n, line);
}

std::string log_line(const Number& n, const Reading& r) {
  return std::string("throttle: control/") + n.name + ": " + r.problem + ": using the default, " +
         std::to_string(n.fallback);
}

}  // namespace throttle_controls

extern "C" int showctl_throttle_number(const char* fn, void (*out)(const char* line)) {
  using throttle_controls::Reading;
  const throttle_controls::Number* n = nullptr;
  for (const auto* k : {&throttle_controls::store_size, &throttle_controls::tarpit_budget})
    if (std::strcmp(fn, k->name) == 0) n = k;
  if (n == nullptr) return -2;
  const Reading r = throttle_controls::read(*n, fn);
  switch (r.status) {
    case Reading::Status::absent:
      out(("(Default.) " + throttle_controls::applied(*n, r.value)).c_str());
      return 0;
    case Reading::Status::ok:
      out(throttle_controls::applied(*n, r.value).c_str());
      return 1;
    default:
      out(("Oops! " + r.problem + ": qmail-smtpd uses the default. " + throttle_controls::applied(*n, r.value))
              .c_str());
      return -1;
  }
}
