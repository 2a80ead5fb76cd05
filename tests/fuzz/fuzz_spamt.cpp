// fuzz_spamt: libFuzzer target for the control/spamt and control/relaylimits
// parsers and everything after them (make fuzz; a short run in make test).
//
// The input is parsed as both files. Whatever it is, nothing may crash, leak
// or misbehave under ASan/UBSan, and when it compiles cleanly:
//   - every record decodes back to exactly what was encoded;
//   - the cdb opens, and looking up each entry's own identity finds it;
//   - explain() runs for those clients.
// Any broken invariant aborts, which libFuzzer reports with the input.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <sys/mman.h>
#include <unistd.h>

#include "limits_table.h"
#include "spamt_compile.h"
#include "spamt_explain.h"
#include "spamt_syntax.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

int table_fd(const spamt::Table& t) {
  int fd = memfd_create("fuzz", MFD_CLOEXEC);
  check(fd >= 0);
  check(spamt::write_cdb(t, fd) == 0);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  spamt::ParsedFile s = spamt::parse_spamt(text, "control/spamt");
  spamt::ParsedFile r = spamt::parse_relaylimits(text, "control/relaylimits");
  for (const spamt::Diagnostic& d : s.diagnostics) check(d.where.rfind("control/spamt", 0) == 0);
  for (const spamt::Diagnostic& d : r.diagnostics) check(d.where.rfind("control/relaylimits", 0) == 0);

  const spamt::ParsedFile* none = nullptr;
  const spamt::ParsedFile* with_relaylimits = &r;
  for (const spamt::ParsedFile* second : {none, with_relaylimits}) {
    spamt::Table t = spamt::compile(&s, second);
    for (const spamt::CompiledEntry& e : t.entries) {
      spamt::Entry view = e.view();
      spamt::Entry back;  // views into `bytes`
      std::string bytes = spamt::format::encode_entry(view);
      check(spamt::format::decode_entry(bytes, back));
      check(back == view);
    }
    if (!t.ok()) continue;

    static spamt::LimitsTable table;  // big objects: static
    check(table.open_fd(table_fd(t)) == spamt::TableStatus::ok);
    check(table.index() == t.index());
    static spamt::Lookup l;
    std::string out;
    for (const spamt::CompiledEntry& e : t.entries) {
      const spamt::Identity& id = e.identity;
      if (id.kind == spamt::Kind::address || id.kind == spamt::Kind::network) {
        check(table.lookup(id.network.address, "", l) == spamt::LookupStatus::ok);
        if (e.relay && !e.relay->exempt) {
          // the block's own address finds this entry or a more specific one
          check(l.relay_ip_entry() != nullptr);
          check(l.relay_ip_entry()->network.prefix >= id.network.prefix);
        }
        check(spamt::explain(table, e.identity_text.substr(0, e.identity_text.find('/')), "x@y", out));
      } else if (id.kind == spamt::Kind::user) {
        check(table.lookup("192.0.2.1", id.name, l) == spamt::LookupStatus::ok);
        check(l.user_entry() != nullptr && l.user_entry()->identity == id.name);
        check(spamt::explain(table, "2001:db8::1", id.name, out));
      } else if (id.kind == spamt::Kind::domain) {
        check(table.lookup("192.0.2.1", "a@" + id.name, l) == spamt::LookupStatus::ok);
        check(l.domain_entry() != nullptr);
      } else {
        check(table.lookup("198.51.100.1", "", l) == spamt::LookupStatus::ok);
        check(table.default_entry() != nullptr);
      }
    }
    table.close();
  }
  return 0;
}
