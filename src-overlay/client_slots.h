// client_slots.h: sessions at once per client (conn=), across every
// qmail-smtpd process of this host, freed the moment a session ends in any
// way, SIGKILL included.
//
// One file per counted client under throttle/conn/ (its name is the client
// key with ':' and '/' written as '=' and '_'). Bytes are never written:
// only open file description locks (F_OFD_SETLK) on them count.
//   byte 0      the gate: every session that holds a slot holds a read lock
//               on it; removing the file takes it for writing
//   byte 1..N   the slots: a session write-locks the first free one
// The kernel drops every lock of a process when it ends, so a place is free
// at once: nothing expires, no place waits for a sweep. OFD locks belong to
// the open file description, so another open() and close() of the same
// file in the process cannot drop them (the trap of classic POSIX record
// locks).
//
// Removal: a session that lets go of its slot (or found them all taken)
// drops its gate lock and then tries the gate for writing; that succeeds
// only when no other session holds a slot, and then it unlinks the file
// before closing it. Of several leaving at once, the last to try succeeds.
// A session that finds the file unlinked after taking the gate opens it
// again. A file left behind by a SIGKILLed session is removed when the
// next session of that client ends, or by sweep() (qmail-throttlectl
// expire).

#ifndef QT_CLIENT_SLOTS_H
#define QT_CLIENT_SLOTS_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace client_slots {

// The file name of a client key: "a:192.0.2.7" -> "a=192.0.2.7",
// "n:2001:db8::/64" -> "n=2001=db8==_64". Empty when the key cannot be a
// file name (empty, too long, or bytes other than [0-9a-zA-Z.:/]).
std::string file_name(std::string_view key);

class Slot {
 public:
  enum class Outcome : std::uint8_t { held, full, fault };

  Slot() = default;
  ~Slot() { release(); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  // Takes one of `limit` slots of `key` in directory `dir` (created mode
  // 0700 when missing; files mode 0600). full: `limit` sessions hold one
  // (limit 0: always full). fault: errno in error().
  Outcome acquire(const std::string& dir, std::string_view key, std::uint32_t limit) noexcept;
  // Lets go of the slot, and removes the file when no other session holds
  // one. Also done by the destructor, and by the kernel at any exit.
  void release() noexcept;

  bool held() const noexcept { return fd_ >= 0; }
  std::uint32_t index() const noexcept { return index_; }  // 0 .. limit-1
  int error() const noexcept { return error_; }

 private:
  int fd_ = -1;
  std::uint32_t index_ = 0;
  int error_ = 0;
  std::string path_;
};

// How many of the first `max` slots of `key` are held now (for
// qmail-throttlectl); 0 when there is no file. nullopt: cannot tell. It
// only tests locks (F_OFD_GETLK), never takes one, so it holds up no
// session; a few fcntl() calls per held slot, whatever `max` is, so a
// caller may pass a max above the limit to also see slots held beyond a
// lowered one.
std::optional<std::uint32_t> in_use(const std::string& dir, std::string_view key, std::uint32_t max) noexcept;

// Removes `key`'s file when no session holds a slot; true when removed or
// absent. Safe beside sessions: it takes the gate for writing first (as a
// releasing session does), so it never removes a file a session holds,
// and unlinks only while the name still is the file it locked.
bool remove_if_unused(const std::string& dir, std::string_view key) noexcept;

// The step of remove_if_unused() after its open() of `path` as `fd` (for
// tests): takes the gate for writing (no session holds a slot) and unlinks
// `path` only if it still names the file of `fd`: between the open() and
// the lock, a releasing session may have unlinked that file and a taker
// created and locked a new one of the same name. 1 removed or gone, 0 held
// (or a newer file), -1 fault (errno). The caller closes fd.
int remove_open_if_unused(int fd, const std::string& path) noexcept;

// remove_if_unused() for every file in `dir` (files left by SIGKILLed
// sessions; qmail-throttlectl expire). A taker that opened a file just
// before it goes finds it unlinked after the gate and opens a new one.
struct Swept {
  std::size_t removed = 0;  // files no session held
  std::size_t kept = 0;     // files a session holds (or that could not be removed)
};
// 0 when done, ENOENT when `dir` does not exist (nothing to do), else the
// errno of reading `dir`.
int sweep(const std::string& dir, Swept& out) noexcept;

}  // namespace client_slots

#endif
