#include "tools/geokv/demo.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "core/server/client.h"

namespace geokv::tools {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Timed {
  Response response;
  double ms = 0;
};

Timed Run(Client& c, Request r) {
  const auto start = Clock::now();
  Timed t;
  t.response = c.Call(std::move(r));
  t.ms = Ms(Clock::now() - start);
  return t;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int RunDemo(const std::vector<std::string>& endpoints, const std::vector<std::string>& regions, int rounds) {
  std::vector<std::unique_ptr<Client>> clients;
  for (const auto& e : endpoints) {
    ClientOptions o;
    o.endpoints = {e};  // one region each: no fallback to another region
    o.timeout_ms = 5000;
    auto c = Client::Connect(o);
    if (!c.ok()) {
      std::fprintf(stderr, "demo: %s\n", c.status().ToString().c_str());
      return 1;
    }
    clients.push_back(std::move(c).value());
  }
  int failures = 0;
  auto check = [&](const Timed& t, const char* what) {
    if (!t.response.status.ok()) {
      std::printf("  !! %s failed: %s\n", what, t.response.status.ToString().c_str());
      failures++;
    }
  };

  std::printf("\n== strong key \"account/alice\" (Multi-Paxos, linearizable) ==\n");
  std::printf("%-14s %12s %12s %12s\n", "region", "put p50 ms", "get p50 ms", "add p50 ms");
  for (size_t i = 0; i < clients.size(); ++i) {
    std::vector<double> put, get, add;
    for (int r = 0; r < rounds; ++r) {
      Request p;
      p.op = Op::kPut;
      p.key = "account/alice";
      p.value = std::to_string(100 * (i + 1) + r);
      Timed t = Run(*clients[i], p);
      check(t, "strong put");
      put.push_back(t.ms);
      Request g;
      g.op = Op::kGet;
      g.key = "account/alice";
      t = Run(*clients[i], g);
      check(t, "strong get");
      if (t.response.value != p.value) {
        std::printf("  !! read %s after writing %s (not linearizable?)\n", t.response.value.c_str(), p.value.c_str());
        failures++;
      }
      get.push_back(t.ms);
      Request a;
      a.op = Op::kAdd;
      a.key = "account/visits";
      a.delta = 1;
      t = Run(*clients[i], a);
      check(t, "strong add");
      add.push_back(t.ms);
    }
    std::printf("%-14s %12.1f %12.1f %12.1f\n", regions[i].c_str(), Median(put), Median(get), Median(add));
  }

  std::printf("\n== eventual keys (CRDTs: always writable locally, converging everywhere) ==\n");
  std::printf("%-14s %14s %14s %14s\n", "region", "counter add ms", "set add ms", "lww put ms");
  for (size_t i = 0; i < clients.size(); ++i) {
    std::vector<double> counter, set, lww;
    for (int r = 0; r < rounds; ++r) {
      Request a;
      a.op = Op::kAdd;
      a.key = "counter/likes";
      a.delta = 1;
      Timed t = Run(*clients[i], a);
      check(t, "counter add");
      counter.push_back(t.ms);
      Request s;
      s.op = Op::kSetAdd;
      s.key = "set/visitors";
      s.value = regions[i] + "-" + std::to_string(r);
      t = Run(*clients[i], s);
      check(t, "set add");
      set.push_back(t.ms);
      Request l;
      l.op = Op::kPut;
      l.key = "lww/banner";
      l.value = "hello from " + regions[i];
      t = Run(*clients[i], l);
      check(t, "lww put");
      lww.push_back(t.ms);
    }
    std::printf("%-14s %14.1f %14.1f %14.1f\n", regions[i].c_str(), Median(counter), Median(set), Median(lww));
  }

  // Convergence: one region increments; how long until every region reads the new value?
  std::printf("\n== convergence of \"counter/likes\" after one increment in %s ==\n", regions[0].c_str());
  Request before;
  before.op = Op::kGet;
  before.key = "counter/likes";
  // Wait for the earlier increments to settle first, so the target is exact.
  const int64_t expected_before = static_cast<int64_t>(clients.size()) * rounds;
  const auto settle_deadline = Clock::now() + std::chrono::seconds(10);
  for (size_t i = 0; i < clients.size(); ++i) {
    while (clients[i]->Call(before).number < expected_before && Clock::now() < settle_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  Request inc;
  inc.op = Op::kAdd;
  inc.key = "counter/likes";
  inc.delta = 1;
  const auto written = Clock::now();
  check(Run(*clients[0], inc), "counter add");
  for (size_t i = 0; i < clients.size(); ++i) {
    const auto deadline = written + std::chrono::seconds(10);
    bool seen = false;
    while (Clock::now() < deadline) {
      if (clients[i]->Call(before).number >= expected_before + 1) { seen = true; break; }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (seen) {
      std::printf("%-14s visible after %7.1f ms\n", regions[i].c_str(), Ms(Clock::now() - written));
    } else {
      std::printf("%-14s !! not visible after 10 s\n", regions[i].c_str());
      failures++;
    }
  }
  std::printf("\n== final state, read in every region ==\n");
  for (size_t i = 0; i < clients.size(); ++i) {
    Request g;
    g.op = Op::kGet;
    g.key = "account/alice";
    Response strong = clients[i]->Call(g);
    g.key = "counter/likes";
    Response likes = clients[i]->Call(g);
    Request m;
    m.op = Op::kSetMembers;
    m.key = "set/visitors";
    Response members = clients[i]->Call(m);
    g.key = "lww/banner";
    Response banner = clients[i]->Call(g);
    std::printf("%-14s account/alice=%s counter/likes=%lld set/visitors=%zu members lww/banner=\"%s\"\n",
                regions[i].c_str(), strong.value.c_str(), static_cast<long long>(likes.number),
                members.values.size(), banner.value.c_str());
  }
  Request wrong;
  wrong.op = Op::kCas;
  wrong.key = "counter/likes";
  wrong.value = "0";
  Response w = clients[0]->Call(wrong);
  std::printf("\ncas on a counter key -> %s\n", w.status.ToString().c_str());
  if (w.status.code() != Code::kWrongMode) failures++;
  std::printf("%s\n", failures == 0 ? "demo: all checks passed" : "demo: some checks FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace geokv::tools
