// allocation_count.cpp: see allocation_count.h.
#include "allocation_count.h"

#include <cstdlib>
#include <new>

// GCC cannot tell that these replacements pair malloc with free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::size_t allocations = 0;
}

std::size_t allocation_count::now() noexcept { return allocations; }

void* operator new(std::size_t n) {
  ++allocations;
  void* p = std::malloc(n ? n : 1);
  if (!p) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
