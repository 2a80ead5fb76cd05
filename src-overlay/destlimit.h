/* destlimit.h: qmail-send's per-destination remote concurrency, for C.
 *
 * control/concurrencydomains (concurrencydomains(5)) caps deliveries in
 * flight, and starts per window, by destination: a domain, a group of
 * domains, or the MX host or address their mail goes to. qmail-send asks
 * before it starts a remote delivery; a recipient whose destination is full
 * is held here, in memory, and offered again when its destination has room.
 * Without the file every call below is a cheap no-op and qmail-send
 * schedules exactly as stock qmail does.
 *
 * The logic is in destination_scheduler.h; this facade adds the file, the
 * clock, qmail-send's log (descriptor 0) and the state file that
 * qmail-destinations(8) reads. Nothing here blocks or resolves names.
 */

#ifndef DESTLIMIT_H
#define DESTLIMIT_H

#ifdef __cplusplus
extern "C" {
#define DESTLIMIT_NOEXCEPT noexcept
#else
#define DESTLIMIT_NOEXCEPT
#endif

#define DESTLIMIT_START 0 /* start the delivery now */
#define DESTLIMIT_HOLD 1  /* held here: the job must stay open (one ref) */
#define DESTLIMIT_LATER 2 /* leave the recipient in the queue for the next retry */

/* Reads the file (cwd: the qmail home). 1: read, or absent (no limits).
   0: unreadable or bad: each bad line logged once; the settings in force
   stay, and at start (atstart) every remote delivery is held until a HUP
   brings a good file. */
int destlimit_load(const char *fn, int atstart) DESTLIMIT_NOEXCEPT;
/* Whether destlimit_admit() must be asked for remote recipients. */
int destlimit_on(void) DESTLIMIT_NOEXCEPT;

/* A remote recipient read by the pass: job, position of its line, and the
   message (its id). */
int destlimit_admit(const char *recip, int job, unsigned long mpos, unsigned long id) DESTLIMIT_NOEXCEPT;
/* The pass reached the end of message id: 1 if its one recipient read was
   held and the message now waits here without its job (parked): the caller
   drops the hold's ref and closes the job without requeueing it. refs: the
   job's, the pass's included; birth: the message's. */
int destlimit_park(int job, unsigned long id, long birth, int refs) DESTLIMIT_NOEXCEPT;
/* A remote delivery began in slot `slot` (any remote delivery). */
void destlimit_started(unsigned int slot, const char *recip) DESTLIMIT_NOEXCEPT;
/* Its report came: route = "HOST ADDRESS CODE" from qmail-remote
   (routelen bytes, not terminated), or 0; report: the text after K/Z/D. */
void destlimit_finished(unsigned int slot, const char *route, unsigned int routelen,
                        const char *report) DESTLIMIT_NOEXCEPT;

/* The oldest held recipient that may start now: 1 and its job, position
   and address (valid until the next call here), or 0. After starting it,
   call destlimit_taken() and drop the hold's ref on the job.
   For a parked message, job is DESTLIMIT_PARKED and recip "ID BIRTH": put
   the message back in the remote channel's queue to be read at once, then
   call destlimit_taken() (a slot stays reserved for it for a minute). */
#define DESTLIMIT_PARKED (-1)
int destlimit_next(int *job, unsigned long *mpos, char **recip) DESTLIMIT_NOEXCEPT;
void destlimit_taken(void) DESTLIMIT_NOEXCEPT;
/* 1 if held recipients may start now. */
int destlimit_ready(void) DESTLIMIT_NOEXCEPT;
/* 1 and the seconds (rounded up) until a pause or rate window ends and a
   held recipient may start; 0 if no such time. */
int destlimit_wakeup(unsigned long *seconds) DESTLIMIT_NOEXCEPT;

/* A destination paused while recipients were held for it: `expire` is
   called for each (with the last failure's report) and returns 1 for one
   it bounced and released (its message is past its queue lifetime), or,
   for a parked message (job DESTLIMIT_PARKED, recip "ID BIRTH"), for one
   it put back in the queue to be read (and then bounced) again. */
void destlimit_sweep(int (*expire)(int job, unsigned long mpos, const char *recip,
                                   const char *report)) DESTLIMIT_NOEXCEPT;

/* Writes the state (destinations, held, learned routes) to fn, through
   fn.tmp and a rename. 1 written, 0 not (logged once). */
int destlimit_dump(const char *fn) DESTLIMIT_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
