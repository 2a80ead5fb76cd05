// checkpassword.cpp: see checkpassword.h.

#include "checkpassword.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace checkpassword {

namespace {

// Everything the child does between fork and exec: async-signal-safe calls.
[[noreturn]] void child(char* const* argv, int creds, int report, const sigset_t& mask) {
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (creds != 3) {
    if (dup2(creds, 3) != 3) _exit(111);
  } else if (fcntl(3, F_SETFD, 0) == -1) {
    _exit(111);
  }
  int null = open("/dev/null", O_RDONLY);
  if (null == -1 || dup2(null, 0) != 0 || dup2(2, 1) != 1) _exit(111);
  if (null > 3) close(null);
  execvp(argv[0], argv);
  int e = errno;
  (void)!write(report, &e, sizeof e);
  _exit(111);
}

Outcome temporary(std::string problem) { return {Result::temporary, std::move(problem)}; }

// Waits for pid (SIGCHLD blocked by the caller) until the deadline; kills it
// when the deadline passes. Returns the wait status, or -1 after a kill.
int wait_until(pid_t pid, unsigned timeout_seconds) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += timeout_seconds;
  for (;;) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r == -1 && errno != EINTR) return -1;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    timespec left{end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec};
    if (left.tv_nsec < 0) {
      left.tv_nsec += 1000000000L;
      --left.tv_sec;
    }
    if (left.tv_sec < 0) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
      }
      return -1;
    }
    sigtimedwait(&chld, nullptr, &left);  // woken by SIGCHLD, a timeout or EINTR
  }
}

}  // namespace

Outcome run(char* const* argv, std::string_view user, std::string_view password,
            unsigned timeout_seconds) noexcept {
  if (argv == nullptr || argv[0] == nullptr) return temporary("no checkpassword program");
  // user NUL password NUL timestamp NUL, the timestamp empty (no APOP/CRAM)
  char buf[512];
  std::size_t len = user.size() + password.size() + 3;
  if (len > sizeof buf) return {Result::refused, {}};
  std::memcpy(buf, user.data(), user.size());
  buf[user.size()] = '\0';
  std::memcpy(buf + user.size() + 1, password.data(), password.size());
  buf[user.size() + 1 + password.size()] = '\0';
  buf[len - 1] = '\0';

  int creds[2], report[2];
  if (pipe2(creds, O_CLOEXEC) == -1) {
    explicit_bzero(buf, sizeof buf);
    return temporary(std::string("cannot make a pipe: ") + std::strerror(errno));
  }
  // the whole record fits in the pipe (PIPE_BUF >= 512): written before the fork
  ssize_t w = write(creds[1], buf, len);
  explicit_bzero(buf, sizeof buf);
  close(creds[1]);
  if (w != static_cast<ssize_t>(len)) {
    close(creds[0]);
    return temporary("cannot write to a pipe");
  }
  if (pipe2(report, O_CLOEXEC) == -1) {
    close(creds[0]);
    return temporary(std::string("cannot make a pipe: ") + std::strerror(errno));
  }

  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old_mask);
  struct sigaction dfl {}, old_action {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGCHLD, &dfl, &old_action);  // an inherited SIG_IGN would reap it for us

  pid_t pid = fork();
  if (pid == 0) child(argv, creds[0], report[1], old_mask);
  int fork_errno = errno;
  close(creds[0]);
  close(report[1]);

  Outcome out{Result::refused, {}};
  if (pid == -1) {
    out = temporary(std::string("cannot fork: ") + std::strerror(fork_errno));
  } else {
    int exec_errno = 0;
    ssize_t r;
    do r = read(report[0], &exec_errno, sizeof exec_errno);
    while (r == -1 && errno == EINTR);
    int status = wait_until(pid, timeout_seconds);
    if (r == static_cast<ssize_t>(sizeof exec_errno))
      out = temporary(std::string("cannot run ") + argv[0] + ": " + std::strerror(exec_errno));
    else if (status == -1)
      out = temporary("no answer within " + std::to_string(timeout_seconds) + " seconds");
    else if (WIFSIGNALED(status))
      out = temporary("killed by signal " + std::to_string(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 0)
      out = {Result::accepted, {}};
    else if (WEXITSTATUS(status) == 111)
      out = temporary("exit 111");
  }
  close(report[0]);
  sigaction(SIGCHLD, &old_action, nullptr);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return out;
}

}  // namespace checkpassword
