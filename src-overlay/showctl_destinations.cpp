// showctl_destinations.cpp: see showctl_destinations.h.

#include "showctl_destinations.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "destination_table.h"

namespace {

constexpr std::size_t shown_lines = 50;

}  // namespace

extern "C" int showctl_destinations(const char* fn, void (*out)(const char* line)) {
  FILE* f = std::fopen(fn, "re");
  if (f == nullptr) {
    if (errno == ENOENT) return 0;
    out((std::string("Oops! Trouble reading this file: ") + std::strerror(errno) + ".").c_str());
    return -1;
  }
  std::string text;
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool read_ok = !std::ferror(f);
  std::fclose(f);
  if (!read_ok) {
    out("Oops! Trouble reading this file.");
    return -1;
  }
  std::vector<destinations::Error> errors;
  std::optional<destinations::Table> t = destinations::Table::parse(text, &errors);
  if (!t) {
    out("Oops! This file has errors; qmail-send keeps the settings it had (or, at start, holds every remote "
        "delivery):");
    for (const auto& e : errors) out(("line " + std::to_string(e.line_no) + ": " + e.message).c_str());
    return -1;
  }
  if (t->empty()) {
    out("No destinations: remote deliveries have no per-destination limits.");
    return 1;
  }
  const std::size_t count = t->lines().size();
  out((std::to_string(count) + (count == 1 ? " destination" : " destinations") +
       " with limits of their own (concurrencydomains(5)):")
          .c_str());
  std::size_t i = 0;
  for (const auto& l : t->lines()) {
    if (i++ == shown_lines) {
      out(("... and " + std::to_string(count - shown_lines) + " more (qmail-destinations -c shows all).").c_str());
      break;
    }
    out(("line " + std::to_string(l.line_no) + ": " + destinations::describe(l)).c_str());
  }
  if (t->fallback() == destinations::Table::none)
    out("No '*' line: domains without a line of their own are not limited.");
  return 1;
}
