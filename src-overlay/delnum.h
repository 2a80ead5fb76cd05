#ifndef DELNUM_H
#define DELNUM_H

/* delnum.h: delivery numbers between qmail-send and qmail-lspawn or
   qmail-rspawn (spawn.c).

   Stock qmail sends a delivery number, and the number of deliveries a spawn
   can run at once, in one byte, hence conf-spawn at most 255. Here they take
   two bytes, low byte first, always decoded unsigned: 0 to 65535. (Decoding
   through a plain char sign-extends the high byte, so every number from
   32768 up would come out negative.) conf-spawn, and so any delivery count,
   is at most DELNUM_SPAWNMAX; delivery numbers run from 0 to
   DELNUM_SPAWNMAX - 1.

   Plain C with no qmail headers, so the unit tests link it as it is. */

#ifdef __cplusplus
extern "C" {
#endif

#define DELNUM_LEN 2 /* bytes on the wire */
#define DELNUM_SPAWNMAX 65000 /* largest conf-spawn chkspawn accepts */

/* Writes the low 16 bits of n into s[0] (low byte) and s[1]. */
extern void delnum_put(char *s, unsigned int n);

/* Reads the number delnum_put() wrote at s: 0 to 65535. */
extern unsigned int delnum_get(const char *s);

#ifdef __cplusplus
}
#endif

#endif
