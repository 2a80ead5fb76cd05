// redis_test_server.h: real redis-server processes for the store tests, on
// loopback ports of their own (never 6379), started by the tests and
// stopped by them - at the end of the test binary, when a test fails, and
// when the test binary dies (PR_SET_PDEATHSIG).
//
//   redis_test::Server& r = redis_test::standalone();   // shared, started once
//   r.command({"FLUSHALL"});
//   redis_test::Cluster& c = redis_test::cluster();     // three primaries
#ifndef QT_TEST_REDIS_TEST_SERVER_H
#define QT_TEST_REDIS_TEST_SERVER_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redis_connection.h"
#include "store_redis.h"

namespace redis_test {

class Server {
 public:
  // extra: more redis-server arguments ("--requirepass", "x", ...);
  // config: a file in dir() to start from (a Sentinel's: with "--sentinel").
  explicit Server(std::vector<std::string> extra = {}, std::string config = "");
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts it (again, on the same port after stop()); true once it answers PING.
  bool start();
  // SIGTERM, then SIGKILL; waits until it is gone.
  void stop();
  void pause();   // SIGSTOP: connections are accepted by the kernel, nothing answers
  void resume();  // SIGCONT
  bool running() const { return pid_ > 0; }

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  // One command on a connection of its own; an error reply comes back as one.
  redis::Reply command(const std::vector<std::string>& args, const std::string& password = "");

 private:
  std::vector<std::string> extra_;
  std::string config_;
  std::uint16_t port_ = 0;
  int pid_ = -1;
  std::string dir_;
  bool cluster_node_ = false;  // needs port + 10000 for the cluster bus
};

// Three primaries made into a cluster with redis-cli --cluster create.
class Cluster {
 public:
  Cluster();
  ~Cluster();
  bool ok() const { return ok_; }
  std::string url() const;  // redis-cluster://127.0.0.1:P1,127.0.0.1:P2
  Server& node(std::size_t i) { return *nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }
  void flushall();
  // Waits until every node says cluster_state:ok.
  bool wait_ok();

 private:
  std::vector<Server*> nodes_;
  bool ok_ = false;
};

// A primary, its replica and a Sentinel (quorum 1) watching them as "qt".
class SentinelGroup {
 public:
  SentinelGroup();
  bool ok() const { return ok_; }
  std::string url() const;  // redis-sentinel://127.0.0.1:PORT/qt
  Server& primary() { return *primary_; }
  Server& replica() { return *replica_; }
  Server& sentinel() { return *sentinel_; }
  // SENTINEL FAILOVER; waits until the replica is the primary and the old
  // primary replicates from it.
  bool failover();

 private:
  std::unique_ptr<Server> primary_, replica_, sentinel_;
  bool ok_ = false;
};

// Started at first use, stopped when the test binary ends.
Server& standalone();
Cluster& cluster();

// A store on `url` with no password file.
store::RedisOptions options(const std::string& url);

}  // namespace redis_test

#endif
