/* hier_overlay.c: the files qmail-throttle adds to a qmail installation.
   Called at the end of hier(), so ./install and ./instcheck handle them
   exactly like qmail's own files. */

#include "auto_qmail.h"
#include "auto_uids.h"

extern void c();
extern void d();

void hier_overlay()
{
  c(auto_qmail,"bin","qmail-newspamt",auto_uido,auto_gidq,0755);
  c(auto_qmail,"bin","qmail-throttlectl",auto_uido,auto_gidq,0755);
  c(auto_qmail,"bin","qmail-destinations",auto_uido,auto_gidq,0755);

  /* qmail-send writes the state of its per-destination limits here */
  d(auto_qmail,"queue/destinations",auto_uids,auto_gidq,0750);

  c(auto_qmail,"man/man5","spamt.5",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man5","concurrencydomains.5",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat5","concurrencydomains.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-destinations.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-destinations.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat5","spamt.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man7","qmail-throttle.7",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat7","qmail-throttle.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man7","qmail-concurrency.7",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat7","qmail-concurrency.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-newspamt.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-newspamt.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-smtpd-tls-auth.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-smtpd-tls-auth.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-throttlectl.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-throttlectl.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-smtpd-relaylimits.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-smtpd-relaylimits.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-smtpd-teergrube.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-smtpd-teergrube.0",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/man8","qmail-throttle-redis.8",auto_uido,auto_gidq,0644);
  c(auto_qmail,"man/cat8","qmail-throttle-redis.0",auto_uido,auto_gidq,0644);
}
