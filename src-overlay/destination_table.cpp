// destination_table.cpp: see destination_table.h and doc/concurrencydomains.5.

#include "destination_table.h"

#include <algorithm>

#include "helpers.h"
#include "spamt_syntax.h"  // spamt::parse_windows, spamt::parse_period
#include "text_syntax.h"

namespace destinations {

std::string_view kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::fallback: return "default";
    case Kind::domain: return "domain";
    case Kind::suffix: return "suffix";
    case Kind::group: return "group";
    case Kind::mx_host: return "mx";
    case Kind::mx_suffix: return "mx suffix";
    case Kind::network: return "ip";
  }
  return "?";
}

std::string canonical_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return text::lowered(name);
}

std::string describe(const Line& l) {
  std::string s = l.destination + " (" + std::string(kind_name(l.kind)) + ") limit " + std::to_string(l.limit);
  if (!l.rate.empty()) {
    char buf[spamt::windows_text_max];
    s += " rate " + std::string(buf, spamt::format_windows(l.rate, buf));
  }
  if (l.backoff.failures == 0) {
    s += " no backoff";
  } else {
    s += " pause " + helpers::period_text(l.backoff.pause_seconds) + " after " +
         std::to_string(l.backoff.failures) + " failures";
  }
  return s;
}

// Builds a Table line by line; every problem becomes an Error of its line.
class TableBuilder {
 public:
  explicit TableBuilder(std::vector<Error>* errors) : errors_(errors) {}

  void line(std::string_view raw, unsigned line_no);
  bool failed() const noexcept { return failed_; }
  Table take();

 private:
  bool error(std::string message);
  // A name for a domain, suffix or host line: canonical and valid, else an error.
  std::optional<std::string> name(std::string_view word, std::string_view what);
  bool claim(Table::NameMap& map, char kind, const std::string& key, std::string_view shown_as);
  bool destination(std::string_view word, Line& line);
  bool settings(std::string_view word, Line& line, unsigned& seen);

  Table table_;
  std::vector<Error>* errors_;
  unsigned line_no_ = 0;
  bool failed_ = false;       // some line was bad
  bool line_failed_ = false;  // the line being read is bad
  // where each name was claimed, for "already on line N"
  std::unordered_map<std::string, unsigned> claimed_;
};

bool TableBuilder::error(std::string message) {
  failed_ = true;
  line_failed_ = true;
  if (errors_->size() < Table::max_errors) errors_->push_back(Error{line_no_, std::move(message)});
  return false;
}

std::optional<std::string> TableBuilder::name(std::string_view word, std::string_view what) {
  std::string n = canonical_name(word);
  if (n.size() > max_name || !text::valid_domain(n)) {
    error(text::quoted(word) + " is not a valid " + std::string(what) +
          " (letters, digits, '-' and '_' in dot-separated labels)");
    return std::nullopt;
  }
  return n;
}

// Registers `key` in `map` for the line being built; a name may appear once
// per kind (`kind` tells the maps apart).
bool TableBuilder::claim(Table::NameMap& map, char kind, const std::string& key, std::string_view shown_as) {
  auto [it, fresh] = claimed_.emplace(kind + key, line_no_);
  if (!fresh) return error(std::string(shown_as) + " is already on line " + std::to_string(it->second));
  map.emplace(key, static_cast<int>(table_.lines_.size()));
  return true;
}

bool TableBuilder::destination(std::string_view word, Line& line) {
  if (word == "*") {
    if (table_.fallback_ != Table::none)
      return error("'*' is already on line " + std::to_string(table_.lines_[table_.fallback_].line_no));
    line.kind = Kind::fallback;
    line.destination = "*";
    table_.fallback_ = static_cast<int>(table_.lines_.size());
    return true;
  }
  if (word.substr(0, 3) == "mx:") {
    std::string_view host = word.substr(3);
    const bool suffix = !host.empty() && host.front() == '.';
    auto n = name(suffix ? host.substr(1) : host, suffix ? "mx: host suffix" : "mx: host");
    if (!n) return false;
    line.kind = suffix ? Kind::mx_suffix : Kind::mx_host;
    line.destination = (suffix ? "mx:." : "mx:") + *n;
    ++table_.route_lines_;
    return claim(suffix ? table_.mx_suffix_ : table_.mx_exact_, suffix ? 'M' : 'm', *n, line.destination);
  }
  if (word.substr(0, 3) == "ip:") {
    std::optional<ip::Network> net = ip::parse_network(word.substr(3));
    if (!net) return error(text::quoted(word) + " is not ip:ADDRESS or ip:ADDRESS/PREFIX (IPv4 or IPv6)");
    if (!ip::host_bits_clear(*net)) {
      ip::Network fixed{ip::masked(net->address, net->prefix), net->prefix};
      char buf[ip::text_max];
      return error(text::quoted(word) + " has host bits set; the block is ip:" +
                   std::string(buf, ip::format(fixed, buf)));
    }
    char buf[ip::text_max];
    line.kind = Kind::network;
    line.network = *net;
    line.destination = "ip:" + std::string(buf, ip::format(*net, buf));
    ++table_.route_lines_;
    for (int other : table_.networks_)
      if (table_.lines_[other].network == *net)
        return error(line.destination + " is already on line " + std::to_string(table_.lines_[other].line_no));
    table_.networks_.push_back(static_cast<int>(table_.lines_.size()));
    return true;
  }
  // A domain, a suffix, or a group of them.
  const bool group = word.find(',') != std::string_view::npos;
  line.kind = group ? Kind::group : (word.front() == '.' ? Kind::suffix : Kind::domain);
  std::string_view rest = word;
  bool ok = true;
  std::size_t members = 0;
  while (true) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    if (item.empty()) {
      ok = error(text::quoted(word) + " has an empty member; a group is DOMAIN,DOMAIN,... without blanks");
      break;
    }
    const bool suffix = item.front() == '.';
    auto n = name(suffix ? item.substr(1) : item, suffix ? "domain suffix" : "domain");
    if (!n) {
      ok = false;
      break;
    }
    const std::string shown_as = suffix ? "." + *n : *n;
    if (!line.destination.empty()) line.destination += ',';
    line.destination += shown_as;
    ++members;
    if (!claim(suffix ? table_.suffix_ : table_.exact_, suffix ? 'S' : 's', *n, shown_as)) {
      ok = false;
      break;
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return ok;
}

bool TableBuilder::settings(std::string_view word, Line& line, unsigned& seen) {
  const std::size_t eq = word.find('=');
  const std::string_view key = word.substr(0, eq);
  const std::string_view value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
  static constexpr std::string_view keys[] = {"rate", "failures", "pause"};
  unsigned bit = 0;
  for (unsigned i = 0; i < std::size(keys); ++i)
    if (key == keys[i]) bit = 1u << i;
  if (bit == 0 || eq == std::string_view::npos)
    return error("unknown setting " + text::quoted(word) + " (rate=N/PERIOD, failures=N, pause=PERIOD)");
  if (seen & bit) return error(std::string(key) + "= is given twice");
  seen |= bit;
  std::string why;
  if (key == "rate") {
    std::optional<spamt::Windows> w = spamt::parse_windows(value, &why);
    if (!w) return error("rate=" + text::shown(value) + ": " + why);
    line.rate = *w;
  } else if (key == "failures") {
    std::optional<std::uint32_t> n = text::parse_uint32(value);
    if (!n || *n > 1000000) return error("failures=" + text::shown(value) + ": must be a number 0 to 1000000");
    line.backoff.failures = *n;
  } else {
    std::optional<std::uint32_t> s = spamt::parse_period(value, &why);
    if (!s) return error("pause=" + text::shown(value) + ": " + why);
    line.backoff.pause_seconds = *s;
  }
  return true;
}

void TableBuilder::line(std::string_view raw, unsigned line_no) {
  line_no_ = line_no;
  std::string_view words[32];
  std::size_t n = 0;
  std::string_view rest = raw;
  while (true) {
    rest = text::trim(rest);
    if (rest.empty() || rest.front() == '#') break;
    std::size_t end = 0;
    while (end < rest.size() && !text::is_space(rest[end])) ++end;
    if (n == std::size(words)) {
      error("too many words");
      return;
    }
    words[n++] = rest.substr(0, end);
    rest = rest.substr(end);
  }
  if (n == 0) return;
  if (n == 1) {
    error("expected DESTINATION LIMIT [key=value ...], e.g. " + text::quoted(std::string(words[0]) + " 10"));
    return;
  }
  Line line;
  line.line_no = line_no;
  line_failed_ = false;
  if (destination(words[0], line)) {
    std::optional<std::uint32_t> limit = text::parse_uint32(words[1]);
    if (!limit || *limit > max_limit) {
      error("limit " + text::quoted(words[1]) + " must be a number 0 to " + std::to_string(max_limit));
    } else {
      line.limit = *limit;
      unsigned seen = 0;
      for (std::size_t i = 2; i < n; ++i)
        if (!settings(words[i], line, seen)) break;
    }
  }
  if (!line_failed_) table_.lines_.push_back(std::move(line));
}

Table TableBuilder::take() {
  std::sort(table_.networks_.begin(), table_.networks_.end(), [this](int a, int b) {
    return table_.lines_[a].network.prefix > table_.lines_[b].network.prefix;
  });
  return std::move(table_);
}

std::optional<Table> Table::parse(std::string_view text, std::vector<Error>* errors) {
  TableBuilder b(errors);
  unsigned line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    ++line_no;
    b.line(text.substr(0, nl), line_no);
    if (nl == std::string_view::npos) break;
    text = text.substr(nl + 1);
  }
  if (b.failed()) return std::nullopt;
  return b.take();
}

int Table::longest_suffix(const NameMap& suffixes, std::string_view name) noexcept {
  if (suffixes.empty()) return none;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (i != 0 && name[i - 1] != '.') continue;
    auto it = suffixes.find(name.substr(i));
    if (it != suffixes.end()) return it->second;
  }
  return none;
}

int Table::by_domain(std::string_view domain) const noexcept {
  if (domain.empty()) return none;
  auto it = exact_.find(domain);
  if (it != exact_.end()) return it->second;
  return longest_suffix(suffix_, domain);
}

int Table::by_route(std::string_view host, const ip::Address* address) const noexcept {
  if (!host.empty()) {
    auto it = mx_exact_.find(host);
    if (it != mx_exact_.end()) return it->second;
    int s = longest_suffix(mx_suffix_, host);
    if (s != none) return s;
  }
  if (address != nullptr)
    for (int l : networks_)
      if (ip::contains(lines_[l].network, *address)) return l;
  return none;
}

}  // namespace destinations
