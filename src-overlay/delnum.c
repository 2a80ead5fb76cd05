#include "delnum.h"

void delnum_put(char *s, unsigned int n)
{
  s[0] = (char) (n & 255);
  s[1] = (char) ((n >> 8) & 255);
}

unsigned int delnum_get(const char *s)
{
  return (unsigned int) (unsigned char) s[0]
       + ((unsigned int) (unsigned char) s[1] << 8);
}
