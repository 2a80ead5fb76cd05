// cxx_runtime.cpp: the parts of the C++ runtime that qmail-smtpd's overlay
// provides itself.
//
// Overlay C++ is compiled without exceptions and RTTI (conf-cxx): errors are
// explicit return values, as in qmail's C. What remains of the runtime's
// throwing paths is replaced here, so that linking qmail-smtpd never pulls in
// libstdc++'s exception machinery, whose static constructor (the emergency
// exception pool) would otherwise run at every exec - once per connection.
//
// Allocation failure and a standard-library precondition failure end the
// process after one log line, like qmail's own die_nomem: the client sees the
// connection close and retries later. They are never silently ignored.
// A program that must not end for want of memory (qmail-send) defines
// cxx_runtime_wait_for_memory() to wait as its own nomem() does; then
// allocation is retried for as long as it returns 1. The process ends
// through cxx_runtime_exit(), which qmail-smtpd's throttle.cpp defines to
// give back the unfinished transaction's charges first, as every other exit
// of qmail-smtpd does (throttle_exit() in throttle.h).
//
// For programs that link smtpd-overlay.o or send-overlay.o; the unit tests
// use the normal runtime.

#include <cstdarg>
#include <cstddef>
#include <cstdlib>
#include <new>

#include <unistd.h>

// Weak: qmail-smtpd keeps this one (give up); qmail-send brings its own.
extern "C" __attribute__((weak)) int cxx_runtime_wait_for_memory(void) { return 0; }

// Weak: programs without a throttle just exit; qmail-smtpd's throttle.cpp
// brings its own. It must not need memory to end the process.
extern "C" [[noreturn]] __attribute__((weak)) void cxx_runtime_exit(int status) noexcept { _exit(status); }

namespace {

[[noreturn]] void die(const char* what) noexcept {
  static const char prefix[] = "qmail-smtpd: throttle: fatal: ";
  (void)!write(2, prefix, sizeof prefix - 1);
  std::size_t n = 0;
  while (what[n] != '\0') ++n;
  (void)!write(2, what, n);
  (void)!write(2, "\n", 1);
  cxx_runtime_exit(1);
}

void* allocate(std::size_t n) noexcept {
  void* p;
  while ((p = std::malloc(n != 0 ? n : 1)) == nullptr)
    if (!cxx_runtime_wait_for_memory()) die("out of memory");
  return p;
}

void* allocate_aligned(std::size_t n, std::align_val_t a) noexcept {
  std::size_t align = static_cast<std::size_t>(a);
  if (align < sizeof(void*)) align = sizeof(void*);
  std::size_t size = (n + align - 1) / align * align;
  void* p;
  while ((p = std::aligned_alloc(align, size != 0 ? size : align)) == nullptr)
    if (!cxx_runtime_wait_for_memory()) die("out of memory");
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n != 0 ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n != 0 ? n : 1); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// libstdc++ reports precondition failures through these (bits/functexcept.h).
namespace std {
void __throw_bad_exception() { die("bad exception"); }
void __throw_bad_alloc() { die("out of memory"); }
void __throw_bad_array_new_length() { die("bad array length"); }
void __throw_bad_cast() { die("bad cast"); }
void __throw_bad_typeid() { die("bad typeid"); }
void __throw_logic_error(const char* s) { die(s); }
void __throw_domain_error(const char* s) { die(s); }
void __throw_invalid_argument(const char* s) { die(s); }
void __throw_length_error(const char* s) { die(s); }
void __throw_out_of_range(const char* s) { die(s); }
void __throw_out_of_range_fmt(const char* s, ...) { die(s); }
void __throw_runtime_error(const char* s) { die(s); }
void __throw_range_error(const char* s) { die(s); }
void __throw_overflow_error(const char* s) { die(s); }
void __throw_underflow_error(const char* s) { die(s); }
void __throw_system_error(int) { die("system error"); }
void __throw_bad_function_call() { die("bad function call"); }
}  // namespace std
