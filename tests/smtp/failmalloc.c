/* failmalloc.c: for tests, loaded with LD_PRELOAD. In qmail-smtpd only,
   once the file named by QT_FAILMALLOC_ARM exists, the next malloc() fails
   (returns 0 with ENOMEM), as when memory runs out; every one after it
   succeeds again. Other programs (tcpserver, qmail-queue) are left alone. */

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);

static int spent = 0;

void *malloc(size_t n)
{
  if (!spent && strcmp(program_invocation_short_name, "qmail-smtpd") == 0) {
    const char *arm = getenv("QT_FAILMALLOC_ARM");
    if (arm && access(arm, F_OK) == 0) {
      spent = 1;
      errno = ENOMEM;
      return 0;
    }
  }
  return __libc_malloc(n);
}
