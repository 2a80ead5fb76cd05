// control_file.h: reading qmail control files from the overlay.
//
// qmail-smtpd runs in QMAIL_HOME, so paths are relative ("control/me").
// Like qmail's control.c, lines lose trailing white space; a missing file is
// not an error, an unreadable one is.

#ifndef QT_CONTROL_FILE_H
#define QT_CONTROL_FILE_H

#include <string>
#include <string_view>
#include <vector>

namespace control_file {

struct Contents {
  enum class Status { ok, missing, unreadable };
  Status status = Status::missing;
  std::string text;  // the whole file when ok
  int error = 0;     // errno when unreadable
};

// Reads at most 64 KiB of the file at `path`.
Contents read(const char* path);

// The non-empty lines of `text`, each without trailing white space.
std::vector<std::string_view> lines(std::string_view text);

// The first line of `path` (trailing white space removed), or "" when the
// file is missing, unreadable or empty.
std::string first_line(const char* path);

}  // namespace control_file

#endif
