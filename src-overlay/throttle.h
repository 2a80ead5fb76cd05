#ifndef THROTTLE_H
#define THROTTLE_H

/* throttle.h: the C facade between qmail-smtpd.c and qmail-throttle's
   limits (relay limits, AUTH failure limits, teergrube). qmail-smtpd.c
   includes two more facades, smtpd_tls.h and smtpd_auth.h; theirs are the
   C functions smtpd-overlay.o exports (smtpd-overlay.syms). Every function
   here returns promptly, never throws (overlay C++ is built without
   exceptions), never exits the process except throttle_exit() and on
   allocation failure (cxx_runtime.cpp, like qmail's die_nomem), and costs
   next to nothing when no throttling is configured. The C++ behind it lives in the other
   files of src-overlay (doc/DESIGN.md, "Map"). */

#ifdef __cplusplus
#define THROTTLE_NOEXCEPT noexcept
extern "C" {
#else
#define THROTTLE_NOEXCEPT
#endif

/* Decisions returned to qmail-smtpd. */
#define THROTTLE_OK 0     /* carry on exactly as stock qmail-smtpd would */
#define THROTTLE_DEFER 1  /* answer throttle_reply() to this command, go on */
#define THROTTLE_DROP 2   /* answer throttle_reply(), flush, end the session */

/* Once per connection, after qmail-smtpd's setup(): the client address
   (TCPREMOTEIP) and whether qmail-smtpd treats the client as a relay client.
   Reads no file. */
void throttle_session(const char *remoteip, int relayclient) THROTTLE_NOEXCEPT;

/* Before the 220 greeting: the client limits conn= and connrate= (spamt(5),
   CLIENT LIMITS). THROTTLE_DROP: too many connections, answer
   throttle_reply() (421) and end. Without control/spamt.clients (no entry
   limits clients) one access() and nothing else. */
int throttle_greeting(void) THROTTLE_NOEXCEPT;

/* At RCPT, for a client that is not a relay client, after every stock check
   has accepted the recipient: the inbound rates inrcpt= and inmsg= (spamt(5),
   CLIENT LIMITS), charged into the transaction's receipt like relay limits
   (throttle_transaction() gives them back). THROTTLE_DEFER: answer
   throttle_reply() (450) to this recipient and go on. Without
   control/spamt.clients nothing (the greeting's look at it is reused). */
int throttle_inbound_rcpt(void) THROTTLE_NOEXCEPT;

/* Before a TLS handshake: the client limit tlsrate= (new TLS sessions per
   client). smtps: 0 for STARTTLS, 1 for an SMTPS connection (before its
   greeting). THROTTLE_DEFER: too many TLS sessions: a STARTTLS is answered
   throttle_reply() (454) and the session goes on in clear text; an SMTPS
   connection is closed without a handshake (the refusal is logged, no
   reply: there is no SMTP channel yet). Without control/spamt.clients one
   access() a session and nothing else. */
int throttle_tls(int smtps) THROTTLE_NOEXCEPT;

/* Relay limits (the limits table's rcpt= and msg=, see spamt(5)).
   throttle_relaylimited(): 1 when relay limits apply to this session, so
   qmail-smtpd must tell relayed recipients (domain not in rcpthosts) apart;
   0 for clients that are not relay clients, exempt ones, NOTHROTTLE, or no
   table. throttle_rcpt(): a relayed recipient that passed every other check
   is about to be accepted; charges it (and, for the transaction's first, the
   message) on every applicable budget at once, or nothing.
   throttle_transaction(): the transaction ended; queued: 1 when the message
   was queued (the charges stay), 0 for RSET, a new MAIL, HELO/EHLO,
   STARTTLS or a refused DATA (they are given back). */
int throttle_relaylimited(void) THROTTLE_NOEXCEPT;
int throttle_rcpt(void) THROTTLE_NOEXCEPT;
void throttle_transaction(int queued) THROTTLE_NOEXCEPT;

/* The reply for a THROTTLE_DEFER or THROTTLE_DROP decision, CRLF included. */
const char *throttle_reply(void) THROTTLE_NOEXCEPT;

/* Every exit of qmail-smtpd: gives back what an unfinished transaction was
   charged, lets go of the conn= slot (the last session of a client removes
   its file in throttle/conn/), then _exit(status). qmail-smtpd.c maps _exit to it, and the C++
   runtime's fatal end (cxx_runtime.cpp: out of memory) calls it too. A
   fatal end inside a store operation, or inside this refund, exits without
   one (the store cannot be entered again half-way): those charges stay
   until their window passes. */
#ifdef __cplusplus
[[noreturn]]
#endif
void throttle_exit(int status) THROTTLE_NOEXCEPT;

/* SMTP AUTH (smtpd_auth.h) and the throttle. The limits table's authfail
   setting limits failed AUTH exchanges per client IP.
   throttle_auth_attempt(): at every AUTH command, before any credentials are
   looked at; also counts the command for the client limit authrate=.
   THROTTLE_OK: go on; THROTTLE_DEFER: answer throttle_reply()
   (454) to this AUTH; THROTTLE_DROP: throttle_reply() and end the session.
   throttle_auth_failure(): after credentials were refused; charges one
   failure to the client IP. THROTTLE_DROP: answer throttle_reply() (421)
   instead of 535 and end the session; anything else: 535 as usual.
   throttle_user(): after AUTH succeeded: from now on the session is a relay
   client whose limits key on user (user@domain form). */
int throttle_auth_attempt(void) THROTTLE_NOEXCEPT;
int throttle_auth_failure(void) THROTTLE_NOEXCEPT;
void throttle_user(const char *user) THROTTLE_NOEXCEPT;

/* The teergrube (spamt(5): st=, stmax=, strcpt=, tg=, tgtext=, flush=,
   tarpitrelay). throttle_pipelining(): at EHLO, 1 if PIPELINING may be
   offered (0 when this client would be delayed with flush).
   throttle_data(): at DATA, before qmail-queue is started and before the
   354: delays a client that sends too fast, calling say() with
   "354-TEXT\r\n" every tg seconds (say() writes and flushes it).
   THROTTLE_OK: go on; THROTTLE_DROP: the client went away while it was
   delayed: end the session. Afterwards throttle_data_continued() is 1 if
   continuation lines were sent (the reply to DATA has begun) and
   throttle_data_flush() is 1 if qmail-smtpd must discard what the client
   sent ahead; throttle_input_pending() says whether input is waiting on
   descriptor 0 - for a plain session: under TLS, input may already sit in
   OpenSSL's buffer, or be part of a record, and smtpd_tls_read_waiting()
   (smtpd_tls.h) discards it without waiting. */
int throttle_pipelining(void) THROTTLE_NOEXCEPT;
int throttle_data(unsigned int rcpts, void (*say)(const char *line)) THROTTLE_NOEXCEPT;
int throttle_data_continued(void) THROTTLE_NOEXCEPT;
int throttle_data_flush(void) THROTTLE_NOEXCEPT;
int throttle_input_pending(void) THROTTLE_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
