// spamt_compile.h: from parsed control files to control/spamt.cdb.
//
// compile() combines the definitions of control/spamt and
// control/relaylimits into one entry per identity:
//   - native lines: one line per identity; a second one is an error that
//     names the first;
//   - spamthrottle lines: as spamthrottle read them, the first line for a
//     block wins and the last default line wins (the others are ignored
//     with a warning);
//   - relaylimits lines: the last line for a key wins (warning);
//   - across sources, an identity's kinds of settings (relay, teergrube,
//     authfail) come from whichever line gives them; two sources giving the
//     same kind for the same identity is an error naming both lines.
// write_cdb() then writes the table deterministically: the same input gives
// the same bytes.

#ifndef QT_SPAMT_COMPILE_H
#define QT_SPAMT_COMPILE_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spamt_format.h"
#include "spamt_syntax.h"

namespace spamt {

// One entry of the compiled table (owning); view() gives the Entry that
// spamt_format.h encodes.
struct CompiledEntry {
  Identity identity;
  std::string identity_text;  // Identity::text()
  std::string budget_key;     // Identity::budget_key()

  std::optional<Relay> relay;
  std::string relay_origin;
  Source relay_source = Source::native;

  std::optional<Teergrube> teergrube;
  std::string tgtext, group;
  std::string teergrube_origin;
  Source teergrube_source = Source::native;

  std::optional<Windows> authfail;
  std::string authfail_origin;

  std::optional<Client> client;
  std::string client_origin;

  // Address and network entries: see Entry::ancestors (set by compile()).
  std::uint8_t ancestors[format::ancestor_count] = {format::no_ancestor, format::no_ancestor, format::no_ancestor,
                                                    format::no_ancestor, format::no_ancestor};

  // The cdb key: "!default", "u:...", "d:...", or the binary network key.
  std::string key() const;
  // Views into this object: valid while it lives unchanged.
  Entry view() const;
};

struct Table {
  std::vector<CompiledEntry> entries;  // sorted by key(); the default among them
  std::vector<Diagnostic> diagnostics;  // errors and warnings from every file

  bool ok() const noexcept;  // no errors
  format::Index index() const;
};

// Either file may be absent (nullptr). Diagnostics of the parsed files are
// carried over; compile errors are added.
Table compile(const ParsedFile* spamt, const ParsedFile* relaylimits);

// Writes the table as a cdb to `fd` (at its current offset, which must be
// 0). Returns 0, or an errno value.
int write_cdb(const Table& table, int fd);

}  // namespace spamt

#endif
