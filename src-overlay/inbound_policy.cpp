// inbound_policy.cpp: see inbound_policy.h.

#include "inbound_policy.h"

namespace inbound_policy {

bool applies(const spamt::ClientLimits& c) noexcept {
  return c.limits != nullptr && !c.limits->exempt && (!c.limits->inrcpt.empty() || !c.limits->inmsg.empty());
}

std::size_t counters_for_rcpt(const spamt::ClientLimits& c, bool first_in_transaction, store::Limit* out) noexcept {
  if (!applies(c)) return 0;
  std::size_t n = connection_policy::add_counters(c, c.limits->inrcpt, inrcpt_metric, out, 0);
  if (first_in_transaction) n = connection_policy::add_counters(c, c.limits->inmsg, inmsg_metric, out, n);
  return n;
}

relay_policy::Verdict refusal(const spamt::ClientLimits& c, const store::Limit& counter,
                              const store::Refusal& refused, std::string_view ip) {
  relay_policy::Verdict v;
  v.code = 450;
  const bool msg = counter.key.metric == inmsg_metric;
  v.reply = std::string(msg ? "450 4.7.1 too much mail from " : "450 4.7.1 too many recipients from ") +
            std::string(ip) + "\r\n";
  v.log = connection_policy::rate_refusal_log(c, ip, counter.key.metric, refused, counter.key.window_seconds, "450");
  return v;
}

}  // namespace inbound_policy
