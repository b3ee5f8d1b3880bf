#include "core/sim/engine_cluster.h"

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/engine/engine.h"
#include "core/engine/memory_storage.h"

namespace geokv::sim {

namespace {

constexpr Time kNever = INT64_MAX;

// How long things take on a simulated machine: usually little, sometimes a lot (a heavy
// tail), as production shows (scheduling delays, page faults, a slow disk).
struct Costs {
  // Processing time of one round.
  static Time Round(std::mt19937_64& rng) {
    const uint64_t r = rng() % 10'000;
    if (r < 9'800) return 20 + static_cast<Time>(rng() % 200);
    if (r < 9'990) return 2'000 + static_cast<Time>(rng() % 30'000);
    return 100'000 + static_cast<Time>(rng() % 400'000);
  }
  // Time of one fsync.
  static Time Fsync(std::mt19937_64& rng) {
    const uint64_t r = rng() % 10'000;
    if (r < 9'700) return 100 + static_cast<Time>(rng() % 1'500);
    if (r < 9'980) return 10'000 + static_cast<Time>(rng() % 90'000);
    return 200'000 + static_cast<Time>(rng() % 800'000);
  }
};

// The simulator's Env: a monotonic clock and a wall clock per node (each with its own
// offset and drift: machines disagree by seconds), the simulated network, and MemoryStorage
// behind a layer that charges fsync time and injects storage errors. During a round the
// node's clocks advance by the processing and fsync time spent so far, and what it sends
// leaves that much later.
class SimEnv final : public Env, public storage::Storage {
 public:
  SimEnv(Network& net, int id, double rate, Time mono_offset_us, Time wall_offset_us)
      : net_(net), id_(id), rate_(rate), mono_offset_us_(mono_offset_us), wall_offset_us_(wall_offset_us) {}
  int64_t NowUs() override { return mono_offset_us_ + Local(net_.Now() + busy_us_); }
  int64_t WallUs() override { return kWallEpochUs + wall_offset_us_ + Local(net_.Now() + busy_us_); }
  void Send(uint32_t to, std::string bytes) override {
    net_.Send(id_, static_cast<int>(to), std::move(bytes), busy_us_);
  }
  // The simulated network reaches every node, spares included, from the start.
  void ConnectPeer(uint32_t, const std::string&, const std::string&) override {}
  storage::Storage& Store() override { return *this; }
  uint64_t Random() override { return net_.Rng()(); }

  // storage::Storage, over MemoryStorage.
  Status Write(const storage::WriteBatch& batch, storage::Durability durability) override {
    if (fail_writes_ > 0) {
      --fail_writes_;
      injected_errors_++;
      return Status(Code::kIOError, "WT_ERROR: No space left on device (injected)");
    }
    if (durability == storage::Durability::kSync) busy_us_ += Costs::Fsync(net_.Rng());
    return store_->Write(batch, durability);
  }
  StatusOr<std::string> Get(std::string_view table, std::string_view key) override { return store_->Get(table, key); }
  StatusOr<std::vector<storage::Entry>> Scan(std::string_view table, std::string_view prefix, std::string_view after,
                                             size_t limit) override {
    return store_->Scan(table, prefix, after, limit);
  }
  Status Close() override { return store_->Close(); }

  // A round starts: it costs a sampled processing time on top of what it syncs.
  void BeginRound() { busy_us_ = Costs::Round(net_.Rng()); }
  Time EndRound() { return std::exchange(busy_us_, 0); }
  // The global time at which the local monotonic clock reads `local_us`.
  Time GlobalAt(int64_t local_us) const {
    return static_cast<Time>(static_cast<double>(local_us - mono_offset_us_) / rate_) + 1;
  }
  void FailNextWrites(int n) { fail_writes_ = n; }
  // The disk is replaced by an empty one (call while the node is down).
  void Wipe() { store_ = std::make_unique<storage::MemoryStorage>(); }
  uint64_t injected_errors() const { return injected_errors_; }
  storage::MemoryStorage& memory() { return *store_; }
  double rate() const { return rate_; }

 private:
  static constexpr int64_t kWallEpochUs = 1'800'000'000'000'000;  // 2027, as good as any
  int64_t Local(Time global) const { return static_cast<int64_t>(static_cast<double>(global) * rate_); }

  Network& net_;
  const int id_;
  const double rate_;             // drift of both clocks (one oscillator)
  const Time mono_offset_us_;     // boot time differs per machine
  const Time wall_offset_us_;     // wall clocks disagree by seconds
  std::unique_ptr<storage::MemoryStorage> store_ = std::make_unique<storage::MemoryStorage>();
  Time busy_us_ = 0;
  int fail_writes_ = 0;
  uint64_t injected_errors_ = 0;
};

struct Node {
  std::unique_ptr<SimEnv> env;
  std::unique_ptr<Engine> engine;
  uint64_t incarnation = 0;  // bumps on crash so stale wake-ups stop
  Engine::RoundInputs inbox;  // inputs waiting for the next round (held while paused)
  Time next_wake = kNever;    // the earliest wake-up scheduled
  Time busy_until = 0;        // processing the last round until then
  Time paused_until = 0;      // SIGSTOP: no round runs before then
  bool resuming = false;      // the next round is the first after a pause
};

// A Paxos membership bit set as replica ids: "[0,2,4]".
std::string Ids(uint64_t mask) {
  std::string s;
  for (uint32_t id = 0; id < 64; ++id) {
    if ((mask >> id) & 1) s += (s.empty() ? "" : ",") + std::to_string(id);
  }
  return "[" + s + "]";
}

class Cluster {
 public:
  explicit Cluster(const EngineSimOptions& o)
      : o_(o),
        nodes_count_(o.regions * o.nodes_per_region),
        net_(Network::Aws(o.seed, o.regions, o.nodes_per_region + (o.grow ? 2 : 0))) {
    result_.seed = o.seed;
    std::uniform_real_distribution<double> drift(1.0 - o.clock_drift_max, 1.0 + o.clock_drift_max);
    net_.SetRedelivery(true);  // as ZeroMQ: queued messages reach the next incarnation
    nodes_.resize(net_.size());
    for (int i = 0; i < net_.size(); ++i) {
      const double rate = drift(net_.Rng());
      const Time boot = static_cast<Time>(net_.Rng()() % 1'000'000'000'000);
      const Time wall = o.wall_clock_offset_max_us > 0
                            ? static_cast<Time>(net_.Rng()() % (2 * o.wall_clock_offset_max_us + 1)) - o.wall_clock_offset_max_us
                            : 0;
      nodes_[i].env = std::make_unique<SimEnv>(net_, i, rate, boot, wall);
      net_.Attach(i, [this, i](int from, std::string bytes) {
        Node& n = nodes_[i];
        if (!n.engine) return;
        n.inbox.messages.push_back(Engine::PeerMessage{static_cast<uint32_t>(from), std::move(bytes)});
        Wake(i, net_.Now());
      });
    }
    options_.regions = o.regions;
    if (o.nodes_per_region > 1 || o.grow) {
      for (int i = 0; i < net_.size(); ++i) {
        const auto region = static_cast<uint32_t>(i % o.regions);
        options_.members.push_back({region, net_.region(i), "node-" + std::to_string(i), "node-" + std::to_string(i),
                                    /*added=*/i >= nodes_count_});
      }
    }
    for (int i = 0; i < nodes_count_; ++i) members_.push_back(i);
    options_.shards = o.shards;
    options_.compact_every_slots = o.compact_every_slots;
    options_.request_timeout_ms = 1500;
    options_.unsafe_skip_phase1_recovery = o.unsafe_skip_phase1_recovery;
    options_.unsafe_lease_cached_time = o.unsafe_lease_cached_time;
    options_.unsafe_forward_ids_restart = o.unsafe_forward_ids_restart;
    options_.unsafe_ignore_storage_errors = o.unsafe_ignore_storage_errors;
    options_.unsafe_trust_any_disk = o.unsafe_trust_any_disk;
    options_.unsafe_apply_first_of_shared_slot = o.unsafe_apply_first_of_shared_slot;
    options_.unsafe_finish_move_unsettled = o.unsafe_finish_move_unsettled;
    options_.unsafe_no_member_repair = o.unsafe_no_member_repair;
    options_.unsafe_release_unshipped = o.unsafe_release_unshipped;
    options_.policy = Policy(Mode::kStrong);
    (void)options_.policy.Set("c/", Mode::kCounter);
    (void)options_.policy.Set("set/", Mode::kSet);
    (void)options_.policy.Set("lww/", Mode::kLww);
    for (int s = 0; s < o.shards; ++s) options_.preferred_leader.push_back(s % o.regions);
  }

  EngineSimResult Run() {
    for (int i = 0; i < nodes_count_; ++i) Start(i);
    if (o_.grow) PlanGrowth();
    if (o_.faults) {
      net_.SetFaults(Faults{0.03, 0.02, 20'000});
      ScheduleNemesis(300'000);
      net_.At(o_.fault_phase_us, [this] { Heal(); });
    }
    for (int c = 0; c < o_.clients; ++c) {
      clients_.push_back(Client{c, c % o_.regions, c % nodes_count_, 0, 0, false});
      ScheduleClient(c, 100'000 + static_cast<Time>(net_.Rng()() % 200'000));
    }
    if (o_.bulk_writes > 0) net_.At(200'000, [this] { BulkStep(); });
    // Operators at work mid-run, each step retried until acknowledged and started once the
    // one before it is: a node drained (its leaderships move away), a policy change (a new
    // prefix becomes a counter everywhere), the node back up.
    int drained = static_cast<int>(net_.Rng()() % nodes_count_);
    if (o_.grow && drained == Dead()) drained = (drained + 1) % nodes_count_;  // the node that dies is not undrained
    Request drain;
    drain.op = Op::kNodeState;
    drain.key = std::to_string(drained);
    drain.value = "draining";
    Request policy;
    policy.op = Op::kPolicySet;
    policy.key = "new/";
    policy.mode = Mode::kCounter;
    Request undrain = drain;
    undrain.value = "up";
    admin_.push_back(Admin{drain, o_.fault_phase_us / 4});
    admin_.push_back(Admin{policy, o_.fault_phase_us / 2});
    admin_.push_back(Admin{undrain, o_.fault_phase_us * 3 / 4});
    if (o_.grow) PlanReplacement();
    net_.At(admin_[0].at_us, [this] { SubmitAdmin(0); });

    while (net_.Now() < o_.deadline_us && !(AllClientsDone() && net_.Now() > o_.fault_phase_us)) {
      if (!net_.Step()) break;
      if (!result_.ok) break;
    }
    if (result_.ok && !AllClientsDone()) {
      std::string why = "clients did not finish by the deadline;";
      for (const auto& c : clients_) {
        if (!c.finished) why += " client " + std::to_string(c.id) + " (region " + std::to_string(c.region) + ")";
      }
      for (const auto& a : admin_) {
        if (!a.done) why += " " + std::string(OpName(a.request.op)) + " " + a.request.key + " never acknowledged (last: " + a.error + ");";
      }
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
      // A drain attempt whose outcome was unknown may have committed after the undrain (as
      // a timed-out write may take effect late): the operator looks and says "up" once more.
      admin_.push_back(Admin{undrain, 0});
      SubmitAdmin(admin_.size() - 1);
      for (int s = 0; s < 30 && !admin_.back().done; ++s) net_.RunUntil(net_.Now() + 1'000'000);
      if (!admin_.back().done) Fail("the final undrain was never acknowledged (last: " + admin_.back().error + ")");
      // Heavy-tailed stalls go on after healing: a node busy for a second loses its lease,
      // and a new leader commits a few slots while the old one catches up. Convergence is
      // checked once a (virtual) second until it holds, for at most 45 s more.
      std::string problem = ConvergenceProblem();
      for (int s = 0; !problem.empty() && s < 45; ++s) {
        net_.RunUntil(net_.Now() + 1'000'000);
        problem = ConvergenceProblem();
      }
      if (!problem.empty()) Fail(problem);
    }
    result_.trace_hash = net_.TraceHash();
    result_.end_us = net_.Now();
    for (auto& n : nodes_) {
      if (n.engine) {
        result_.foreign_disk_messages += n.engine->stats().foreign_disk_messages;
        result_.snapshots += n.engine->stats().snapshots;
        result_.reforwards += n.engine->stats().reforwards;
        result_.leader_handoffs += n.engine->stats().leader_handoffs;
        result_.verdicts += n.engine->stats().verdicts_proposed;
        result_.leaders_planned += n.engine->stats().leaders_planned;
        result_.member_changes += n.engine->stats().member_changes;
        result_.replicas_moved += n.engine->stats().replicas_closed;
      }
    }
    // The metadata voter that died was replaced: the leader's group no longer counts it.
    if (o_.grow && dead_ == 0 && result_.ok) {
      for (auto& n : nodes_) {
        const uint32_t meta = n.engine ? n.engine->groups() - 1 : 0;
        if (!n.engine || !n.engine->IsLeader(meta)) continue;
        if (n.engine->replica(meta).members().IsVoter(0)) {
          Fail("node 0 died and was removed, but still votes in the metadata group");
        } else {
          result_.metadata_voters_replaced++;
        }
        break;
      }
    }
    result_.member_changes += member_changes_;
    result_.nodes_added = nodes_added_;
    result_.nodes_removed = nodes_removed_;
    result_.replicas_moved += replicas_moved_;
    result_.reforwards += reforwards_;
    result_.leader_handoffs += leader_handoffs_;
    result_.verdicts += verdicts_;
    result_.leaders_planned += leaders_planned_;
    // Keys spread over the shards: every shard that acknowledged a write has committed it
    // (as a replica that kept its data directory sees it).
    int ref = 0;  // a node that runs and kept its data directory
    while (ref + 1 < static_cast<int>(nodes_.size()) && (ref == lost_ || !nodes_[ref].engine)) ref++;
    if (result_.ok && nodes_[ref].engine) {
      std::set<uint32_t> shards;
      for (const auto& h : result_.history) {
        if (h.op != "get" && !h.unknown) shards.insert(nodes_[ref].engine->ShardOf(h.key));
      }
      for (uint32_t s : shards) {
        const Engine* holder = nullptr;
        for (size_t i = 0; i < nodes_.size() && holder == nullptr; ++i) {
          if (static_cast<int>(i) != lost_ && nodes_[i].engine && nodes_[i].engine->Hosts(s)) holder = nodes_[i].engine.get();
        }
        if (holder != nullptr && holder->replica(s).commit_index() == 0) {
          Fail("shard " + std::to_string(s) + " acknowledged a write but committed nothing");
        }
      }
      result_.shards_used = static_cast<int>(shards.size());
    }
    return result_;
  }

 private:
  struct Client {
    int id;
    int region;
    int node;  // the node it talks to: its region's, or the next one's once that lost its disk
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
    n.env->BeginRound();
    auto engine = Engine::Open(options_with_self(i), *n.env);
    n.busy_until = net_.Now() + n.env->EndRound();
    if (!engine.ok()) {
      if (std::getenv("GEOKV_SIM_TRACE") != nullptr) {
        std::fprintf(stderr, "node %d open: %s\n", i, engine.status().ToString().c_str());
      }
      // Recovery met an injected storage error: the supervisor tries again.
      if (n.env->injected_errors() > 0) return Restart(i, 100'000);
      return Fail("node " + std::to_string(i) + " failed to open: " + engine.status().ToString());
    }
    n.engine = std::move(engine).value();
    n.next_wake = kNever;
    n.paused_until = 0;
    net_.SetUp(i, true);
    Wake(i, n.busy_until);
  }

  void Restart(int i, Time after_us) {
    const uint64_t incarnation = nodes_[i].incarnation;
    net_.At(net_.Now() + after_us, [this, i, incarnation] {
      if (!nodes_[i].engine && nodes_[i].incarnation == incarnation && i != dead_) Start(i);
    });
  }

  // Asks for a round of node i at global time `at` (or as soon after as it is free).
  void Wake(int i, Time at) {
    Node& n = nodes_[i];
    at = std::max({at, n.busy_until, n.paused_until, net_.Now()});
    if (at >= n.next_wake) return;
    n.next_wake = at;
    const uint64_t incarnation = n.incarnation;
    net_.At(at, [this, i, incarnation, at] {
      Node& m = nodes_[i];
      if (!m.engine || m.incarnation != incarnation || m.next_wake != at) return;  // superseded
      RunRound(i);
    });
  }

  // One round of node i: everything in its inbox, its timers when due. It takes a sampled
  // processing time (plus its fsyncs), during which the node is busy and its inputs queue.
  void RunRound(int i) {
    Node& n = nodes_[i];
    n.next_wake = kNever;
    if (net_.Now() < n.paused_until || net_.Now() < n.busy_until) return Wake(i, net_.Now());
    Engine::RoundInputs in = std::exchange(n.inbox, Engine::RoundInputs{});
    if (n.resuming) {
      // SIGCONT: the local client queue is read at once, while the peers' messages may
      // still sit in the kernel's or the peers' queues; often the clients come first.
      n.resuming = false;
      if (!in.messages.empty() && net_.Rng()() % 2 == 0) {
        n.inbox.messages = std::move(in.messages);
        in.messages.clear();
      }
    }
    n.env->BeginRound();
    n.engine->Round(std::move(in));
    n.busy_until = net_.Now() + n.env->EndRound();
    CutDepartingLinks(i);
    if (!n.engine->failure().ok()) {
      // Fail-stop: the process exits; its supervisor restarts it.
      result_.fail_stops++;
      if (std::getenv("GEOKV_SIM_TRACE") != nullptr) {
        std::fprintf(stderr, "node %d fail-stop: %s\n", i, n.engine->failure().ToString().c_str());
      }
      Crash(i);
      return Restart(i, 200'000 + static_cast<Time>(net_.Rng()() % 800'000));
    }
    const Time timer = n.env->GlobalAt(n.engine->NextTimerUs());
    Wake(i, n.inbox.messages.empty() ? std::max(n.busy_until, timer) : n.busy_until);
  }

  // departure_cuts: node i sees a replica of its own leave a shard (the move's removal of it
  // applied in the shard's group, or the map listing it departed) that it was not cut for
  // yet: its links to the nodes holding the shard's other replicas (the move's target
  // included) drop everything for kDepartureCutUs. Links already blocked (a partition) are
  // left to the nemesis.
  static constexpr Time kDepartureCutUs = 3'000'000;
  void CutDepartingLinks(int i) {
    if (!o_.departure_cuts || !o_.faults || (o_.nodes_per_region == 1 && !o_.grow)) return;
    const Engine& engine = *nodes_[i].engine;
    const placement::ClusterMap& map = engine.cluster_map();
    const auto self = static_cast<placement::NodeId>(i);
    for (uint32_t shard = 0; shard < map.shards().size(); ++shard) {
      const placement::ShardPlacement& s = map.shards()[shard];
      std::vector<uint32_t> leaving;  // replica ids of node i leaving the shard
      if (s.change && s.change->from == self && engine.Hosts(shard)) {
        const paxos::Replica& r = engine.replica(shard);
        if (!r.applied_members().IsMember(r.id())) leaving.push_back(r.id());
      }
      for (const placement::DepartedReplica& d : s.departed) {
        if (d.node == self) leaving.push_back(d.replica_id);
      }
      for (uint32_t id : leaving) {
        if (!departures_cut_.insert({shard, id}).second) continue;
        std::vector<placement::NodeId> holders = s.replicas;
        if (s.change) holders.push_back(s.change->to);
        std::vector<int> cut;
        for (placement::NodeId holder : holders) {
          const int h = static_cast<int>(holder);
          if (h == i || h >= static_cast<int>(nodes_.size()) || net_.IsBlocked(i, h)) continue;
          net_.Block(i, h, true);
          cut.push_back(h);
        }
        if (cut.empty()) continue;
        result_.departure_cuts++;
        net_.At(net_.Now() + kDepartureCutUs, [this, i, cut] {
          for (int h : cut) net_.Block(i, h, false);
        });
      }
    }
  }

  EngineOptions options_with_self(int i) const {
    EngineOptions e = options_;
    e.self = static_cast<uint32_t>(i);
    if (o_.grow) {
      // Each node's configuration as its operator wrote it: the cluster's creation lists
      // the genesis nodes; an added node's lists the nodes up to itself.
      e.members.resize(std::max(nodes_count_, i + 1));
      // Once a node died for good, the operator marks it gone in every configuration.
      if (dead_ >= 0) e.members[dead_].removed = true;
    }
    return e;
  }

  // grow: the operator adds one node per region (ids nodes_count_ .. + regions - 1, node
  // i in region i % regions), each started once its addition is acknowledged.
  void PlanGrowth() {
    for (int r = 0; r < o_.regions; ++r) {
      const int id = nodes_count_ + r;
      Admin add(AddRequest(id), o_.fault_phase_us / 8);
      add.after = [this, id] {
        members_.push_back(id);
        nodes_added_++;
        Start(id);
        // The clients of the region's first node turn to it.
        for (Client& c : clients_) {
          if (c.node == id % o_.regions) SwitchNode(c, id);
        }
      };
      admin_.push_back(std::move(add));
    }
  }

  // grow: a node of region 0 dies for good (its disk with it): the first added one, or for
  // even seeds the region's first node, its metadata voter. The operator marks it down,
  // adds a replacement on an empty disk in its region, and removes the dead node once the
  // map no longer places a replica on it and another node of the region has taken its
  // metadata vote (refused until then: retried).
  int Dead() const { return o_.seed % 2 == 0 ? 0 : nodes_count_; }
  int Spare() const { return nodes_count_ + o_.regions; }  // in region 0 too
  void PlanReplacement() {
    const int dead = Dead();
    const int spare = Spare();
    const int survivor = dead == 0 ? nodes_count_ : 0;  // region 0's other node
    Request down;
    down.op = Op::kNodeState;
    down.key = std::to_string(dead);
    down.value = "down";
    Admin kill(down, o_.fault_phase_us * 7 / 8);
    kill.before = [this, dead, survivor] {
      if (dead_ >= 0) return;
      dead_ = dead;
      Crash(dead);
      members_.erase(std::find(members_.begin(), members_.end(), dead));
      // What it acknowledged and had not shipped died with it: no longer owed.
      for (const auto& [key, sum] : acked_by_[dead]) at_risk_sum_[key] += sum;
      for (const auto& [key, elements] : added_by_[dead]) at_risk_elements_[key].insert(elements.begin(), elements.end());
      for (const auto& [key, elements] : removed_by_[dead]) {
        at_risk_removals_[key].insert(elements.begin(), elements.end());
      }
      for (Client& c : clients_) {
        if (c.node == dead) SwitchNode(c, survivor);
      }
      // A node still joining waits for every metadata voter's confirmation of its data
      // directory, the dead one's too: its operator restarts it on the new configuration.
      for (int m : members_) {
        if (nodes_[m].engine && !nodes_[m].engine->data_directory_confirmed()) {
          Crash(m);
          Restart(m, 100'000);
        }
      }
    };
    admin_.push_back(std::move(kill));
    Admin add(AddRequest(spare), 0);
    add.after = [this, spare] {
      members_.push_back(spare);
      nodes_added_++;
      Start(spare);
    };
    admin_.push_back(std::move(add));
    Request remove = down;
    remove.value = "removed";
    Admin gone(remove, 0);
    gone.after = [this] { nodes_removed_++; };
    admin_.push_back(std::move(gone));
  }

  // A client turns to another node. A set removal removes the adds its node has seen, and
  // the new node may not have seen the client's latest ones yet: the client removes only
  // elements it adds from now on.
  void SwitchNode(Client& c, int node) {
    c.node = node;
    for (auto it = my_elements_.begin(); it != my_elements_.end();) {
      it = it->first.first == c.id ? my_elements_.erase(it) : std::next(it);
    }
  }

  Request AddRequest(int id) const {
    Request r;
    r.op = Op::kNodeAdd;
    r.key = std::to_string(id);
    r.value = net_.region(id) + " node-" + std::to_string(id) + " node-" + std::to_string(id);
    return r;
  }

  // A node the nemesis may strike: one that runs in the cluster (every node, unless grow).
  int Victim(uint64_t draw) const {
    return o_.grow ? members_[draw % members_.size()] : static_cast<int>(draw % nodes_count_);
  }

  void Crash(int i) {
    Node& n = nodes_[i];
    if (!n.engine) return;
    reforwards_ += n.engine->stats().reforwards;
    leader_handoffs_ += n.engine->stats().leader_handoffs;
    verdicts_ += n.engine->stats().verdicts_proposed;
    leaders_planned_ += n.engine->stats().leaders_planned;
    member_changes_ += n.engine->stats().member_changes;
    replicas_moved_ += n.engine->stats().replicas_closed;
    result_.crashes++;
    n.engine.reset();  // pending callbacks die with it: those clients time out
    n.inbox = Engine::RoundInputs{};
    n.incarnation++;
    n.next_wake = kNever;
    // The journal pages that reached the disk before the crash: a random prefix.
    const size_t unsynced = n.env->memory().volatile_writes();
    n.env->memory().Crash(unsynced == 0 ? 0 : net_.Rng()() % (unsynced + 1));
    net_.SetUp(i, false);
  }

  void Heal() {
    net_.HealAll();
    net_.SetFaults(Faults{});
    for (int i : members_) {
      nodes_[i].env->FailNextWrites(0);
      if (!nodes_[i].engine) Start(i);
    }
  }

  void ScheduleNemesis(Time after_us) {
    net_.At(net_.Now() + after_us, [this] {
      if (net_.Now() >= o_.fault_phase_us) return;
      auto& rng = net_.Rng();
      int victim = Victim(rng());
      switch (rng() % 9) {
        case 0:  // isolate a node (with one node per region, its region)
          for (int j = 0; j < nodes_count_; ++j) {
            if (j != victim) { net_.Block(victim, j, true); net_.Block(j, victim, true); }
          }
          break;
        case 1: {  // asymmetric: the victim cannot send to one peer
          int other = o_.grow ? Victim(rng()) : (victim + 1 + static_cast<int>(rng() % (nodes_count_ - 1))) % nodes_count_;
          if (other == victim) break;
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
            Restart(victim, down);
          }
          break;
        case 4:
        case 5:
          if (o_.pauses && nodes_[victim].engine) {
            // Most often the leader of a shard: its lease is what a pause puts to the test.
            const uint32_t shard = static_cast<uint32_t>(rng() % o_.shards);
            const int32_t leader = nodes_[victim].engine->LeaderOf(shard);
            if (rng() % 3 != 0 && leader >= 0 && nodes_[leader].engine) victim = leader;
            // SIGSTOP, then SIGCONT: inputs queue meanwhile; often the leader of something.
            const Time pause = rng() % 10 < 7 ? 300'000 + static_cast<Time>(rng() % 2'700'000)
                                              : 3'000'000 + static_cast<Time>(rng() % 7'000'000);
            nodes_[victim].paused_until = std::max(nodes_[victim].paused_until, net_.Now() + pause);
            nodes_[victim].resuming = true;
            result_.pauses++;
          }
          break;
        case 6:
          if (o_.storage_errors && nodes_[victim].engine) {
            nodes_[victim].env->FailNextWrites(1 + static_cast<int>(rng() % 3));  // ENOSPC
          }
          break;
        case 7:
          if (o_.disk_loss && lost_ < 0 && o_.regions >= 3 && nodes_[victim].engine) {
            // The disk dies with the process; the machine comes back with an empty one.
            Crash(victim);
            nodes_[victim].env->Wipe();
            lost_ = victim;
            // What it acknowledged (eventual writes are durable where acknowledged) and had
            // not shipped is gone with the disk: no longer owed.
            for (const auto& [key, sum] : acked_by_[victim]) at_risk_sum_[key] += sum;
            for (const auto& [key, elements] : added_by_[victim]) {
              at_risk_elements_[key].insert(elements.begin(), elements.end());
            }
            result_.disks_lost++;
            Restart(victim, 300'000 + static_cast<Time>(rng() % 1'500'000));
          }
          break;
        default:
          break;  // a quiet period
      }
      ScheduleNemesis(200'000 + static_cast<Time>(rng() % 800'000));
    });
  }

  // The answer being handled was served by a node whose data died since (the node that dies
  // for good, or the one that lost its disk): its reply was on its way when it went, so
  // what it acknowledged and had not shipped is no longer owed (as for its earlier acks).
  bool ServedByAGoneNode() const { return answered_by_ >= 0 && (answered_by_ == dead_ || answered_by_ == lost_); }

  bool AllClientsDone() const {
    for (const auto& c : clients_) {
      if (!c.finished) return false;
    }
    for (const auto& a : admin_) {
      if (!a.done) return false;
    }
    return bulk_done_ >= o_.bulk_writes;
  }

  // The value of bulk write n of key k: its identity at both ends, filler between, so that
  // truncation or a mix-up of two values is visible.
  static std::string BulkValue(int k, int n, size_t bytes) {
    std::string head = "b" + std::to_string(k) + "." + std::to_string(n) + "|";
    std::string v = head;
    v.resize(bytes > head.size() * 2 ? bytes - head.size() : head.size(), static_cast<char>('a' + (n % 26)));
    v += head;
    return v;
  }

  void BulkStep() {
    if (bulk_done_ >= o_.bulk_writes) return;
    const int n = bulk_done_;
    const int k = n % o_.bulk_keys;
    const bool at_limit = n % 10 == 9;
    const bool past_limit = n == o_.bulk_writes / 2;
    Request req;
    req.op = Op::kPut;
    req.key = "b/" + std::to_string(k);
    const size_t limit = options_.limits.value_bytes_max;
    req.value = past_limit ? std::string(limit + 1, 'x') : BulkValue(k, n, at_limit ? limit : o_.bulk_value_bytes);
    const uint64_t token = ++bulk_token_;
    auto retry_later = [this, token] {
      if (bulk_token_ != token) return;
      bulk_token_++;
      net_.At(net_.Now() + 300'000, [this] { BulkStep(); });
    };
    net_.At(net_.Now() + o_.client_timeout_us, retry_later);
    Submit(n % nodes_count_, req, [this, token, k, n, past_limit, retry_later, bytes = req.value.size()](Response r) {
      if (bulk_token_ != token) return;
      if (past_limit) {
        if (r.status.code() != Code::kValueTooLarge) Fail("a value one byte past the limit was answered " + r.status.ToString());
      } else if (r.status.ok()) {
        bulk_last_[k] = n;
        result_.bulk_ok++;
        result_.bulk_bytes += bytes;
      } else if (r.status.code() == Code::kTimeout) {
        bulk_unknown_[k].insert(n);  // may still have been applied
      } else if (r.status.code() != Code::kUnavailable && r.status.code() != Code::kBusy) {
        Fail("bulk write " + std::to_string(n) + " failed: " + r.status.ToString());
      } else {
        return retry_later();  // refused before it took effect: the same write again
      }
      bulk_token_++;
      bulk_done_++;
      net_.At(net_.Now() + 1'000, [this] { BulkStep(); });
    });
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
    Attempt(c, token, std::move(req), finish);
  }

  // One attempt of client c's call `token`. A node whose new data directory is not yet
  // confirmed by every peer says "retry in a moment": the client does, within its timeout.
  void Attempt(int c, uint64_t token, Request req, std::function<void(const Response*)> finish) {
    const int node = clients_[c].node;
    const uint64_t life = lost_ == node ? 1 : 0;  // asked after the node lost its directory
    Request copy = req;
    Submit(node, std::move(req), [this, c, token, node, life, copy, finish](Response r) {
      if (life == 1 && r.status.ok() && lost_ack_.empty()) {
        lost_ack_ = std::string(OpName(copy.op)) + " " + copy.key + " at " + std::to_string(net_.Now()) + " us";
      }
      // An eventual write is durable where it was served: the client's node, or the node
      // it proxied it to.
      answered_by_ = r.served_by != kNoRedirect ? static_cast<int>(r.served_by) : node;
      if (r.status.code() == Code::kUnavailable) {
        if (r.status.message().find("data directory is not the one its peers know") != std::string::npos) {
          clients_[c].node = (node + 1) % nodes_count_;  // the operator points its clients elsewhere
        } else if (r.status.message().find("not every other node has confirmed it") != std::string::npos) {
          net_.At(net_.Now() + 100'000, [this, c, token, copy, finish] {
            if (clients_[c].token == token) Attempt(c, token, copy, finish);
          });
          return;
        }
      }
      finish(&r);
    });
  }

  // Hands a request to node i's next round (dropped when the node is down: the caller's own
  // timeout fires).
  void Submit(int i, Request req, Engine::Callback done) {
    Node& n = nodes_[i];
    if (!n.engine) return;
    n.inbox.calls.push_back(Engine::Call{std::move(req), std::move(done)});
    Wake(i, net_.Now());
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
      // A policy change takes effect on a node once that node has applied it; the client
      // writes under the new prefix only after the node it talks to shows the new mode.
      Node& local = nodes_[clients_[c].node];
      const bool new_prefix_live = local.engine && local.engine->policy().Lookup("new/") == Mode::kCounter;
      req.key = new_prefix_live && rng() % 2 ? "new/" + n : "c/" + n;
      req.delta = 1 + static_cast<int64_t>(rng() % 9);
      const std::string key = req.key;
      const int64_t delta = req.delta;
      attempted_[key] += delta;
      return Call(c, req, [this, key, delta, next](const Response* r) {
        if (r && r->status.ok()) {
          acked_sum_[key] += delta;
          acked_by_[answered_by_][key] += delta;
          if (ServedByAGoneNode()) at_risk_sum_[key] += delta;
          result_.eventual_ok++;
        }
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
          if (r && r->status.ok()) {
            removed_[key].insert(element);
            removed_by_[answered_by_][key].insert(element);
            if (ServedByAGoneNode()) at_risk_removals_[key].insert(element);
            // An observed-remove removes what the replica serving it has seen: served by
            // another replica than the add (the client's region's holder was down, or the
            // shard moved), it may precede the add's arrival there, and the add wins.
            if (added_at_[key + "/" + element] != answered_by_) at_risk_removals_[key].insert(element);
            result_.eventual_ok++;
          }
          next();
        });
      }
      req.op = Op::kSetAdd;
      req.value = "e" + std::to_string(c) + "." + std::to_string(clients_[c].done_ops);
      const std::string key = req.key, element = req.value;
      return Call(c, req, [this, c, key, element, next](const Response* r) {
        if (r && r->status.ok()) {
          added_at_[key + "/" + element] = answered_by_;
          added_[key].insert(element);
          added_by_[answered_by_][key].insert(element);
          if (ServedByAGoneNode()) at_risk_elements_[key].insert(element);
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
      // (A node whose new data directory no peer has confirmed yet refuses everything with
      // kUnavailable, and one that is fail-stopping on a storage error answers kIOError:
      // neither changes anything either.)
      if (r && r->status.code() != Code::kUnavailable && r->status.code() != Code::kIOError) {
        if (r->status.code() != Code::kWrongMode) Fail("cas on a counter key answered " + r->status.ToString());
        result_.wrong_mode_checked++;
      }
      next();
    });
  }

  // Admin step i (a metadata change: both are idempotent, so a retry of one that took effect
  // is acknowledged too), then the next one at its time.
  void SubmitAdmin(size_t i) {
    Admin& a = admin_[i];
    if (a.done) return;
    if (a.before) std::exchange(a.before, nullptr)();
    // Any region may take it: a follower forwards it to the metadata leader. A node that
    // crashes never answers, so the attempt also times out on the caller's side.
    const uint64_t token = ++a.token;
    auto retry = [this, i, token] {
      Admin& a = admin_[i];
      if (a.token != token || a.done) return;
      a.token++;
      net_.At(net_.Now() + 500'000, [this, i] { SubmitAdmin(i); });
    };
    net_.At(net_.Now() + o_.client_timeout_us, retry);
    const int node = static_cast<int>(net_.Rng()() % nodes_count_);
    if (!nodes_[node].engine) return retry();
    Submit(node, a.request, [this, i, token, retry](Response r) {
      Admin& a = admin_[i];
      if (a.token != token) return;
      if (r.status.ok()) {
        a.done = true;
        if (a.request.op == Op::kPolicySet) policy_done_ = true;
        if (a.after) std::exchange(a.after, nullptr)();
        if (i + 1 < admin_.size()) net_.At(std::max(net_.Now(), admin_[i + 1].at_us), [this, i] { SubmitAdmin(i + 1); });
      } else {
        a.error = r.status.ToString();
        retry();
      }
    });
  }

  // Eventual keys, counters and sets on `engines` (running in regions `region_of`): what
  // keeps them from having converged without loss, or "".
  std::string EventualProblem(const std::vector<Engine*>& engines, const std::vector<int>& region_of) {
    // Eventual keys: each shard served in every region (its CRDT replica there joined), by
    // the node the map places it on, with identical encoded states on every replica.
    const placement::ClusterMap& map = engines[0]->cluster_map();
    std::vector<std::vector<size_t>> serving(map.shards().size());  // per shard: indexes into engines
    for (uint32_t g = 0; g < map.shards().size(); ++g) {
      for (size_t i = 0; i < engines.size(); ++i) {
        if (engines[i]->EventualReplica(g) != nullptr) serving[g].push_back(i);
      }
      if (serving[g].size() != map.regions().size()) {
        return "shard " + std::to_string(g) + "'s eventual keys are served by " + std::to_string(serving[g].size()) +
               " nodes, not one per region";
      }
      for (const placement::DepartedReplica& d : map.shards()[g].departed) {
        for (size_t i = 0; i < engines.size(); ++i) {
          if (static_cast<uint32_t>(region_of[i]) == d.node) {
            return "shard " + std::to_string(g) + " still lists departed replica " + std::to_string(d.replica_id) +
                   " of running node " + std::to_string(d.node) + " after healing";
          }
        }
      }
    }
    for (uint32_t g = 0; g < map.shards().size(); ++g) {
      std::set<std::string> keys;
      for (size_t i : serving[g]) {
        for (const auto& [k, v] : engines[i]->EventualReplica(g)->states()) keys.insert(k);
      }
      const size_t a = serving[g][0];
      for (const auto& k : keys) {
        const crdt::CrdtValue* first = engines[a]->EventualReplica(g)->Get(k);
        for (size_t i : serving[g]) {
          const crdt::CrdtValue* other = engines[i]->EventualReplica(g)->Get(k);
          if (!first || !other || first->Encode() != other->Encode()) {
            return std::string("eventual key " + k + " differs between node " + std::to_string(region_of[a]) + " and node " +
                               std::to_string(region_of[i]));
          }
        }
      }
    }
    // An eventual key's state, as the first node serving its shard holds it.
    auto value_of = [&](const std::string& key) -> const crdt::CrdtValue* {
      for (auto* e : engines) {
        if (const crdt::CrdtValue* v = e->EventualValue(key)) return v;
      }
      return nullptr;
    };
    // Counters: nothing acknowledged lost, nothing invented.
    for (const auto& [key, sum] : acked_sum_) {
      const crdt::CrdtValue* v = value_of(key);
      const auto* counter = v ? v->As<crdt::PnCounter>() : nullptr;
      const int64_t value = counter ? counter->Value() : 0;
      if (value < sum - at_risk_sum_[key] || value > attempted_[key]) {
        return std::string("counter " + key + " = " + std::to_string(value) + ", acknowledged " + std::to_string(sum) +
                    " (of which " + std::to_string(at_risk_sum_[key]) + " by a node that lost its disk since), attempted " +
                    std::to_string(attempted_[key]));
      }
    }
    // Sets: acknowledged adds that were never removed are present; acknowledged removals
    // of elements (each added once) never come back.
    for (const auto& [key, elements] : added_) {
      const crdt::CrdtValue* v = value_of(key);
      const auto* set = v ? v->As<crdt::OrSet>() : nullptr;
      for (const auto& e : elements) {
        const bool present = set && set->Contains(e);
        if (removed_[key].count(e) != 0 && present && at_risk_removals_[key].count(e) == 0) {
          std::string by;
          for (const auto& [node, m] : removed_by_) {
            if (m.count(key) && m.at(key).count(e)) by += " " + std::to_string(node);
          }
          std::string where;
          for (size_t i = 0; i < engines.size(); ++i) {
            const crdt::CrdtValue* w = engines[i]->EventualValue(key);
            const auto* ws = w ? w->As<crdt::OrSet>() : nullptr;
            where += " " + std::to_string(region_of[i]) + (ws && ws->Contains(e) ? "+" : "-");
          }
          return std::string("removed element " + e + " of " + key + " came back (removal acknowledged by node" + by +
                             "; present:" + where + ")");
        }
        if (removing_[key].count(e) == 0 && !present && at_risk_elements_[key].count(e) == 0) {
          return std::string("acknowledged element " + e + " of " + key + " lost");
        }
      }
    }
    return {};
  }

  // What keeps the cluster from having converged, or "" once it has.
  std::string ConvergenceProblem() {
    std::vector<Engine*> engines;
    std::vector<int> region_of;  // engines[k] runs in region region_of[k]
    for (int i : members_) {
      const Node& n = nodes_[i];
      if (!n.engine) return "node " + std::to_string(i) + " is down after healing";
      // A node that lost its data directory is out of the cluster, and knows it, and has
      // acknowledged nothing since: unless no peer had recorded its earlier directory (that
      // life never took part), and then it is a node like the others.
      if (i == lost_ && n.engine->data_directory_lost()) {
        rejected_ = true;
        if (!lost_ack_.empty()) {
          return "node " + std::to_string(i) + " acknowledged a client operation after it lost its data directory (" +
                 lost_ack_ + ")";
        }
        continue;
      }
      engines.push_back(n.engine.get());
      region_of.push_back(static_cast<int>(i));
    }
    // The engines holding a replica of a strong key's shard (every node, with one node per
    // region), and the nodes they run on.
    auto holders = [&](const std::string& key, std::vector<Engine*>* held, std::vector<int>* node_of) {
      held->clear();
      node_of->clear();
      for (size_t i = 0; i < engines.size(); ++i) {
        if (!engines[i]->Hosts(engines[i]->ShardOf(key))) continue;
        held->push_back(engines[i]);
        node_of->push_back(region_of[i]);
      }
    };
    std::vector<Engine*> held;
    std::vector<int> held_node;
    // Bulk keys: the same intact value everywhere, the last acknowledged write or a later
    // one whose outcome was unknown.
    for (const auto& [k, last] : bulk_last_) {
      const std::string key = "b/" + std::to_string(k);
      holders(key, &held, &held_node);
      if (held.empty()) return "no running node holds bulk key " + key;
      auto first = held[0]->ReadStrongForTest(key);
      if (!first.ok()) return std::string("bulk key " + key + " lost");
      int found = -1;
      for (int n = last; n < o_.bulk_writes && found < 0; ++n) {
        if ((n == last || bulk_unknown_[k].count(n)) && n % o_.bulk_keys == k) {
          const size_t bytes = n % 10 == 9 ? options_.limits.value_bytes_max : o_.bulk_value_bytes;
          if (*first == BulkValue(k, n, bytes)) found = n;
        }
      }
      if (found < 0) return std::string("bulk key " + key + " holds neither its last acknowledged value nor a later attempt");
      for (size_t i = 1; i < held.size(); ++i) {
        auto other = held[i]->ReadStrongForTest(key);
        if (!other.ok() || *other != *first) return std::string("bulk key " + key + " differs between node " + std::to_string(held_node[0]) + " and node " + std::to_string(held_node[i]));
      }
    }
    // With a rejected node, the eventual checks below do not hold yet, and are skipped: what
    // it acknowledged and had not shipped is lost with its disk (eventual writes are durable
    // where they were acknowledged), and the batches it shipped to some regions only are
    // never relayed to the others, so they disagree (docs/operations.md, "A lost data
    // directory"). Strong keys, the map and the policy are checked.
    if (!rejected_) {
      if (std::string problem = EventualProblem(engines, region_of); !problem.empty()) return problem;
    }
    // Policy: the change reached every region.
    for (size_t i = 0; i < engines.size(); ++i) {
      if (policy_done_ && engines[i]->policy().Lookup("new/x") != Mode::kCounter) {
        return std::string("region " + std::to_string(region_of[i]) + " did not learn the policy change");
      }
    }
    // The cluster map: the same everywhere, and every node (all running now, the drained one
    // back) up in it: the failure detector's verdicts came back.
    for (size_t i = 0; i < engines.size(); ++i) {
      if (!(engines[i]->cluster_map() == engines[0]->cluster_map())) {
        return "the cluster map differs between region " + std::to_string(region_of[0]) + " (version " + std::to_string(engines[0]->cluster_map().version()) +
               ") and region " + std::to_string(region_of[i]) + " (version " + std::to_string(engines[i]->cluster_map().version()) + ")";
      }
      for (const auto& [id, node] : engines[i]->cluster_map().nodes()) {
        const bool gone = static_cast<int>(id) == dead_ && node.state == placement::NodeState::kRemoved;
        if (node.state != placement::NodeState::kUp && static_cast<int>(id) != lost_ && !gone) {
          return "region " + std::to_string(region_of[i]) + "'s map has node " + std::to_string(id) + " " +
                 std::string(placement::NodeStateName(node.state)) + " after healing";
        }
      }
    }
    // Each node's running count of its shards' bytes (what it reports) matches its data,
    // through crashes, replays and snapshots.
    for (size_t i = 0; i < engines.size(); ++i) {
      if (Status s = engines[i]->CheckShardBytes(); !s.ok()) return "region " + std::to_string(region_of[i]) + ": " + s.ToString();
    }
    // Strong keys: every replica of the key's shard applied the same value.
    for (int k = 0; k < o_.strong_keys; ++k) {
      const std::string key = "s/" + std::to_string(k);
      holders(key, &held, &held_node);
      if (held.empty()) return "no running node holds strong key " + key;
      auto first = held[0]->ReadStrongForTest(key);
      for (size_t i = 1; i < held.size(); ++i) {
        auto other = held[i]->ReadStrongForTest(key);
        if (first.ok() != other.ok() || (first.ok() && *first != *other)) {
          // Each replica's value and its view of the shard: a replica that lags (lower commit)
          // is slow convergence; equal commit indexes with different values would be divergence.
          const uint32_t g = held[0]->ShardOf(key);
          std::string why = "strong key " + key + " differs between node " + std::to_string(held_node[0]) + " and node " + std::to_string(held_node[i]) + ":";
          for (size_t j = 0; j < held.size(); ++j) {
            auto v = held[j]->ReadStrongForTest(key);
            const auto& r = held[j]->replica(g);
            const Node& n = nodes_[held_node[j]];
            why += "\n  [" + std::to_string(held_node[j]) + "] " + (v.ok() ? *v : std::string("(absent)")) + "; leader=" +
                   std::to_string(held[j]->LeaderOf(g)) + " commit=" + std::to_string(r.commit_index()) + " applied=" +
                   std::to_string(r.applied_index()) + " promised=" + std::to_string(r.promised().round) + "." +
                   std::to_string(r.promised().node) + " replica=" + std::to_string(r.id()) + " voters=" +
                   Ids(r.members().voters) + " learners=" + Ids(r.members().learners) + "; node busy for " +
                   std::to_string(std::max<Time>(0, n.busy_until - net_.Now())) + " us, " +
                   std::to_string(n.inbox.messages.size()) + " messages queued";
          }
          // The shard's placement (node/replica id per region) in the first holder's map.
          const placement::ShardPlacement& sp = held[0]->cluster_map().shards()[g];
          why += "\n  map: shard " + std::to_string(g) + " placed on";
          for (size_t r = 0; r < sp.replicas.size(); ++r) {
            why += " " + std::to_string(sp.replicas[r]) + "/" + std::to_string(sp.replica_ids[r]);
          }
          if (sp.change) {
            why += ", moving in region " + std::to_string(sp.change->region) + ": node " + std::to_string(sp.change->from) +
                   " -> " + std::to_string(sp.change->to) + " (replica " + std::to_string(sp.change->replica_id) + ")";
          }
          return std::string(why);
        }
      }
    }
    return {};
  }

  const EngineSimOptions o_;
  const int nodes_count_;  // regions * nodes_per_region
  Network net_;
  EngineOptions options_;
  std::vector<Node> nodes_;
  std::vector<Client> clients_;
  std::map<int, bool> final_reads_started_;
  uint64_t reforwards_ = 0;  // of engines that crashed since
  uint64_t leader_handoffs_ = 0, verdicts_ = 0, leaders_planned_ = 0;  // likewise
  uint64_t member_changes_ = 0, replicas_moved_ = 0;                   // likewise
  int bulk_done_ = 0;
  uint64_t bulk_token_ = 0;
  std::map<int, int> bulk_last_;                // key -> last acknowledged write
  std::map<int, std::set<int>> bulk_unknown_;   // key -> writes whose outcome is unknown
  struct Admin {
    Admin(Request r, Time at) : request(std::move(r)), at_us(at) {}
    Request request;
    Time at_us = 0;      // not before
    std::function<void()> before;  // run when the step is first submitted
    std::function<void()> after;   // run when it is acknowledged
    bool done = false;
    std::string error;   // the last refusal
    uint64_t token = 0;  // the attempt in flight
  };
  std::vector<Admin> admin_;
  bool policy_done_ = false;
  int lost_ = -1;  // the node that lost its data directory (-1: none)
  // grow: the nodes that run in the cluster (started, not dead for good), the one that
  // died for good (-1: none yet), and the additions and removals acknowledged.
  std::vector<int> members_;
  int dead_ = -1;
  uint64_t nodes_added_ = 0, nodes_removed_ = 0;
  std::set<std::pair<uint32_t, uint32_t>> departures_cut_;  // (shard, replica id) cut for (departure_cuts)
  std::string lost_ack_;   // the first operation it acknowledged after that
  int answered_by_ = -1;   // the node that answered the response being handled
  std::map<std::string, int> added_at_;  // "key/element" -> the node that served its add
  // Eventual writes acknowledged per node; those of a node that then lost its disk.
  std::map<int, std::map<std::string, int64_t>> acked_by_;
  std::map<int, std::map<std::string, std::set<std::string>>> added_by_;
  std::map<std::string, int64_t> at_risk_sum_;
  std::map<std::string, std::set<std::string>> at_risk_elements_;
  // Set removals acknowledged per node; those of the node that died for good (grow).
  std::map<int, std::map<std::string, std::set<std::string>>> removed_by_;
  std::map<std::string, std::set<std::string>> at_risk_removals_;
  bool rejected_ = false;  // it knows its peers ignore it
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
