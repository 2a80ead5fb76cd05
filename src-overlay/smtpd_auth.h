#ifndef SMTPD_AUTH_H
#define SMTPD_AUTH_H

/* smtpd_auth.h: the C facade between qmail-smtpd.c and SMTP AUTH (RFC 4954,
   mechanisms PLAIN and LOGIN), checked by a checkpassword-compatible program
   named on qmail-smtpd's command line, as qmail-popup does. qmail-smtpd.c
   reads the client's lines (through its substdio) and sends the replies;
   everything else - parsing, base64, running the checker, the delay and the
   per-session limit on failures, the log lines - happens behind this facade.
   Replies returned here end in CRLF. The C++ lives in smtpd_auth.cpp,
   auth.cpp, checkpassword.cpp and base64.cpp. */

#ifdef __cplusplus
#define SMTPD_AUTH_NOEXCEPT noexcept
extern "C" {
#else
#define SMTPD_AUTH_NOEXCEPT
#endif

/* The longest line of an AUTH exchange (RFC 4954: 12288 octets). A caller
   keeps at most SMTPD_AUTH_LINEMAX + 2 bytes of a longer line and passes
   what it kept, which the facade then refuses as too long. */
#define SMTPD_AUTH_LINEMAX 12288

/* What smtpd_auth_begin() and smtpd_auth_next() tell qmail-smtpd to do. */
#define SMTPD_AUTH_OK 0    /* authenticated: send smtpd_auth_reply() */
#define SMTPD_AUTH_MORE 1  /* send smtpd_auth_reply(), read a line, call smtpd_auth_next() */
#define SMTPD_AUTH_FAIL 2  /* credentials refused (after the delay): send smtpd_auth_reply() */
#define SMTPD_AUTH_ERROR 3 /* send smtpd_auth_reply(); nothing changed */
#define SMTPD_AUTH_DROP 4  /* send smtpd_auth_reply() (421), end the session */

/* Once, after setup(): checkpassword is the command line after
   "qmail-smtpd" (program and its arguments; may be empty), timeout the
   longest wait for it in seconds. Reads SMTPAUTH and FORCETLS. Returns 1 if
   AUTH is configured (a program, SMTPAUTH not "-"), else 0: then AUTH is
   "502 unimplemented" as in stock qmail-smtpd. */
int smtpd_auth_setup(char **checkpassword, int timeout) SMTPD_AUTH_NOEXCEPT;

/* 1 if AUTH is announced in EHLO (and accepted) now; tls: TLS is active. */
int smtpd_auth_offered(int tls) SMTPD_AUTH_NOEXCEPT;
/* The EHLO line announcing AUTH. */
const char *smtpd_auth_ehlo(void) SMTPD_AUTH_NOEXCEPT;

/* For MAIL: 1 if it must be refused with smtpd_auth_reply() (SMTPAUTH="!"
   and not authenticated), else 0. */
int smtpd_auth_mail(int tls) SMTPD_AUTH_NOEXCEPT;

/* AUTH: arg is what follows the verb; intransaction: MAIL was given. */
int smtpd_auth_begin(const char *arg, int intransaction, int tls) SMTPD_AUTH_NOEXCEPT;
/* The next line of the exchange, len bytes, without CR LF. */
int smtpd_auth_next(const char *line, unsigned int len) SMTPD_AUTH_NOEXCEPT;
/* The reply for the last result. */
const char *smtpd_auth_reply(void) SMTPD_AUTH_NOEXCEPT;

/* After SMTPD_AUTH_OK: the user as the client gave it (for SMTPAUTHUSER),
   and the identity relay limits key on: user@domain, a bare name completed
   with control/defaultdomain, else control/me. 0 before AUTH succeeded. */
const char *smtpd_auth_user(void) SMTPD_AUTH_NOEXCEPT;
const char *smtpd_auth_identity(void) SMTPD_AUTH_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
