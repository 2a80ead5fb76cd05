// allocation_count.h: how many times operator new has run in the unit-test
// binary, to prove that a path allocates nothing (allocation_count.cpp
// replaces the global operator new).
#ifndef QT_TEST_ALLOCATION_COUNT_H
#define QT_TEST_ALLOCATION_COUNT_H

#include <cstddef>

namespace allocation_count {

std::size_t now() noexcept;

}  // namespace allocation_count

#endif
