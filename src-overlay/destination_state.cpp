// destination_state.cpp: see destination_state.h.

#include "destination_state.h"

#include <ctime>

#include <unistd.h>

namespace destinations {

namespace {

std::string_view state_name(Budget::State s) {
  switch (s) {
    case Budget::State::normal: return "normal";
    case Budget::State::paused: return "paused";
    case Budget::State::probing: return "probing";
  }
  return "?";
}

std::string_view block_name(Block b) {
  switch (b) {
    case Block::none: return "none";
    case Block::concurrency: return "concurrency";
    case Block::rate: return "rate";
    case Block::paused: return "paused";
    case Block::zero: return "zero";
  }
  return "?";
}

std::string_view budget_kind(const Budget& b) {
  if (b.unlimited) return "unlimited";
  if (b.own) return b.line == Table::none ? "learning" : "default";
  return "line";
}

std::string header(std::size_t held, std::size_t domains, std::size_t lines) {
  return std::string(state_magic) + "\ntime " + std::to_string(static_cast<long long>(std::time(nullptr))) +
         " pid " + std::to_string(static_cast<long>(getpid())) + " held " + std::to_string(held) +
         " domains " + std::to_string(domains) + " lines " + std::to_string(lines) + "\n";
}

}  // namespace

std::string state_text_off() { return header(0, 0, 0) + "end\n"; }

std::string state_text(const Scheduler& s, Ms now) {
  std::string out = header(s.held(), s.domain_count(), s.table().lines().size());
  s.for_each_budget([&](const Budget& b) {
    char rate[spamt::windows_text_max];
    const std::size_t rn = b.rate.empty() ? 0 : spamt::format_windows(b.rate, rate);
    out += "budget " + b.name + " kind " + std::string(budget_kind(b)) + " line " +
           (b.line == Table::none ? std::string("-") : std::to_string(s.table().lines()[b.line].line_no)) +
           " limit " + (b.unlimited ? std::string("-") : std::to_string(b.limit)) + " inflight " +
           std::to_string(b.inflight) + " held " + std::to_string(b.queue.size()) + " state " +
           std::string(state_name(b.state)) + " until " +
           (b.state == Budget::State::paused && b.paused_until > now
                ? std::to_string((b.paused_until - now + 999) / 1000)
                : std::string("-")) +
           " why " + std::string(block_name(s.block_of(b, now))) + " rate " +
           (rn ? std::string(rate, rn) : std::string("-")) + " failures " + std::to_string(b.failures) + "\n";
  });
  s.for_each_domain([&](const Domain& d) {
    char ip_text[ip::text_max];
    out += "domain " + d.name + " budget " + d.budget->name + " inflight " + std::to_string(d.inflight) +
           " held " + std::to_string(d.held) + " mx " + (d.learned && !d.mx.empty() ? d.mx : std::string("-")) +
           " ip " +
           (d.learned && d.address ? std::string(ip_text, ip::format(*d.address, ip_text)) : std::string("-")) +
           " learned " + (d.learned ? std::to_string((now - d.learned_at) / 1000) : std::string("-")) + "\n";
  });
  out += "end\n";
  return out;
}

std::string_view StateRecord::get(std::string_view key) const {
  auto it = fields.find(key);
  return it == fields.end() ? std::string_view("-") : std::string_view(it->second);
}

std::optional<State> parse_state(std::string_view text) {
  State st;
  bool first = true;
  bool ended = false;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;  // cut short
    std::string_view line = text.substr(0, nl);
    text = text.substr(nl + 1);
    if (first) {
      if (line != state_magic) return std::nullopt;
      first = false;
      continue;
    }
    if (line == "end") {
      ended = true;
      break;
    }
    std::vector<std::string_view> words;
    while (!line.empty()) {
      const std::size_t sp = line.find(' ');
      words.push_back(line.substr(0, sp));
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    if (words.empty()) continue;
    if (words[0] == "budget" || words[0] == "domain") {
      if (words.size() < 2 || words.size() % 2 != 0) return std::nullopt;
      StateRecord r;
      r.kind = std::string(words[0]);
      r.name = std::string(words[1]);
      for (std::size_t i = 2; i + 1 < words.size(); i += 2) r.fields.emplace(words[i], words[i + 1]);
      (words[0] == "budget" ? st.budgets : st.domains).push_back(std::move(r));
    } else {
      if (words.size() % 2 != 0) return std::nullopt;
      for (std::size_t i = 0; i + 1 < words.size(); i += 2) st.header.emplace(words[i], words[i + 1]);
    }
  }
  if (first || !ended) return std::nullopt;
  return st;
}

}  // namespace destinations
