// geokv-bench-load: the closed-loop load generator behind `geokv-bench` (the Python driver
// bench/geo/geokvbench/ starts the clusters and peers, then runs this once per workload).
//
//   geokv-bench-load SPEC.json OUT.json
//
// SPEC (written by the driver; every field is documented in docs/bench.md):
//   backend        "geokv" | "redis" | "etcd"
//   task           "workload" (YCSB-shaped mix) | "load" (insert the records, unmeasured) |
//                  "convergence" (write in one region, poll the others until it is visible)
//   regions        [{name, endpoint, clients, write_bound_ms: [per shard], read_bound_ms:
//                  [per shard], one_way_ms: {region: ms}}]
//   shards         number of strong shards (the engine hashes keys with FNV-1a 64)
//   mode           strong | lww | mvreg | counter | set (which geokv operations an abstract
//                  read/update/insert/scan/rmw becomes; the key prefix selects the mode)
//   key_prefix, records, value_bytes, mix {read, update, insert, scan, rmw},
//   distribution   zipfian | uniform | latest, scan_length_max,
//   warmup_s, duration_s, samples (convergence: writes per remote region)
//
// Each client is one thread with its own connection, issuing the next operation when the
// previous one answered (closed loop); latency is taken around the whole call on the
// client, so it includes every queue between client and server. Operations that finish
// during warm-up are counted apart and excluded from every figure. Every failed operation
// is counted by its error code, never dropped; its latency is not in the percentiles.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/server/client.h"
#include "replication/crdt/codec.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---- key choice (YCSB's generators) --------------------------------------------------------

// YCSB's ZipfianGenerator (Gray et al.), constant 0.99, over [0, n).
class Zipfian {
 public:
  explicit Zipfian(uint64_t n, double theta = 0.99) : n_(n), theta_(theta) {
    for (uint64_t i = 1; i <= n; ++i) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1 - std::pow(2.0 / static_cast<double>(n), 1 - theta)) / (1 - zeta2 / zetan_);
  }
  uint64_t Next(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return std::min<uint64_t>(1, n_ - 1);
    return std::min<uint64_t>(n_ - 1, static_cast<uint64_t>(static_cast<double>(n_) *
                                                             std::pow(eta_ * u - eta_ + 1, alpha_)));
  }

 private:
  uint64_t n_;
  double theta_, zetan_ = 0, alpha_ = 0, eta_ = 0;
};

struct Spec {
  std::string backend, task, mode, key_prefix, distribution;
  uint64_t records = 1000;
  size_t value_bytes = 100;
  double mix[5] = {1, 0, 0, 0, 0};  // read, update, insert, scan, rmw
  int scan_length_max = 10;
  double warmup_s = 1, duration_s = 5;
  int samples = 20;
  uint32_t shards = 4;
  struct Region {
    std::string name, endpoint;
    int clients = 1;
    std::vector<double> write_bound_ms, read_bound_ms;
    std::map<std::string, double> one_way_ms;
  };
  std::vector<Region> regions;
};

const char* kOpNames[5] = {"read", "update", "insert", "scan", "rmw"};

std::string KeyName(const Spec& s, uint64_t index) {
  // YCSB hashes the record number so that consecutive inserts do not land together.
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%016llx",
                static_cast<unsigned long long>(geokv::crdt::Fnv1a64(std::to_string(index))));
  return s.key_prefix + buf;
}

// ---- backends ------------------------------------------------------------------------------

// The outcome of one abstract operation: "" when it succeeded (not-found included: a read
// of an absent key is an answer), else the error code's name.
using Outcome = std::string;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Outcome Read(const std::string& key) = 0;
  virtual Outcome Write(const std::string& key, const std::string& value) = 0;
  // Reads then writes the same key (YCSB's read-modify-write).
  virtual Outcome ReadModifyWrite(const std::string& key, const std::string& value) {
    Outcome r = Read(key);
    return r.empty() ? Write(key, value) : r;
  }
  // Reads up to `n` records starting at `first` (ordered by record number).
  virtual Outcome Scan(const Spec& s, uint64_t first, int n) {
    for (int i = 0; i < n; ++i) {
      Outcome r = Read(KeyName(s, first + static_cast<uint64_t>(i)));
      if (!r.empty()) return r;
    }
    return "";
  }
  // The value a read of `key` sees now, for convergence ("" when absent or failed).
  virtual std::string Peek(const std::string& key) = 0;
};

class GeokvBackend : public Backend {
 public:
  GeokvBackend(const std::string& endpoint, const std::string& mode) : mode_(mode) {
    geokv::ClientOptions o;
    o.endpoints = {endpoint};
    o.timeout_ms = 10000;
    auto c = geokv::Client::Connect(o);
    if (!c.ok()) throw std::runtime_error(c.status().ToString());
    client_ = std::move(c).value();
  }
  Outcome Read(const std::string& key) override {
    geokv::Request r;
    r.key = key;
    if (mode_ == "mvreg") r.op = geokv::Op::kMvGet;
    else if (mode_ == "set") { r.op = geokv::Op::kSetContains; r.value = "e0"; }
    else r.op = geokv::Op::kGet;
    return Check(client_->Call(std::move(r)));
  }
  Outcome Write(const std::string& key, const std::string& value) override {
    geokv::Request r;
    r.key = key;
    if (mode_ == "counter") { r.op = geokv::Op::kAdd; r.delta = 1; }
    else if (mode_ == "set") { r.op = geokv::Op::kSetAdd; r.value = "e" + std::to_string(value.size() % 8); }
    else if (mode_ == "mvreg") {
      // A put without the context it read would add a sibling every time; a writer that
      // reads first (as an application must) replaces what it saw.
      geokv::Request g;
      g.op = geokv::Op::kMvGet;
      g.key = key;
      geokv::Response got = client_->Call(std::move(g));
      if (!got.status.ok() && !got.status.IsNotFound()) return std::string(geokv::CodeName(got.status.code()));
      r.op = geokv::Op::kMvPut;
      r.context = got.context;
      r.value = value;
    } else { r.op = geokv::Op::kPut; r.value = value; }
    return Check(client_->Call(std::move(r)));
  }
  std::string Peek(const std::string& key) override {
    geokv::Request r;
    r.op = geokv::Op::kGet;
    r.key = key;
    geokv::Response resp = client_->Call(std::move(r));
    if (mode_ == "counter") return resp.status.ok() ? std::to_string(resp.number) : resp.status.IsNotFound() ? "0" : "";
    return resp.status.ok() ? resp.value : "";
  }

 private:
  static Outcome Check(const geokv::Response& r) {
    if (r.status.ok() || r.status.IsNotFound()) return "";
    return std::string(geokv::CodeName(r.status.code()));
  }
  std::string mode_;
  std::unique_ptr<geokv::Client> client_;
};

// Redis over RESP on one TCP connection.
class RedisBackend : public Backend {
 public:
  RedisBackend(const std::string& endpoint, const std::string& mode) : mode_(mode) {
    const auto colon = endpoint.rfind(':');
    const std::string host = endpoint.substr(endpoint.find("//") == std::string::npos ? 0 : endpoint.find("//") + 2,
                                             colon - (endpoint.find("//") == std::string::npos ? 0 : endpoint.find("//") + 2));
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1))));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("redis: connect " + endpoint);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RedisBackend() override { close(fd_); }
  Outcome Read(const std::string& key) override {
    if (mode_ == "counter" || mode_ == "strong" || mode_ == "lww" || mode_ == "mvreg") return Cmd({"GET", key}).first;
    return Cmd({"SISMEMBER", key, "e0"}).first;
  }
  Outcome Write(const std::string& key, const std::string& value) override {
    if (mode_ == "counter") return Cmd({"INCRBY", key, "1"}).first;
    if (mode_ == "set") return Cmd({"SADD", key, "e" + std::to_string(value.size() % 8)}).first;
    return Cmd({"SET", key, value}).first;
  }
  std::string Peek(const std::string& key) override { return Cmd({"GET", key}).second; }

 private:
  std::pair<Outcome, std::string> Cmd(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    for (size_t sent = 0; sent < out.size();) {
      const ssize_t n = send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return {"IO_ERROR", ""};
      sent += static_cast<size_t>(n);
    }
    std::string line;
    if (!ReadLine(&line)) return {"TIMEOUT", ""};
    if (line.empty()) return {"IO_ERROR", ""};
    if (line[0] == '-') return {"REDIS_" + line.substr(1, line.find(' ') - 1), ""};
    if (line[0] == '$') {
      const long n = std::stol(line.substr(1));
      if (n < 0) return {"", ""};
      std::string body;
      while (buf_.size() < static_cast<size_t>(n) + 2) if (!Fill()) return {"TIMEOUT", ""};
      body = buf_.substr(0, static_cast<size_t>(n));
      buf_.erase(0, static_cast<size_t>(n) + 2);
      return {"", body};
    }
    return {"", line.substr(1)};
  }
  bool Fill() {
    char tmp[65536];
    const ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool ReadLine(std::string* line) {
    for (;;) {
      const auto end = buf_.find("\r\n");
      if (end != std::string::npos) {
        *line = buf_.substr(0, end);
        buf_.erase(0, end + 2);
        return true;
      }
      if (!Fill()) return false;
    }
  }
  std::string mode_;
  int fd_ = -1;
  std::string buf_;
};

std::string Base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += t[(v >> 6) & 63]; out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += t[(v >> 6) & 63]; out += '=';
  }
  return out;
}

// etcd 3.4 through its gRPC-JSON gateway (/v3/kv/*): linearizable reads (the default).
class EtcdBackend : public Backend {
 public:
  explicit EtcdBackend(const std::string& endpoint) : http_(endpoint) {
    http_.set_keep_alive(true);
    // Without it, Nagle holds a request's body until the header's ACK, which the server
    // delays (up to 40 ms on Linux): etcd would pay for the client's socket option.
    http_.set_tcp_nodelay(true);
    http_.set_read_timeout(10, 0);
    http_.set_connection_timeout(5, 0);
  }
  Outcome Read(const std::string& key) override { return Post("/v3/kv/range", {{"key", Base64(key)}}).first; }
  Outcome Write(const std::string& key, const std::string& value) override {
    return Post("/v3/kv/put", {{"key", Base64(key)}, {"value", Base64(value)}}).first;
  }
  Outcome Scan(const Spec& s, uint64_t first, int n) override {
    // Keys are hashed, so a range from the first record's key returns the next n keys in
    // key order: the same number of records as the other backends read.
    std::string end = s.key_prefix;
    end.back() = static_cast<char>(end.back() + 1);
    return Post("/v3/kv/range", {{"key", Base64(KeyName(s, first))}, {"range_end", Base64(end)}, {"limit", n}}).first;
  }
  std::string Peek(const std::string& key) override {
    auto [outcome, body] = Post("/v3/kv/range", {{"key", Base64(key)}});
    if (!outcome.empty()) return "";
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("kvs")) return "";
    return j["kvs"][0].value("value", "");  // base64; compared for change only
  }

 private:
  std::pair<Outcome, std::string> Post(const std::string& path, const json& body) {
    auto res = http_.Post(path, body.dump(), "application/json");
    if (!res) return {"HTTP_" + httplib::to_string(res.error()), ""};
    if (res->status != 200) return {"HTTP_" + std::to_string(res->status), ""};
    return {"", res->body};
  }
  httplib::Client http_;
};

std::unique_ptr<Backend> MakeBackend(const Spec& s, const std::string& endpoint) {
  if (s.backend == "geokv") return std::make_unique<GeokvBackend>(endpoint, s.mode);
  if (s.backend == "redis") return std::make_unique<RedisBackend>(endpoint, s.mode);
  if (s.backend == "etcd") return std::make_unique<EtcdBackend>(endpoint);
  throw std::runtime_error("unknown backend " + s.backend);
}

// ---- measurement ---------------------------------------------------------------------------

struct Samples {
  std::vector<double> ms;        // successful operations in the measured window
  std::vector<double> ratio;     // latency over the physical bound (strong keys, etcd)
  std::map<std::string, uint64_t> errors;
  uint64_t warmup_ops = 0;
};

json Summary(std::vector<double> v) {
  json j;
  j["count"] = v.size();
  if (v.empty()) return j;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))]; };
  double sum = 0;
  for (double x : v) sum += x;
  j["mean"] = sum / static_cast<double>(v.size());
  j["p50"] = pct(0.50);
  j["p95"] = pct(0.95);
  j["p99"] = pct(0.99);
  j["max"] = v.back();
  // The distribution at 101 quantiles, for the CDF plots.
  json cdf = json::array();
  for (int q = 0; q <= 100; ++q) cdf.push_back(pct(q / 100.0));
  j["quantiles"] = cdf;
  return j;
}

Spec ParseSpec(const json& j) {
  Spec s;
  s.backend = j.at("backend");
  s.task = j.value("task", "workload");
  s.mode = j.value("mode", "strong");
  s.key_prefix = j.value("key_prefix", "bench/");
  s.distribution = j.value("distribution", "zipfian");
  s.records = j.value("records", 1000);
  s.value_bytes = j.value("value_bytes", 100);
  if (j.contains("mix")) {
    for (int i = 0; i < 5; ++i) s.mix[i] = j["mix"].value(kOpNames[i], 0.0);
  }
  s.scan_length_max = j.value("scan_length_max", 10);
  s.warmup_s = j.value("warmup_s", 1.0);
  s.duration_s = j.value("duration_s", 5.0);
  s.samples = j.value("samples", 20);
  s.shards = j.value("shards", 4);
  for (const auto& r : j.at("regions")) {
    Spec::Region reg;
    reg.name = r.at("name");
    reg.endpoint = r.at("endpoint");
    reg.clients = r.value("clients", 1);
    reg.write_bound_ms = r.value("write_bound_ms", std::vector<double>{});
    reg.read_bound_ms = r.value("read_bound_ms", std::vector<double>{});
    reg.one_way_ms = r.value("one_way_ms", std::map<std::string, double>{});
    s.regions.push_back(reg);
  }
  return s;
}

// Inserts the records, spread over 32 connections to the first region (not measured).
uint64_t Load(const Spec& s) {
  std::atomic<uint64_t> next{0}, failed{0};
  std::vector<std::thread> threads;
  const std::string value(s.value_bytes, 'v');
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&] {
      auto b = MakeBackend(s, s.regions[0].endpoint);
      for (uint64_t i; (i = next++) < s.records;) {
        if (!b->Write(KeyName(s, i), value).empty()) failed++;
      }
    });
  }
  for (auto& t : threads) t.join();
  return failed.load();
}

json RunWorkload(const Spec& s) {
  json out;
  std::atomic<uint64_t> inserted{s.records};
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.warmup_s));
  const auto measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.duration_s));
  std::mutex mu;
  std::map<std::string, std::map<std::string, Samples>> results;  // region -> op -> samples
  std::map<std::string, std::string> connect_errors;
  std::vector<std::thread> threads;
  double total_weight = 0;
  for (double w : s.mix) total_weight += w;
  const Zipfian zipf(std::max<uint64_t>(s.records, 2));
  int seed = 1;
  for (const auto& region : s.regions) {
    for (int c = 0; c < region.clients; ++c, ++seed) {
      threads.emplace_back([&, seed, region_ptr = &region] {
        const Spec::Region& reg = *region_ptr;
        std::map<std::string, Samples> mine;
        std::unique_ptr<Backend> b;
        try {
          b = MakeBackend(s, reg.endpoint);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> l(mu);
          results[reg.name]["connect"].errors["CONNECT"]++;
          connect_errors[reg.name] = e.what();
          return;
        }
        std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919);
        std::uniform_real_distribution<double> pick(0, total_weight);
        const std::string value(s.value_bytes, 'v');
        auto choose = [&]() -> uint64_t {
          const uint64_t n = inserted.load();
          if (s.distribution == "uniform") return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
          if (s.distribution == "latest") return n - 1 - std::min(n - 1, zipf.Next(rng));
          // Scrambled zipfian: popular items spread over the key space (YCSB).
          return geokv::crdt::Fnv1a64(std::to_string(zipf.Next(rng))) % n;
        };
        while (!stop.load(std::memory_order_relaxed)) {
          double x = pick(rng);
          int op = 0;
          while (op < 4 && x >= s.mix[op]) x -= s.mix[op++];
          uint64_t index = 0;
          const auto t0 = Clock::now();
          Outcome outcome;
          std::string key;
          switch (op) {
            case 0: key = KeyName(s, index = choose()); outcome = b->Read(key); break;
            case 1: key = KeyName(s, index = choose()); outcome = b->Write(key, value); break;
            case 2: key = KeyName(s, index = inserted.fetch_add(1)); outcome = b->Write(key, value); break;
            case 3: {
              index = choose();
              key = KeyName(s, index);
              const int len = std::uniform_int_distribution<int>(1, s.scan_length_max)(rng);
              outcome = b->Scan(s, index, len);
              break;
            }
            default: key = KeyName(s, index = choose()); outcome = b->ReadModifyWrite(key, value); break;
          }
          const auto t1 = Clock::now();
          if (t1 >= measure_to) break;
          Samples& sm = mine[kOpNames[op]];
          if (t0 < measure_from) { sm.warmup_ops++; continue; }
          if (!outcome.empty()) { sm.errors[outcome]++; continue; }
          const double ms = Ms(t1 - t0);
          sm.ms.push_back(ms);
          // The bound of this key's shard leader (strong keys; etcd has one group).
          const auto& bounds = (op == 0 || op == 3) ? reg.read_bound_ms : reg.write_bound_ms;
          if (s.backend != "redis" && s.mode == "strong" && !bounds.empty()) {
            const double bound = bounds[geokv::crdt::Fnv1a64(key) % s.shards % bounds.size()];
            if (op == 4 && !reg.read_bound_ms.empty()) {
              const double rb = reg.read_bound_ms[geokv::crdt::Fnv1a64(key) % s.shards % reg.read_bound_ms.size()];
              if (bound + rb > 0) sm.ratio.push_back(ms / (bound + rb));
            } else if (bound > 0) {
              sm.ratio.push_back(ms / bound);
            }
          }
        }
        std::lock_guard<std::mutex> l(mu);
        for (auto& [op, sm] : mine) {
          Samples& into = results[reg.name][op];
          into.ms.insert(into.ms.end(), sm.ms.begin(), sm.ms.end());
          into.ratio.insert(into.ratio.end(), sm.ratio.begin(), sm.ratio.end());
          for (auto& [code, n] : sm.errors) into.errors[code] += n;
          into.warmup_ops += sm.warmup_ops;
        }
      });
    }
  }
  std::this_thread::sleep_until(measure_to);
  stop = true;
  for (auto& t : threads) t.join();
  out["measured_s"] = s.duration_s;
  out["warmup_s"] = s.warmup_s;
  out["wall_s"] = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t ok = 0, failed = 0;
  // "*": every region together (the per-op figures of the whole run).
  std::map<std::string, Samples> all;
  for (auto& [region, ops] : results) {
    for (auto& [op, sm] : ops) {
      Samples& into = all[op];
      into.ms.insert(into.ms.end(), sm.ms.begin(), sm.ms.end());
      into.ratio.insert(into.ratio.end(), sm.ratio.begin(), sm.ratio.end());
      for (auto& [code, n] : sm.errors) into.errors[code] += n;
      into.warmup_ops += sm.warmup_ops;
    }
  }
  results["*"] = std::move(all);
  for (auto& [region, ops] : results) {
    for (auto& [op, sm] : ops) {
      json j;
      j["latency_ms"] = Summary(sm.ms);
      if (!sm.ratio.empty()) j["over_bound"] = Summary(sm.ratio);
      j["errors"] = sm.errors;
      j["warmup_ops"] = sm.warmup_ops;
      j["ops_per_s"] = static_cast<double>(sm.ms.size()) / s.duration_s;
      out["regions"][region][op] = j;
      if (region == "*") continue;
      ok += sm.ms.size();
      for (auto& [code, n] : sm.errors) failed += n;
    }
  }
  out["inserted_keys"] = inserted.load() - s.records;
  out["ops_ok"] = ok;
  out["ops_failed"] = failed;
  out["ops_per_s"] = static_cast<double>(ok) / s.duration_s;
  if (!connect_errors.empty()) out["connect_errors"] = connect_errors;
  return out;
}

// Convergence: the first region writes a fresh value; one poller per other region reads
// until it sees it. Lag = from the start of the write to the first read that returns it.
json RunConvergence(const Spec& s) {
  json out;
  auto writer = MakeBackend(s, s.regions[0].endpoint);
  std::vector<std::unique_ptr<Backend>> readers;
  for (size_t r = 1; r < s.regions.size(); ++r) readers.push_back(MakeBackend(s, s.regions[r].endpoint));
  std::vector<std::vector<double>> lags(readers.size());
  std::vector<uint64_t> missed(readers.size(), 0);
  const std::string key = s.key_prefix + "convergence";
  for (int n = 0; n < s.samples; ++n) {
    const std::string value = "v" + std::to_string(n) + "-" + std::to_string(Clock::now().time_since_epoch().count());
    // What the other regions must read: the value written, or for a counter (whose
    // write adds 1) the writer's count plus one (every earlier add has been seen).
    std::string expected = s.backend == "etcd" ? Base64(value) : value;
    if (s.mode == "counter") {
      const std::string now = writer->Peek(key);
      expected = std::to_string((now.empty() ? 0 : std::stoll(now)) + 1);
    }
    std::atomic<bool> go{false};
    Clock::time_point start;
    std::vector<std::thread> pollers;
    for (size_t r = 0; r < readers.size(); ++r) {
      pollers.emplace_back([&, r] {
        while (!go.load()) std::this_thread::yield();
        for (;;) {
          const std::string seen = readers[r]->Peek(key);
          const auto now = Clock::now();
          if (seen == expected) {
            lags[r].push_back(Ms(now - start));
            return;
          }
          if (now - start > std::chrono::seconds(10)) { missed[r]++; return; }
          // Polling every millisecond bounds the error at 1 ms without spinning the CPUs
          // the servers need.
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
    }
    start = Clock::now();
    go = true;
    const Outcome w = writer->Write(key, value);
    if (!w.empty()) out["write_errors"][w] = out["write_errors"].value(w, 0) + 1;
    for (auto& p : pollers) p.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (size_t r = 0; r < readers.size(); ++r) {
    const auto& reg = s.regions[r + 1];
    json j;
    j["lag_ms"] = Summary(lags[r]);
    j["not_seen_within_10s"] = missed[r];
    const auto ow = s.regions[0].one_way_ms.find(reg.name);
    if (ow != s.regions[0].one_way_ms.end() && ow->second > 0) {
      std::vector<double> ratio;
      for (double l : lags[r]) ratio.push_back(l / ow->second);
      j["one_way_ms"] = ow->second;
      j["over_one_way"] = Summary(ratio);
    }
    out["regions"][reg.name] = j;
  }
  out["from"] = s.regions[0].name;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: geokv-bench-load SPEC.json OUT.json (started by geokv-bench)\n");
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    const Spec s = ParseSpec(json::parse(in));
    json out;
    if (s.task == "convergence") {
      out = RunConvergence(s);
    } else if (s.task == "load") {
      const auto start = Clock::now();
      out["load_failures"] = Load(s);
      out["records"] = s.records;
      out["wall_s"] = std::chrono::duration<double>(Clock::now() - start).count();
    } else {
      out = RunWorkload(s);
    }
    std::ofstream(argv[2]) << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "geokv-bench-load: %s\n", e.what());
    return 1;
  }
  return 0;
}
