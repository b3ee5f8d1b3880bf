#include "core/sim/engine_cluster.h"

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/engine/engine.h"
#include "core/engine/memory_storage.h"

namespace geokv::sim {

namespace {

// The simulator's Env: virtual time with drift, the simulated network, MemoryStorage.
class SimEnv final : public Env {
 public:
  SimEnv(Network& net, int id, double rate) : net_(net), id_(id), rate_(rate) {}
  int64_t NowUs() override { return static_cast<int64_t>(static_cast<double>(net_.Now()) * rate_); }
  int64_t WallUs() override { return NowUs(); }
  void Send(uint32_t to, std::string bytes) override { net_.Send(id_, static_cast<int>(to), std::move(bytes)); }
  storage::Storage& Store() override { return store_; }
  uint64_t Random() override { return net_.Rng()(); }
  storage::MemoryStorage& memory() { return store_; }
  double rate() const { return rate_; }

 private:
  Network& net_;
  const int id_;
  const double rate_;
  storage::MemoryStorage store_;
};

struct Node {
  std::unique_ptr<SimEnv> env;
  std::unique_ptr<Engine> engine;
  uint64_t incarnation = 0;  // bumps on crash so stale timers stop
};

class Cluster {
 public:
  explicit Cluster(const EngineSimOptions& o) : o_(o), net_(Network::Aws(o.seed, o.regions)) {
    result_.seed = o.seed;
    std::uniform_real_distribution<double> drift(1.0 - o.clock_drift_max, 1.0 + o.clock_drift_max);
    nodes_.resize(o.regions);
    for (int i = 0; i < o.regions; ++i) {
      nodes_[i].env = std::make_unique<SimEnv>(net_, i, drift(net_.Rng()));
      net_.Attach(i, [this, i](int from, std::string bytes) {
        if (nodes_[i].engine) nodes_[i].engine->Step(static_cast<uint32_t>(from), bytes);
      });
    }
    options_.regions = o.regions;
    options_.shards = o.shards;
    options_.compact_every_slots = o.compact_every_slots;
    options_.request_timeout_ms = 1500;
    options_.unsafe_skip_phase1_recovery = o.unsafe_skip_phase1_recovery;
    options_.policy = Policy(Mode::kStrong);
    (void)options_.policy.Set("c/", Mode::kCounter);
    (void)options_.policy.Set("set/", Mode::kSet);
    (void)options_.policy.Set("lww/", Mode::kLww);
    for (int s = 0; s < o.shards; ++s) options_.preferred_leader.push_back(s % o.regions);
  }

  EngineSimResult Run() {
    for (int i = 0; i < o_.regions; ++i) Start(i);
    if (o_.faults) {
      net_.SetFaults(Faults{0.03, 0.02, 20'000});
      ScheduleNemesis(300'000);
      net_.At(o_.fault_phase_us, [this] { Heal(); });
    }
    for (int c = 0; c < o_.clients; ++c) {
      clients_.push_back(Client{c, c % o_.regions, 0, 0, false});
      ScheduleClient(c, 100'000 + static_cast<Time>(net_.Rng()() % 200'000));
    }
    // A policy change mid-run: a new prefix becomes a counter everywhere.
    net_.At(o_.fault_phase_us / 2, [this] { SubmitPolicyChange(); });

    while (net_.Now() < o_.deadline_us && !(AllClientsDone() && net_.Now() > o_.fault_phase_us)) {
      if (!net_.Step()) break;
      if (!result_.ok) break;
    }
    if (result_.ok && !AllClientsDone()) {
      std::string why = "clients did not finish by the deadline;";
      for (const auto& c : clients_) {
        if (!c.finished) why += " client " + std::to_string(c.id) + " (region " + std::to_string(c.region) + ")";
      }
      if (!policy_done_) why += " policy change never acknowledged (last: " + policy_error_ + ");";
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (!nodes_[i].engine) continue;
        for (const auto& line : nodes_[i].engine->StatusLines()) why += "\n  [" + std::to_string(i) + "] " + line;
      }
      Fail(why);
    }
    if (result_.ok) {
      // Quiescence: everything healed and up; let replication settle.
      Heal();
      net_.RunUntil(net_.Now() + 15'000'000);
      CheckConvergence();
    }
    result_.trace_hash = net_.TraceHash();
    result_.end_us = net_.Now();
    for (auto& n : nodes_) {
      if (n.engine) result_.snapshots += n.engine->stats().snapshots;
    }
    // Keys spread over the shards: every shard that acknowledged a write has committed it.
    if (result_.ok && nodes_[0].engine) {
      std::set<uint32_t> shards;
      for (const auto& h : result_.history) {
        if (h.op != "get" && !h.unknown) shards.insert(nodes_[0].engine->ShardOf(h.key));
      }
      for (uint32_t s : shards) {
        if (nodes_[0].engine->replica(s).commit_index() == 0) Fail("shard " + std::to_string(s) + " acknowledged a write but committed nothing");
      }
      result_.shards_used = static_cast<int>(shards.size());
    }
    return result_;
  }

 private:
  struct Client {
    int id;
    int region;
    int done_ops;
    uint64_t token;  // identifies the outstanding operation
    bool finished;
  };

  void Fail(const std::string& why) {
    if (result_.ok) {
      result_.ok = false;
      result_.failure = why;
    }
  }

  void Start(int i) {
    Node& n = nodes_[i];
    auto engine = Engine::Open(options_with_self(i), *n.env);
    if (!engine.ok()) return Fail("node " + std::to_string(i) + " failed to open: " + engine.status().ToString());
    n.engine = std::move(engine).value();
    net_.SetUp(i, true);
    ScheduleTick(i, n.incarnation);
  }

  EngineOptions options_with_self(int i) const {
    EngineOptions e = options_;
    e.self = static_cast<uint32_t>(i);
    return e;
  }

  void ScheduleTick(int i, uint64_t incarnation) {
    const Time period = static_cast<Time>(static_cast<double>(options_.tick_us) / nodes_[i].env->rate());
    net_.At(net_.Now() + period, [this, i, incarnation] {
      Node& n = nodes_[i];
      if (!n.engine || n.incarnation != incarnation) return;
      n.engine->Tick();
      ScheduleTick(i, incarnation);
    });
  }

  void Crash(int i) {
    Node& n = nodes_[i];
    if (!n.engine) return;
    result_.crashes++;
    n.engine.reset();  // pending callbacks die with it: those clients time out
    n.incarnation++;
    n.env->memory().Crash();
    net_.SetUp(i, false);
  }

  void Heal() {
    net_.HealAll();
    net_.SetFaults(Faults{});
    for (int i = 0; i < o_.regions; ++i) {
      if (!nodes_[i].engine) Start(i);
    }
  }

  void ScheduleNemesis(Time after_us) {
    net_.At(net_.Now() + after_us, [this] {
      if (net_.Now() >= o_.fault_phase_us) return;
      auto& rng = net_.Rng();
      const int victim = static_cast<int>(rng() % o_.regions);
      switch (rng() % 6) {
        case 0:  // isolate a region
          for (int j = 0; j < o_.regions; ++j) {
            if (j != victim) { net_.Block(victim, j, true); net_.Block(j, victim, true); }
          }
          break;
        case 1: {  // asymmetric: the victim cannot send to one peer
          const int other = (victim + 1 + static_cast<int>(rng() % (o_.regions - 1))) % o_.regions;
          net_.Block(victim, other, true);
          break;
        }
        case 2:
          net_.HealAll();
          break;
        case 3:
          if (o_.crashes) {
            Crash(victim);
            const Time down = 300'000 + static_cast<Time>(rng() % 1'500'000);
            net_.At(net_.Now() + down, [this, victim] { if (!nodes_[victim].engine) Start(victim); });
          }
          break;
        default:
          break;  // a quiet period
      }
      ScheduleNemesis(200'000 + static_cast<Time>(rng() % 800'000));
    });
  }

  bool AllClientsDone() const {
    for (const auto& c : clients_) {
      if (!c.finished) return false;
    }
    return policy_done_;
  }

  void ScheduleClient(int c, Time after_us) {
    net_.At(net_.Now() + after_us, [this, c] { ClientStep(c); });
  }

  // Sends `req` from client c's region; `on_done` gets the response, or null when the
  // client's own timeout fires first (a crashed node never answers).
  void Call(int c, Request req, std::function<void(const Response*)> on_done) {
    Client& cl = clients_[c];
    const uint64_t token = ++cl.token;
    auto shared = std::make_shared<std::function<void(const Response*)>>(std::move(on_done));
    // `r` is null when the client's own timeout fires first.
    auto finish = [this, c, token, shared](const Response* r) {
      if (clients_[c].token != token) return;  // answered already
      clients_[c].token++;
      (*shared)(r);
    };
    net_.At(net_.Now() + o_.client_timeout_us, [finish] { finish(nullptr); });
    Node& n = nodes_[cl.region];
    if (!n.engine) return;  // the local node is down: the client times out
    n.engine->Submit(std::move(req), [finish](Response r) { finish(&r); });
  }

  void ClientStep(int c) {
    Client& cl = clients_[c];
    auto& rng = net_.Rng();
    if (cl.done_ops >= o_.ops_per_client && net_.Now() > o_.fault_phase_us) {
      // A final read of every strong key, after healing, pins the outcome of unknown writes.
      if (!final_reads_started_[c]) {
        final_reads_started_[c] = true;
        return FinalReads(c, 0);
      }
      return;
    }
    if (cl.done_ops >= o_.ops_per_client) return ScheduleClient(c, 500'000);  // wait for healing
    cl.done_ops++;
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 5) return StrongOp(c);
    return EventualOp(c, kind);
  }

  void FinalReads(int c, int key) {
    if (key >= o_.strong_keys) {
      clients_[c].finished = true;
      return;
    }
    StrongRead(c, "s/" + std::to_string(key), [this, c, key] { FinalReads(c, key + 1); }, /*retry=*/true);
  }

  void StrongRead(int c, const std::string& key, std::function<void()> next, bool retry) {
    Request req;
    req.op = Op::kGet;
    req.key = key;
    HistoryOp h;
    h.client = c;
    h.region = clients_[c].region;
    h.op = "get";
    h.key = key;
    h.call_us = net_.Now();
    Call(c, req, [this, c, key, h, next, retry](const Response* r) mutable {
      if (r && (r->status.ok() || r->status.IsNotFound())) {
        h.return_us = net_.Now();
        h.ok = true;
        int64_t v = 0;
        if (r->found) v = std::stoll(r->value);
        h.out = v;
        result_.history.push_back(h);
        result_.strong_ok++;
        return next();
      }
      if (retry) {  // failed reads have no effect; try again later
        return net_.At(net_.Now() + 300'000, [this, c, key, next, retry] { StrongRead(c, key, next, retry); });
      }
      next();
    });
  }

  void StrongOp(int c) {
    auto& rng = net_.Rng();
    const std::string key = "s/" + std::to_string(rng() % o_.strong_keys);
    auto next = [this, c] { ScheduleClient(c, static_cast<Time>(net_.Rng()() % 200'000)); };
    const int which = static_cast<int>(rng() % 4);
    if (which == 0) return StrongRead(c, key, next, false);
    Request req;
    req.key = key;
    HistoryOp h;
    h.client = c;
    h.region = clients_[c].region;
    h.key = key;
    if (which == 1) {
      req.op = Op::kPut;
      h.op = "put";
      h.value = 1 + static_cast<int64_t>(rng() % 100);  // never 0: absent reads as 0
      req.value = std::to_string(h.value);
    } else if (which == 2) {
      req.op = Op::kAdd;
      h.op = "add";
      h.value = 1 + static_cast<int64_t>(rng() % 5);
      req.delta = h.value;
    } else {
      req.op = Op::kCas;
      h.op = "cas";
      h.arg = static_cast<int64_t>(rng() % 4);  // 0 = expect absent
      h.value = 1 + static_cast<int64_t>(rng() % 100);
      req.has_expected = h.arg != 0;
      req.expected = std::to_string(h.arg);
      req.value = std::to_string(h.value);
    }
    h.call_us = net_.Now();
    Call(c, req, [this, h, next](const Response* r) mutable {
      if (r && (r->status.ok() || r->status.code() == Code::kConflict)) {
        h.return_us = net_.Now();
        h.ok = r->status.ok();
        h.out = r->number;
        result_.strong_ok++;
      } else if (r && (r->status.code() == Code::kUnavailable || r->status.code() == Code::kBusy)) {
        // Refused before it was proposed: it never takes effect, so it is not history.
        result_.strong_refused++;
        return next();
      } else {
        // No answer, or a failure whose outcome may still be a commit: unknown.
        h.unknown = true;
        h.return_us = 0;
        result_.strong_unknown++;
      }
      result_.history.push_back(h);
      next();
    });
  }

  void EventualOp(int c, int kind) {
    auto& rng = net_.Rng();
    auto next = [this, c] { ScheduleClient(c, static_cast<Time>(net_.Rng()() % 200'000)); };
    const std::string n = std::to_string(rng() % o_.eventual_keys);
    Request req;
    if (kind < 7) {  // counter increments (positive, so the acked sum is a lower bound)
      req.op = Op::kAdd;
      // A policy change takes effect in a region once that region has applied it; the
      // client writes under the new prefix only after its own region shows the new mode.
      Node& local = nodes_[clients_[c].region];
      const bool new_prefix_live = local.engine && local.engine->policy().Lookup("new/") == Mode::kCounter;
      req.key = new_prefix_live && rng() % 2 ? "new/" + n : "c/" + n;
      req.delta = 1 + static_cast<int64_t>(rng() % 9);
      const std::string key = req.key;
      const int64_t delta = req.delta;
      attempted_[key] += delta;
      return Call(c, req, [this, key, delta, next](const Response* r) {
        if (r && r->status.ok()) { acked_sum_[key] += delta; result_.eventual_ok++; }
        next();
      });
    }
    if (kind < 9) {  // set: add a fresh element, or remove one this client added and saw acked
      req.key = "set/" + n;
      auto& mine = my_elements_[{c, req.key}];
      if (!mine.empty() && rng() % 3 == 0) {
        req.op = Op::kSetRemove;
        req.value = *mine.begin();
        mine.erase(mine.begin());
        const std::string key = req.key, element = req.value;
        removing_[key].insert(element);
        return Call(c, req, [this, key, element, next](const Response* r) {
          if (r && r->status.ok()) { removed_[key].insert(element); result_.eventual_ok++; }
          next();
        });
      }
      req.op = Op::kSetAdd;
      req.value = "e" + std::to_string(c) + "." + std::to_string(clients_[c].done_ops);
      const std::string key = req.key, element = req.value;
      return Call(c, req, [this, c, key, element, next](const Response* r) {
        if (r && r->status.ok()) {
          added_[key].insert(element);
          my_elements_[{c, key}].insert(element);
          result_.eventual_ok++;
        }
        next();
      });
    }
    // A mode mismatch must fail with kWrongMode and change nothing.
    req.op = Op::kCas;
    req.key = "c/" + n;
    req.value = "1";
    return Call(c, req, [this, next](const Response* r) {
      if (r) {
        if (r->status.code() != Code::kWrongMode) Fail("cas on a counter key answered " + r->status.ToString());
        result_.wrong_mode_checked++;
      }
      next();
    });
  }

  void SubmitPolicyChange() {
    if (policy_done_) return;
    Request req;
    req.op = Op::kPolicySet;
    req.key = "new/";
    req.mode = Mode::kCounter;
    // Any region may take it: a follower forwards it to the metadata leader. A node that
    // crashes never answers, so the attempt also times out on the caller's side.
    const uint64_t token = ++policy_token_;
    auto retry = [this, token] {
      if (policy_token_ != token || policy_done_) return;
      policy_token_++;
      net_.At(net_.Now() + 500'000, [this] { SubmitPolicyChange(); });
    };
    net_.At(net_.Now() + o_.client_timeout_us, retry);
    const int region = static_cast<int>(net_.Rng()() % o_.regions);
    Node& n = nodes_[region];
    if (!n.engine) return retry();
    n.engine->Submit(req, [this, token, retry](Response r) {
      if (policy_token_ != token) return;
      if (r.status.ok()) {
        policy_done_ = true;
      } else {
        policy_error_ = r.status.ToString();
        retry();
      }
    });
  }

  void CheckConvergence() {
    std::vector<Engine*> engines;
    for (auto& n : nodes_) {
      if (!n.engine) return Fail("a node is down after healing");
      engines.push_back(n.engine.get());
    }
    // Eventual keys: identical encoded state everywhere.
    std::set<std::string> keys;
    for (auto* e : engines) {
      for (const auto& [k, v] : e->disseminator().states()) keys.insert(k);
    }
    for (const auto& k : keys) {
      const crdt::CrdtValue* first = engines[0]->disseminator().Get(k);
      for (size_t i = 1; i < engines.size(); ++i) {
        const crdt::CrdtValue* other = engines[i]->disseminator().Get(k);
        if (!first || !other || first->Encode() != other->Encode()) {
          return Fail("eventual key " + k + " differs between region 0 and region " + std::to_string(i));
        }
      }
    }
    // Counters: nothing acknowledged lost, nothing invented.
    for (const auto& [key, sum] : acked_sum_) {
      const crdt::CrdtValue* v = engines[0]->disseminator().Get(key);
      const auto* counter = v ? v->As<crdt::PnCounter>() : nullptr;
      const int64_t value = counter ? counter->Value() : 0;
      if (value < sum || value > attempted_[key]) {
        return Fail("counter " + key + " = " + std::to_string(value) + ", acknowledged " + std::to_string(sum) +
                    ", attempted " + std::to_string(attempted_[key]));
      }
    }
    // Sets: acknowledged adds that were never removed are present; acknowledged removals
    // of elements (each added once) never come back.
    for (const auto& [key, elements] : added_) {
      const crdt::CrdtValue* v = engines[0]->disseminator().Get(key);
      const auto* set = v ? v->As<crdt::OrSet>() : nullptr;
      for (const auto& e : elements) {
        const bool present = set && set->Contains(e);
        if (removed_[key].count(e) != 0 && present) return Fail("removed element " + e + " of " + key + " came back");
        if (removing_[key].count(e) == 0 && !present) return Fail("acknowledged element " + e + " of " + key + " lost");
      }
    }
    // Policy: the change reached every region.
    for (size_t i = 0; i < engines.size(); ++i) {
      if (policy_done_ && engines[i]->policy().Lookup("new/x") != Mode::kCounter) {
        return Fail("region " + std::to_string(i) + " did not learn the policy change");
      }
    }
    // Strong keys: every region applied the same value.
    for (int k = 0; k < o_.strong_keys; ++k) {
      const std::string key = "s/" + std::to_string(k);
      auto first = engines[0]->ReadStrongForTest(key);
      for (size_t i = 1; i < engines.size(); ++i) {
        auto other = engines[i]->ReadStrongForTest(key);
        if (first.ok() != other.ok() || (first.ok() && *first != *other)) {
          return Fail("strong key " + key + " differs between region 0 and region " + std::to_string(i));
        }
      }
    }
  }

  const EngineSimOptions o_;
  Network net_;
  EngineOptions options_;
  std::vector<Node> nodes_;
  std::vector<Client> clients_;
  std::map<int, bool> final_reads_started_;
  bool policy_done_ = false;
  std::string policy_error_;
  uint64_t policy_token_ = 0;
  std::map<std::string, int64_t> acked_sum_, attempted_;
  std::map<std::string, std::set<std::string>> added_, removed_, removing_;
  std::map<std::pair<int, std::string>, std::set<std::string>> my_elements_;
  EngineSimResult result_;
};

}  // namespace

EngineSimResult RunEngineSim(const EngineSimOptions& options) {
  Cluster cluster(options);
  return cluster.Run();
}

}  // namespace geokv::sim
