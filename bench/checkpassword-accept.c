/* checkpassword-accept: a stand-in for a checkpassword program in
   benchmarks. It reads the credentials from descriptor 3 to their end,
   accepts them whatever they are and runs the rest of its command line, as
   the checkpassword interface says, so that a benchmark measures
   qmail-smtpd and not a password database (or a Python test double). */
#include <unistd.h>

int main(int argc, char **argv)
{
  char buf[1024];
  ssize_t r;
  while ((r = read(3, buf, sizeof buf)) > 0) ;
  if (r < 0 || argc < 2) return 111;
  execv(argv[1], argv + 1);
  return 111;
}
