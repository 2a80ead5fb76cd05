// process_lock.cpp: robust process-shared lock with a bounded wait (process_lock.h).

#include "process_lock.h"

#include <cerrno>
#include <ctime>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

namespace process_lock {

namespace {

// "qtlk" and a format number: a file of another layout is never used.
constexpr std::uint32_t magic = 0x71746c6bu;
constexpr std::uint32_t format = 1;

using helpers::monotonic_ms;

void sleep_ms(long ms) noexcept {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

// flock() with a bounded wait: only ever held for a few microseconds while a
// file is being initialised, so polling costs nothing in practice.
int flock_bounded(int fd, std::uint32_t timeout_ms) noexcept {
  const std::uint64_t deadline = monotonic_ms() + timeout_ms;
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK && errno != EINTR) return errno;
    if (monotonic_ms() >= deadline) return ETIMEDOUT;
    sleep_ms(1);
  }
}

}  // namespace

struct Lock::Shared {
  std::uint32_t magic;
  std::uint32_t format;
  pthread_mutex_t mutex;
};

int Lock::open(int dirfd, const char* name, std::uint32_t timeout_ms) noexcept {
  close();
  const int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1) return error_ = errno;
  struct stat st;
  if (fstat(fd, &st) == -1) {
    error_ = errno;
    ::close(fd);
    return error_;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return error_ = EPROTO;
  }
  // Usually the file exists and is initialised: map it and go, no flock.
  if (st.st_size >= static_cast<off_t>(sizeof(Shared))) {
    void* map = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      error_ = errno;
      ::close(fd);
      return error_;
    }
    Shared* s = static_cast<Shared*>(map);
    const std::uint32_t m = __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE);
    if (m == magic && s->format == format) {
      ::close(fd);  // the mapping stays valid
      shared_ = s;
      return error_ = 0;
    }
    munmap(map, sizeof(Shared));
  }
  // New, or its initialiser died halfway: initialise under flock.
  int rc = flock_bounded(fd, timeout_ms);
  if (rc != 0) {
    ::close(fd);
    return error_ = rc;
  }
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == -1) {
    rc = errno;
  } else if (st.st_size < static_cast<off_t>(sizeof(Shared)) &&
             ftruncate(fd, static_cast<off_t>(sizeof(Shared))) == -1) {
    rc = errno;
  } else {
    map = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) rc = errno;
  }
  if (rc == 0) {
    Shared* s = static_cast<Shared*>(map);
    const std::uint32_t m = __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE);
    if (m == 0) {
      // Nobody uses the mutex before magic is set, and we hold the flock.
      pthread_mutexattr_t attr;
      pthread_mutexattr_init(&attr);
      pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
      pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
      pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);  // relocking fails at once
      rc = pthread_mutex_init(&s->mutex, &attr);
      pthread_mutexattr_destroy(&attr);
      if (rc == 0) {
        s->format = format;
        __atomic_store_n(&s->magic, magic, __ATOMIC_RELEASE);
      }
    } else if (m != magic || s->format != format) {
      rc = EPROTO;
    }
    if (rc != 0) munmap(map, sizeof(Shared));
    else shared_ = s;
  }
  flock(fd, LOCK_UN);
  ::close(fd);
  return error_ = rc;
}

void Lock::close() noexcept {
  if (shared_ != nullptr) {
    munmap(shared_, sizeof(Shared));
    shared_ = nullptr;
  }
}

Outcome Lock::lock(std::uint32_t timeout_ms) noexcept {
  if (shared_ == nullptr) {
    error_ = EBADF;
    return Outcome::failed;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += static_cast<long>(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  const int rc = pthread_mutex_clocklock(&shared_->mutex, CLOCK_MONOTONIC, &deadline);
  switch (rc) {
    case 0:
      return Outcome::locked;
    case EOWNERDEAD:
      // The holder died; what the lock guards (LMDB's transaction) is
      // recovered by LMDB itself. Mark the mutex usable again.
      pthread_mutex_consistent(&shared_->mutex);
      return Outcome::recovered;
    case ETIMEDOUT:
      return Outcome::timed_out;
    default:
      error_ = rc;
      return Outcome::failed;
  }
}

void Lock::unlock() noexcept {
  if (shared_ != nullptr) pthread_mutex_unlock(&shared_->mutex);
}

}  // namespace process_lock
