// redis_test_server.cpp: see redis_test_server.h.

#include "redis_test_server.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace redis_test {

using redis::Reply;

namespace {

// A loopback port nothing listens on now (the kernel's choice).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// The same, below 55536 and with port + 10000 free too: a cluster node's
// bus port.
std::uint16_t free_cluster_port() {
  for (int i = 0; i < 1000; ++i) {
    const std::uint16_t port = free_port();
    if (port == 0 || port > 55535) continue;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port + 10000));
    const bool bus_free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (bus_free) return port;
  }
  return 0;
}

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/qt-redis-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return "/tmp";
  return tmpl;
}

template <class F>
bool wait_until(F ok, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ok();
}

// Every server started, so that the end of the binary stops them all.
std::vector<Server*>& all_servers() {
  static std::vector<Server*> v;
  return v;
}

struct StopAll : ::testing::Environment {
  void TearDown() override {
    for (Server* s : all_servers()) {
      s->stop();
      std::string rm = "rm -rf '" + s->dir() + "'";
      if (s->dir().size() > 5) (void)!std::system(rm.c_str());
    }
  }
};
const bool registered = [] {
  ::testing::AddGlobalTestEnvironment(new StopAll);  // gtest owns it
  std::signal(SIGPIPE, SIG_IGN);  // a server stopped mid-test must not kill us
  return true;
}();

}  // namespace

Server::Server(std::vector<std::string> extra, std::string config)
    : extra_(std::move(extra)), config_(std::move(config)) {
  (void)registered;
  for (const std::string& a : extra_) cluster_node_ = cluster_node_ || a == "--cluster-enabled";
  dir_ = temp_dir();
  all_servers().push_back(this);
}

Server::~Server() {
  stop();
  std::string rm = "rm -rf '" + dir_ + "'";
  if (dir_.size() > 5) (void)!std::system(rm.c_str());
  auto& v = all_servers();
  for (auto it = v.begin(); it != v.end(); ++it)
    if (*it == this) {
      v.erase(it);
      break;
    }
}

bool Server::start() {
  if (pid_ > 0) return true;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (port_ == 0 || attempt > 0) port_ = cluster_node_ ? free_cluster_port() : free_port();
    std::vector<std::string> args = {"redis-server"};
    if (!config_.empty()) args.push_back(dir_ + "/" + config_);
    std::vector<std::string> common = {"--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", dir_, "--logfile",
                                     dir_ + "/redis.log", "--protected-mode", "no"};
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), extra_.begin(), extra_.end());
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    if (pid < 0) return false;
    pid_ = pid;
    const bool up = wait_until(
        [&] {
          int st;
          if (waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            return true;  // exited: port taken? try another
          }
          redis::Reply r = command({"PING"});
          return r.type == redis::Reply::Type::status || r.error_code_is("NOAUTH");
        },
        10000);
    if (up && pid_ > 0) return true;
    if (pid_ > 0) stop();
  }
  ADD_FAILURE() << "cannot start redis-server (is the redis-server package installed?)";
  return false;
}

void Server::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  if (!wait_until([&] { return waitpid(pid_, nullptr, WNOHANG) == pid_; }, 5000)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
}

void Server::pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void Server::resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

redis::Reply Server::command(const std::vector<std::string>& args, const std::string& password) {
  redis::Connection c;
  redis::Reply r;
  std::vector<std::vector<std::string>> setup;
  if (!password.empty()) setup.push_back({"AUTH", password});
  if (!c.open({"127.0.0.1", port_}, {1000, 5000}, setup).ok()) {
    r.type = redis::Reply::Type::error;
    r.str = "CONNECT failed";
    return r;
  }
  std::vector<std::string_view> v(args.begin(), args.end());
  store::Result res = c.append(v);
  if (res.ok()) res = c.receive(r);
  if (!res.ok()) {
    r.type = redis::Reply::Type::error;
    r.str = "IO " + res.reason;
  }
  return r;
}

Cluster::Cluster() {
  for (int i = 0; i < 3; ++i) {
    nodes_.push_back(new Server({"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", "2000"}));
    if (!nodes_.back()->start()) return;
  }
  std::string cmd = "redis-cli --cluster create";
  for (Server* s : nodes_) cmd += " 127.0.0.1:" + std::to_string(s->port());
  cmd += " --cluster-replicas 0 --cluster-yes >" + nodes_[0]->dir() + "/create.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "redis-cli --cluster create failed: see " << nodes_[0]->dir() << "/create.log";
    return;
  }
  ok_ = wait_ok();
  if (!ok_) ADD_FAILURE() << "the test cluster never reached cluster_state:ok";
}

Cluster::~Cluster() {
  for (Server* s : nodes_) delete s;
}

bool Cluster::wait_ok() {
  return wait_until(
      [&] {
        for (Server* s : nodes_) {
          redis::Reply r = s->command({"CLUSTER", "INFO"});
          if (r.str.find("cluster_state:ok") == std::string::npos) return false;
        }
        return true;
      },
      20000);
}

std::string Cluster::url() const {
  // Two of the three as seeds: the third is found through the slot map.
  return "redis-cluster://127.0.0.1:" + std::to_string(nodes_[0]->port()) + ",127.0.0.1:" +
         std::to_string(nodes_[1]->port());
}

void Cluster::flushall() {
  for (Server* s : nodes_) s->command({"FLUSHALL"});
}

SentinelGroup::SentinelGroup() {
  primary_ = std::make_unique<Server>();
  if (!primary_->start()) return;
  replica_ = std::make_unique<Server>(
      std::vector<std::string>{"--replicaof", "127.0.0.1", std::to_string(primary_->port())});
  if (!replica_->start()) return;
  sentinel_ = std::make_unique<Server>(std::vector<std::string>{"--sentinel"}, "sentinel.conf");
  std::FILE* f = std::fopen((sentinel_->dir() + "/sentinel.conf").c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f,
               "sentinel monitor qt 127.0.0.1 %u 1\nsentinel down-after-milliseconds qt 1000\n"
               "sentinel failover-timeout qt 5000\n",
               static_cast<unsigned>(primary_->port()));
  std::fclose(f);
  if (!sentinel_->start()) return;
  ok_ = wait_until(
      [&] {
        Reply r = replica_->command({"INFO", "replication"});
        Reply m = sentinel_->command({"SENTINEL", "replicas", "qt"});
        return r.str.find("master_link_status:up") != std::string::npos && m.type == Reply::Type::array &&
               !m.elements.empty();
      },
      20000);
  if (!ok_) ADD_FAILURE() << "the Sentinel group did not come up";
}

std::string SentinelGroup::url() const {
  return "redis-sentinel://127.0.0.1:" + std::to_string(sentinel_->port()) + "/qt";
}

bool SentinelGroup::failover() {
  Reply r = sentinel_->command({"SENTINEL", "FAILOVER", "qt"});
  if (r.is_error()) {
    ADD_FAILURE() << "SENTINEL FAILOVER: " << r.str;
    return false;
  }
  auto role_is = [](Server& s, const char* role) {
    Reply r = s.command({"ROLE"});
    return r.type == Reply::Type::array && !r.elements.empty() && r.elements[0].str == role;
  };
  auto named = [&] {
    Reply r = sentinel_->command({"SENTINEL", "get-master-addr-by-name", "qt"});
    return r.type == Reply::Type::array && r.elements.size() == 2 &&
           r.elements[1].str == std::to_string(replica_->port());
  };
  if (!wait_until([&] { return role_is(*replica_, "master") && named(); }, 30000)) return false;
  // Sentinel turns the old primary into a replica at its next look at it
  // (INFO every 10 s): do it now, as it will.
  primary_->command({"REPLICAOF", "127.0.0.1", std::to_string(replica_->port())});
  return wait_until([&] { return role_is(*primary_, "slave"); }, 30000);
}

Server& standalone() {
  static Server* s = [] {
    auto* server = new Server();  // lives until the binary ends; StopAll stops it
    server->start();
    return server;
  }();
  return *s;
}

Cluster& cluster() {
  static Cluster* c = new Cluster();
  return *c;
}

store::RedisOptions options(const std::string& url) {
  store::RedisOptions o;
  std::string error;
  std::optional<store_url::Spec> spec = store_url::parse(url, &error);
  EXPECT_TRUE(spec.has_value()) << url << ": " << error;
  if (spec) o.spec = *spec;
  o.password_file = "";
  return o;
}

}  // namespace redis_test
