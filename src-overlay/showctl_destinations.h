/* showctl_destinations.h: qmail-showctl's view of control/concurrencydomains.
 *
 * The same parser as qmail-send's (destination_table.h), so qmail-showctl
 * says exactly what qmail-send will make of the file. */

#ifndef SHOWCTL_DESTINATIONS_H
#define SHOWCTL_DESTINATIONS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Explains fn (relative to the control directory) through out(), one line
   per call without a newline: how many destinations, each line as
   understood (at most 50), or each bad line. 0: absent, 1: good, -1: bad or
   unreadable. */
int showctl_destinations(const char *fn, void (*out)(const char *line));

#ifdef __cplusplus
}
#endif

#endif
