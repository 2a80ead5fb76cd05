// fuzz_table: libFuzzer target for reading a damaged control/spamt.cdb.
//
// A table qmail-newspamt did not write (a disk error, an editor, another
// program) must be refused or read safely, never misread into a crash. The
// input patches a valid compiled table: its first four bytes give an offset
// into the file, the rest overwrites the bytes there. An input starting
// with "RAW!" is taken as the whole file instead. Then the table is opened
// and, if it opens, looked up and explained for a few clients.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <sys/mman.h>
#include <unistd.h>

#include "limits_table.h"
#include "spamt_compile.h"
#include "spamt_explain.h"
#include "spamt_syntax.h"

namespace {

constexpr std::string_view base_text =
    "default rcpt=1000/1d msg=100/1d authfail=5/10m st=1500 stmax=120000 tgtext=\"slow down\"\n"
    "alice@example.com rcpt=100/1h,1000/1d action=421\n"
    "user:postmaster rcpt=0\n"
    "@example.com rcpt=5000/1d\n"
    "192.0.2.7 exempt\n"
    "192.0.2.0/24 rcpt=10/1m each st=2000 flush=yes prefix4=24 authfail=3/1h\n"
    "2001:db8::/32 msg=50/1h unauthenticated group=v6pool prefix6=48 tarpitrelay\n"
    "2001:db8:1::/48 rcpt=5/1h\n"
    "10.0.0.0/8:abuse:5000:::1:2:hold your horses!:\n";

std::string compile_base() {
  spamt::ParsedFile f = spamt::parse_spamt(base_text, "control/spamt");
  spamt::Table t = spamt::compile(&f, nullptr);
  int fd = memfd_create("base", MFD_CLOEXEC);
  spamt::write_cdb(t, fd);
  off_t size = lseek(fd, 0, SEEK_END);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (pread(fd, bytes.data(), bytes.size(), 0) != size) bytes.clear();
  close(fd);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string base = compile_base();
  std::string file;
  if (size >= 4 && std::memcmp(data, "RAW!", 4) == 0) {
    file.assign(reinterpret_cast<const char*>(data) + 4, size - 4);
  } else {
    file = base;
    if (size >= 4) {
      std::uint32_t offset = static_cast<std::uint32_t>(data[0] | data[1] << 8 | data[2] << 16) |
                             static_cast<std::uint32_t>(data[3]) << 24;
      offset %= static_cast<std::uint32_t>(file.size());
      for (std::size_t i = 4; i < size && offset + (i - 4) < file.size(); ++i) file[offset + (i - 4)] = static_cast<char>(data[i]);
    }
  }
  {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, file.data(), file.size()) != static_cast<ssize_t>(file.size())) {
      close(fd);
      return 0;
    }
    static spamt::LimitsTable table;
    if (table.open_fd(fd) != spamt::TableStatus::ok) return 0;
    static spamt::Lookup l;
    std::string out;
    static constexpr const char* clients[][2] = {
        {"192.0.2.7", "alice@example.com"}, {"192.0.2.9", ""},    {"2001:db8:1:2::3", "bob@example.com"},
        {"10.1.2.3", "postmaster"},         {"198.51.100.1", ""}, {"::ffff:192.0.2.200", "Alice@Example.COM"},
    };
    for (const auto& c : clients) {
      if (table.lookup(c[0], c[1], l) == spamt::LookupStatus::ok) {
        for (const spamt::Budget& b : l.relay()) {
          if (b.rcpt == nullptr || b.msg == nullptr || b.rcpt->count > spamt::max_windows) __builtin_trap();
        }
        if (l.authfail().windows == nullptr) __builtin_trap();
      }
      spamt::explain(table, c[0], c[1], out);
    }
    table.close();
  }
  return 0;
}
