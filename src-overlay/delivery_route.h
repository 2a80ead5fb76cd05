// delivery_route.h: where a remote delivery went, as qmail-remote reports it.
//
// With QMAILREMOTE_ROUTE set (qmail-rspawn sets it), qmail-remote begins its
// output with one record naming the host it connected to (an MX, or the
// smtproutes relay), the address, and the greeting's code:
//
//   "@mx1.example.net 192.0.2.7 220"   connected, greeted with 220
//   "@mx1.example.net 192.0.2.7 421"   connected, greeting refused
//   "@mx1.example.net 192.0.2.7 -"     no connection to any address (the last tried)
//
// "-" stands for a host name qmail-remote could not put in a record (it
// keeps only lower-case letters, digits, '-', '_' and '.'). qmail-rspawn
// passes the three fields on to qmail-send in front of its report.

#ifndef QT_DELIVERY_ROUTE_H
#define QT_DELIVERY_ROUTE_H

#include <optional>
#include <string>
#include <string_view>

#include "ip_address.h"

namespace destinations {

struct Route {
  std::string host;                  // canonical; empty if unknown
  std::optional<ip::Address> address;
  int greeting = -1;                 // the greeting's code; -1: never connected

  // What a delivery says about its destination, for the backoff: a
  // connection that failed or a greeting that was not 2xx is a failure.
  bool connected() const noexcept { return greeting >= 0; }
  bool failed() const noexcept { return greeting < 200 || greeting > 299; }
};

// "HOST ADDRESS CODE"; nothing if the text does not have that shape.
std::optional<Route> parse_route(std::string_view text);

}  // namespace destinations

#endif
