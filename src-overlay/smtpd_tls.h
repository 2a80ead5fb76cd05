#ifndef SMTPD_TLS_H
#define SMTPD_TLS_H

/* smtpd_tls.h: the C facade between qmail-smtpd.c and its TLS (RFC 3207
   STARTTLS, and SMTPS: TLS from the first byte). Nothing here loads OpenSSL
   until smtpd_tls_prepare(); a plain session only ever calls
   smtpd_tls_offer(), smtpd_tls_smtps() and smtpd_tls_active(). Failures are
   logged here ("qmail-smtpd: tls: ..." on descriptor 2); qmail-smtpd.c only
   picks the reply. The C++ lives in smtpd_tls.cpp and tls.cpp. */

#ifdef __cplusplus
#define SMTPD_TLS_NOEXCEPT noexcept
extern "C" {
#else
#define SMTPD_TLS_NOEXCEPT
#endif

/* Once, in setup(): 1 if STARTTLS may be offered: control/servercert.pem is
   readable and DISABLETLS is unset or 0. */
int smtpd_tls_offer(void) SMTPD_TLS_NOEXCEPT;

/* 1 if SMTPS is set (and not 0): TLS starts before the greeting. */
int smtpd_tls_smtps(void) SMTPD_TLS_NOEXCEPT;

/* Loads OpenSSL, control/servercert.pem and the ciphers (TLSCIPHERS or
   control/tlsserverciphers). 1: ready; 0: TLS cannot be had now (logged),
   answer 454 or end the session. */
int smtpd_tls_prepare(void) SMTPD_TLS_NOEXCEPT;

/* The handshake on descriptors 0 and 1, within timeout seconds. 1: TLS is
   active (logged with version and cipher); 0: it failed (logged), the
   connection is unusable and the session must end. */
int smtpd_tls_handshake(int timeout) SMTPD_TLS_NOEXCEPT;

/* 1 once the handshake succeeded. */
int smtpd_tls_active(void) SMTPD_TLS_NOEXCEPT;

/* timeoutread() and timeoutwrite() for an active TLS session: bytes, 0 at
   end of stream, -1 with errno (error_timeout on timeout). */
int smtpd_tls_read(int timeout, char *buf, int len) SMTPD_TLS_NOEXCEPT;
int smtpd_tls_write(int timeout, const char *buf, int len) SMTPD_TLS_NOEXCEPT;

/* For discarding input sent ahead (the teergrube's flush): what the client
   sent that can be read now without waiting, from OpenSSL's buffer or whole
   records on the socket: bytes, or 0 when nothing more is at hand (part of
   a record is kept for the next smtpd_tls_read()). Never waits. */
int smtpd_tls_read_waiting(char *buf, int len) SMTPD_TLS_NOEXCEPT;

/* Before exiting: send TLS close_notify if TLS is active. */
void smtpd_tls_close(void) SMTPD_TLS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
