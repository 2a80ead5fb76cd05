// spamt_test_table.h: a compiled limits table in memory, for unit tests.
//
// build() parses control/spamt (and control/relaylimits) text, compiles it,
// writes the cdb into a memfd and opens it with LimitsTable::open_fd(), so
// tests run the same code qmail-newspamt and qmail-smtpd run, without files.
#ifndef QT_TEST_SPAMT_TEST_TABLE_H
#define QT_TEST_SPAMT_TEST_TABLE_H

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "limits_table.h"
#include "spamt_compile.h"
#include "spamt_syntax.h"

namespace spamt_test {

struct Built {
  spamt::Table compiled;
  std::string bytes;  // the cdb file
  spamt::LimitsTable table;
  spamt::TableStatus status = spamt::TableStatus::closed;
};

// A memfd holding `bytes`.
inline int memfd_with(std::string_view bytes) {
  int fd = memfd_create("spamt-test", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    close(fd);
    return -1;
  }
  lseek(fd, 0, SEEK_SET);
  return fd;
}

// The cdb bytes of a compiled table.
inline std::string cdb_bytes(const spamt::Table& t) {
  int fd = memfd_create("spamt-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(spamt::write_cdb(t, fd), 0);
  off_t size = lseek(fd, 0, SEEK_END);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  EXPECT_EQ(pread(fd, bytes.data(), bytes.size(), 0), size);
  close(fd);
  return bytes;
}

inline spamt::Table compile_text(std::string_view spamt_text, std::optional<std::string_view> relaylimits = {}) {
  spamt::ParsedFile s = spamt::parse_spamt(spamt_text, "control/spamt");
  spamt::ParsedFile r;
  if (relaylimits) r = spamt::parse_relaylimits(*relaylimits, "control/relaylimits");
  return spamt::compile(&s, relaylimits ? &r : nullptr);
}

// Compiles and opens; the test fails when the text has errors.
inline std::unique_ptr<Built> build(std::string_view spamt_text,
                                    std::optional<std::string_view> relaylimits = {}) {
  auto b = std::make_unique<Built>();
  b->compiled = compile_text(spamt_text, relaylimits);
  for (const spamt::Diagnostic& d : b->compiled.diagnostics) EXPECT_TRUE(d.warning) << d.text();
  b->bytes = cdb_bytes(b->compiled);
  b->status = b->table.open_fd(memfd_with(b->bytes));
  EXPECT_EQ(b->status, spamt::TableStatus::ok);
  return b;
}

// Compiles control/spamt text into a cdb file at `path`, as qmail-newspamt
// would; the test fails when it cannot be written.
inline void write_table_file(const std::string& path, std::string_view spamt_text) {
  const std::string bytes = cdb_bytes(compile_text(spamt_text));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

inline std::string str(std::string_view s) { return std::string(s); }

}  // namespace spamt_test

#endif
