#ifndef THROTTLE_H
#define THROTTLE_H

/* throttle.h: the C facade between qmail-smtpd.c and qmail-throttle.
   It is the only qmail-throttle header a C file includes. Every function
   here returns promptly, never throws, never exits the process, and costs
   next to nothing when no throttling is configured. The C++ behind it lives
   in the other files of src-overlay. */

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
   (TCPREMOTEIP) and whether qmail-smtpd treats the client as a relay client. */
void throttle_session(const char *remoteip, int relayclient) THROTTLE_NOEXCEPT;

/* SMTP AUTH (smtpd_auth.h) and the throttle. The limits table's authfail
   setting limits failed AUTH exchanges per client IP.
   throttle_auth_attempt(): at every AUTH command, before any credentials are
   looked at. THROTTLE_OK: go on; THROTTLE_DEFER: refuse this AUTH with 454;
   THROTTLE_DROP: 421 and end the session.
   throttle_auth_failure(): after credentials were refused; charges one
   failure to the client IP. THROTTLE_DROP: answer 421 instead of 535 and end
   the session; anything else: 535 as usual.
   throttle_user(): after AUTH succeeded: from now on the session is a relay
   client whose limits key on user (user@domain form). */
int throttle_auth_attempt(void) THROTTLE_NOEXCEPT;
int throttle_auth_failure(void) THROTTLE_NOEXCEPT;
void throttle_user(const char *user) THROTTLE_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
