// control_file.cpp: see control_file.h.

#include "control_file.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace control_file {

namespace {

constexpr std::size_t max_size = 64 * 1024;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

Contents read(const char* path) {
  Contents c;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT) return c;
    c.status = Contents::Status::unreadable;
    c.error = errno;
    return c;
  }
  char buf[4096];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r == -1 && errno == EINTR) continue;
    if (r == -1) {
      c.status = Contents::Status::unreadable;
      c.error = errno;
      c.text.clear();
      close(fd);
      return c;
    }
    if (r == 0) break;
    c.text.append(buf, static_cast<std::size_t>(r));
    if (c.text.size() >= max_size) break;
  }
  close(fd);
  c.status = Contents::Status::ok;
  return c;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::string first_line(const char* path) {
  Contents c = read(path);
  if (c.status != Contents::Status::ok) return {};
  std::string_view text = c.text;
  std::string_view line = text.substr(0, text.find('\n'));
  while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
  return std::string(line);
}

}  // namespace control_file
