// spamt_explain.h: "why was this client throttled?" in words.
//
// explain() looks a client up in an open table exactly as qmail-smtpd does
// (LimitsTable::lookup) and describes every entry that matches it - also
// those that lose to a more specific one - with the source line each came
// from, then the relay budgets, teergrube settings and AUTH failure limit
// that result. Used by `qmail-newspamt -x IP [USER]`; not by qmail-smtpd.

#ifndef QT_SPAMT_EXPLAIN_H
#define QT_SPAMT_EXPLAIN_H

#include <string>
#include <string_view>

#include "limits_table.h"

namespace spamt {

// Text of several lines, each ending in '\n'. Returns false (with a
// one-line reason in `out`) for a bad address or an unreadable record.
bool explain(LimitsTable& table, std::string_view ip, std::string_view user, std::string& out);

}  // namespace spamt

#endif
