// Health and node states in the cluster map, on three whole engines wired together in
// process with a hand-driven clock: the metadata leader's failure detector (a stopped node
// becomes suspect, then down, then up again when it is back; a leader that was itself
// stopped, with the whole cluster, condemns no one), operator states (drain hands every
// leadership away, undrain gives the preferred ones back) and the refusals of bad requests;
// and the data directory's identity (a node restarted on an empty directory is ignored by
// its peers and refuses its clients).
#include <gtest/gtest.h>

#include <bit>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/engine/memory_storage.h"
#include "replication/crdt/codec.h"
#include "replication/crdt/crdt_value.h"

namespace geokv {
namespace {

using placement::NodeState;

class Cluster;

// One node's Env: the cluster's clock, its own MemoryStorage, sends into the peers' inboxes.
class NodeEnv final : public Env {
 public:
  NodeEnv(Cluster& cluster, uint32_t self) : cluster_(cluster), self_(self) {}
  int64_t NowUs() override;
  int64_t WallUs() override { return 1'800'000'000'000'000 + NowUs(); }
  void Send(uint32_t to, std::string bytes) override;
  // Every node of the test cluster is reachable from the start.
  void ConnectPeer(uint32_t, const std::string&, const std::string&) override {}
  storage::Storage& Store() override { return *store_; }
  // A new, empty data directory (the old one was lost).
  void Wipe() { store_ = std::make_unique<storage::MemoryStorage>(); }
  // splitmix64 over (node, counter): the engine draws Paxos session ids from it, and ids
  // that collide across nodes make one node's forward a "repeat" of another's.
  uint64_t Random() override {
    uint64_t z = (uint64_t{self_} << 48) + ++random_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  Cluster& cluster_;
  const uint32_t self_;
  uint64_t random_ = 0;
  std::unique_ptr<storage::MemoryStorage> store_ = std::make_unique<storage::MemoryStorage>();
};

class Cluster {
 public:
  static constexpr uint32_t kRegions = 3;

  // Three regions of `per_region` nodes each; node i is in region i % 3 (so nodes 0, 1 and
  // 2 hold the metadata group). Every shard prefers region 0, unless `prefer` is false
  // (then the map spreads them).
  explicit Cluster(bool unsafe_detector_ignores_pauses = false, bool prefer = true, uint32_t shards = 4,
                   bool unsafe_trust_any_disk = false, bool new_cluster = false, uint32_t per_region = 1,
                   size_t backup_chunk_bytes = EngineOptions().backup_chunk_bytes)
      : kNodes(kRegions * per_region) {
    for (uint32_t i = 0; i < kNodes; ++i) envs_.push_back(std::make_unique<NodeEnv>(*this, i));
    inbox_.resize(kNodes);
    calls_.resize(kNodes);
    stopped_.assign(kNodes, false);
    const char* names[kRegions] = {"us-east", "eu-west", "ap-south"};
    for (uint32_t i = 0; i < kNodes; ++i) {
      EngineOptions o;
      o.self = i;
      o.regions = kRegions;
      o.shards = shards;
      if (prefer) o.preferred_leader.assign(o.shards, 0);
      for (uint32_t n = 0; n < kNodes; ++n) {
        const std::string host = "tcp://" + std::string(1, static_cast<char>('a' + n));
        o.members.push_back({n % kRegions, names[n % kRegions], host + ":1", host + ":2"});
      }
      o.unsafe_detector_ignores_pauses = unsafe_detector_ignores_pauses;
      o.unsafe_trust_any_disk = unsafe_trust_any_disk;
      o.new_cluster = new_cluster;
      o.backup_chunk_bytes = backup_chunk_bytes;
      (void)o.policy.Set("lww/", Mode::kLww);
      options_.push_back(o);
      engines_.emplace_back();
      Open(i);
    }
  }

  // Restarts node `node` on its data directory, or on a new, empty one (`wipe`: the disk
  // was lost), dropping whatever was queued for the process that died.
  void Restart(uint32_t node, bool wipe) {
    engines_[node].reset();
    inbox_[node].clear();
    options_[node].new_cluster = false;  // a node of a running cluster
    if (wipe) envs_[node]->Wipe();
    Open(node);
  }
  void Open(uint32_t node) {
    auto e = Engine::Open(options_[node], *envs_[node]);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    if (e.ok()) engines_[node] = std::move(e).value();
  }

  // Runs every node that is not stopped, once per 10 ms of virtual time. Records the worst
  // state any map ever gave a node that was never stopped.
  void Run(int64_t us) {
    for (int64_t t = 0; t < us; t += 10'000) {
      now_us += 10'000;
      for (uint32_t i = 0; i < kNodes; ++i) {
        if (stopped_[i]) continue;
        Engine::RoundInputs in;
        in.messages.assign(inbox_[i].begin(), inbox_[i].end());
        inbox_[i].clear();
        in.calls = std::move(calls_[i]);
        calls_[i].clear();
        engines_[i]->Round(std::move(in));
        for (const auto& [id, node] : engines_[i]->cluster_map().nodes()) {
          if (!ever_stopped_.count(id) && node.state != NodeState::kUp) condemned_live_ = true;
        }
      }
    }
  }

  void Stop(uint32_t node) {
    stopped_[node] = true;
    ever_stopped_.insert(node);
  }
  void Resume(uint32_t node) { stopped_[node] = false; }

  // Submits `r` at `node`; `out` holds the answer once there is one.
  void Submit(uint32_t node, Request r, std::optional<Response>* out) {
    calls_[node].push_back(Engine::Call{std::move(r), [out](Response resp) { *out = std::move(resp); }});
  }
  // Submits `r` at `node` and runs until it is answered.
  Response Call(uint32_t node, Request r) {
    std::optional<Response> out;
    Submit(node, std::move(r), &out);
    for (int i = 0; i < 1000 && !out; ++i) Run(10'000);
    EXPECT_TRUE(out.has_value()) << "no answer";
    return out.value_or(Response{});
  }
  // A node-state change, retried as a client retries one whose outcome is unknown (a
  // leadership moving meanwhile): node-state changes are idempotent.
  Response SetState(uint32_t at, const std::string& node, const std::string& state) {
    Request r;
    r.op = Op::kNodeState;
    r.key = node;
    r.value = state;
    Response out = Call(at, r);
    for (int i = 0; i < 5 && (out.status.code() == Code::kTimeout || out.status.code() == Code::kUnavailable); ++i) {
      Run(500'000);
      out = Call(at, r);
    }
    return out;
  }

  // The state node `id` has in node `at`'s map.
  NodeState StateIn(uint32_t at, uint32_t id) const { return engines_[at]->cluster_map().FindNode(id)->state; }
  // The node leading the metadata group, as the running nodes agree (-1: none yet).
  int32_t MetadataLeader() const {
    for (uint32_t i = 0; i < kNodes; ++i) {
      if (!stopped_[i] && engines_[i]->IsLeader(engines_[i]->groups() - 1)) return static_cast<int32_t>(i);
    }
    return -1;
  }
  // Groups (shards and the metadata group) that node `id` leads.
  uint32_t Leading(uint32_t id) const {
    uint32_t n = 0;
    for (uint32_t g = 0; g < engines_[id]->groups(); ++g) n += engines_[id]->IsLeader(g);
    return n;
  }
  bool condemned_live() const { return condemned_live_; }
  uint32_t nodes() const { return kNodes; }
  Engine& engine(uint32_t i) { return *engines_[i]; }

  int64_t now_us = 1'000'000;

 private:
  friend class NodeEnv;
  const uint32_t kNodes;
  std::vector<std::unique_ptr<NodeEnv>> envs_;
  std::vector<std::unique_ptr<Engine>> engines_;
  std::vector<EngineOptions> options_;
  std::vector<std::deque<Engine::PeerMessage>> inbox_;
  std::vector<std::vector<Engine::Call>> calls_;
  std::vector<bool> stopped_;
  std::set<uint32_t> ever_stopped_;
  bool condemned_live_ = false;
};

int64_t NodeEnv::NowUs() { return cluster_.now_us; }
// A stopped process still has its socket: messages to it queue, as ZeroMQ queues them.
// A node added to the map that never started has no socket: what is sent to it is lost.
void NodeEnv::Send(uint32_t to, std::string bytes) {
  if (to < cluster_.inbox_.size()) cluster_.inbox_[to].push_back({self_, std::move(bytes)});
}

TEST(EngineHealth, GenesisMapListsEveryNodeUpWithItsAddresses) {
  Cluster c;
  c.Run(3'000'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) {
    const auto& map = c.engine(at).cluster_map();
    ASSERT_EQ(map.nodes().size(), 3u);
    EXPECT_EQ(map.regions()[1].name, "eu-west");
    EXPECT_EQ(map.FindNode(2)->client_address, "tcp://c:2");
    EXPECT_EQ(map.shards().size(), 4u);
    EXPECT_EQ(map.shards()[0].preferred_leader, std::optional<uint32_t>(0));
    EXPECT_TRUE(map == c.engine(0).cluster_map());
  }
  // Status shows every node, its state and its load.
  const auto lines = c.engine(1).StatusLines();
  bool listed = false;
  for (const auto& l : lines) listed |= l.rfind("node 2 (ap-south): up, replicas=4", 0) == 0;
  EXPECT_TRUE(listed);
}

TEST(EngineHealth, AnyNodeHandsOutTheMapItApplied) {
  Cluster c;
  c.Run(3'000'000);
  Request get;
  get.op = Op::kClusterMap;
  Response r = c.Call(2, get);
  ASSERT_TRUE(r.status.ok());
  auto map = placement::ClusterMap::Decode(r.value);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_TRUE(*map == c.engine(2).cluster_map());
  EXPECT_EQ(r.number, static_cast<int64_t>(map->version()));
}

TEST(EngineHealth, StoppedMetadataLeaderIsSuspectThenDownThenUpWhenItResumes) {
  Cluster c;
  c.Run(3'000'000);
  const int32_t leader = c.MetadataLeader();
  ASSERT_GE(leader, 0);
  const auto stopped = static_cast<uint32_t>(leader);
  const uint32_t other = (stopped + 1) % c.nodes();
  c.Stop(stopped);
  // A new metadata leader takes over with no history: it waits out the detector's first
  // interval and acceptable pause before it suspects anyone.
  c.Run(3'000'000);
  ASSERT_GE(c.MetadataLeader(), 0);
  EXPECT_EQ(c.StateIn(other, stopped), NodeState::kUp);
  c.Run(7'000'000);
  EXPECT_EQ(c.StateIn(other, stopped), NodeState::kSuspect);
  c.Run(15'000'000);
  EXPECT_EQ(c.StateIn(other, stopped), NodeState::kDown);
  c.Resume(stopped);
  c.Run(5'000'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.StateIn(at, stopped), NodeState::kUp) << "in node " << at;
  EXPECT_FALSE(c.condemned_live()) << "a node that never stopped was suspected";
}

// The whole cluster stopped at once (a suspended VM, a laptop asleep, every process of a
// local cluster SIGSTOPped): when it resumes, the metadata leader's detectors saw a silence
// that was its own.
bool WholeClusterPauseCondemnsSomeone(bool unsafe) {
  Cluster c(unsafe);
  c.Run(5'000'000);
  c.now_us += 30'000'000;
  c.Run(10'000'000);
  return c.condemned_live();
}

TEST(EngineHealth, WholeClusterPausedCondemnsNoOne) { EXPECT_FALSE(WholeClusterPauseCondemnsSomeone(false)); }

TEST(EngineHealth, DetectorKeepingHistoryAcrossItsOwnPauseIsCaught) {
  EXPECT_TRUE(WholeClusterPauseCondemnsSomeone(true)) << "the broken detector went unnoticed";
}

TEST(EngineHealth, DrainHandsEveryLeadershipAwayAndUndrainTakesThePreferredOnesBack) {
  Cluster c;
  c.Run(5'000'000);
  ASSERT_GE(c.Leading(0), 4u) << "every shard prefers region 0";
  ASSERT_TRUE(c.SetState(1, "0", "draining").status.ok());
  c.Run(3'000'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.StateIn(at, 0), NodeState::kDraining);
  EXPECT_EQ(c.Leading(0), 0u) << "a draining node still leads";
  // The placement driver moved the planned leaderships too.
  for (const auto& shard : c.engine(1).cluster_map().shards()) EXPECT_NE(shard.leader_region, 0u);
  EXPECT_GT(c.engine(0).stats().leader_handoffs, 0u);
  // The shards stay available meanwhile.
  Request put;
  put.op = Op::kPut;
  put.key = "k";
  put.value = "v";
  EXPECT_TRUE(c.Call(0, put).status.ok());
  // Again: idempotent.
  EXPECT_TRUE(c.SetState(2, "0", "draining").status.ok());
  ASSERT_TRUE(c.SetState(2, "0", "up").status.ok());
  c.Run(5'000'000);
  EXPECT_GE(c.Leading(0), 4u) << "the preferred region did not take its shards back";
  for (const auto& shard : c.engine(2).cluster_map().shards()) EXPECT_EQ(shard.leader_region, 0u);
}

// Leaderships handed over (a drain, or the placement driver) under a stream of writes.
// A write forwarded to the old leader is refused ("not the leader"): the forwarding node
// waits for the new leader and sends it there. A write that arrives where the leader is
// unknown yet, or at a leader handing over, waits for the next one. Not one write fails,
// and each is applied once.
TEST(EngineHealth, WritesOutliveALeadershipHandOver) {
  Cluster c;
  c.Run(5'000'000);
  ASSERT_GE(c.Leading(0), 4u) << "every shard prefers region 0";
  std::optional<Response> drained;
  Request drain;
  drain.op = Op::kNodeState;
  drain.key = "0";
  drain.value = "draining";
  c.Submit(1, drain, &drained);
  constexpr int kWrites = 300;
  std::vector<std::optional<Response>> answers(kWrites);
  for (int k = 0; k < kWrites; ++k) {
    Request put;
    put.op = Op::kPut;
    put.key = "handover/" + std::to_string(k);
    put.value = std::to_string(k);
    c.Submit(1 + k % 2, put, &answers[k]);  // nodes 1 and 2 forward to the leader
    c.Run(10'000);
  }
  c.Run(5'000'000);
  ASSERT_TRUE(drained.has_value() && drained->status.ok()) << (drained ? drained->status.ToString() : "no answer");
  EXPECT_EQ(c.Leading(0), 0u) << "a draining node still leads";
  EXPECT_GT(c.engine(0).stats().leader_handoffs, 0u);
  int failed = 0;
  for (int k = 0; k < kWrites; ++k) {
    ASSERT_TRUE(answers[k].has_value()) << "write " << k << " was never answered";
    if (!answers[k]->status.ok() && failed++ < 5) ADD_FAILURE() << "write " << k << ": " << answers[k]->status.ToString();
  }
  EXPECT_EQ(failed, 0);
  uint64_t reforwards = 0, parked = 0;
  for (uint32_t n = 0; n < c.nodes(); ++n) {
    reforwards += c.engine(n).stats().reforwards;
    parked += c.engine(n).stats().parked;
  }
  EXPECT_GT(reforwards, 0u) << "no forward met a hand-over";
  EXPECT_GT(parked, 0u) << "no write met a group between leaders";
  for (int k = 0; k < kWrites; k += 29) {
    Request get;
    get.op = Op::kGet;
    get.key = "handover/" + std::to_string(k);
    const Response r = c.Call(2, get);
    EXPECT_TRUE(r.status.ok() && r.value == std::to_string(k)) << k << ": " << r.status.ToString();
  }
}

TEST(EngineHealth, ShardsWithoutAPreferenceAreLedEvenlyAndMoveOffAStoppedNode) {
  Cluster c(false, /*prefer=*/false, /*shards=*/6);
  c.Run(10'000'000);
  for (uint32_t id = 0; id < c.nodes(); ++id) {
    EXPECT_EQ(c.engine(id).cluster_map().FindNode(id)->load.leaders, 2u) << "node " << id << " (planned)";
    uint32_t shards_led = 0;
    for (uint32_t g = 0; g < 6; ++g) shards_led += c.engine(id).IsLeader(g);
    EXPECT_EQ(shards_led, 2u) << "node " << id;
  }
  // A stopped node's planned leaderships go to the others once it is suspect.
  const uint32_t stopped = c.MetadataLeader() == 2 ? 1 : 2;
  c.Stop(stopped);
  c.Run(20'000'000);
  const uint32_t other = (stopped + 1) % c.nodes();
  EXPECT_NE(c.StateIn(other, stopped), NodeState::kUp);
  EXPECT_EQ(c.engine(other).cluster_map().FindNode(stopped)->load.leaders, 0u);
  EXPECT_EQ(c.engine(other).cluster_map().FindNode(other)->load.leaders +
                c.engine(other).cluster_map().FindNode(3 - stopped - other)->load.leaders,
            6u);
}

TEST(EngineHealth, LeadersReportTheBytesOfTheirShardsToTheMap) {
  Cluster c;
  c.Run(3'000'000);
  uint64_t total = 0;
  for (int i = 0; i < 40; ++i) {
    Request put;
    put.op = Op::kPut;
    put.key = "key/" + std::to_string(i);
    put.value = std::string(100 + i, 'v');
    total += put.key.size() + put.value.size();
    ASSERT_TRUE(c.Call(static_cast<uint32_t>(i % 3), put).status.ok());
  }
  // A delete counts too.
  Request del;
  del.op = Op::kDelete;
  del.key = "key/0";
  ASSERT_TRUE(c.Call(1, del).status.ok());
  total -= 5 + 100;
  c.Run(25'000'000);
  // One node per region: every node holds every shard, so each carries all the bytes.
  for (uint32_t at = 0; at < c.nodes(); ++at) {
    for (uint32_t id = 0; id < c.nodes(); ++id) {
      EXPECT_EQ(c.engine(at).cluster_map().FindNode(id)->load.bytes, total) << "node " << id << " in " << at << "'s map";
    }
  }
  uint64_t reports = 0;
  for (uint32_t i = 0; i < c.nodes(); ++i) reports += c.engine(i).stats().load_reports;
  // Sizes that did not change are not committed again: a handful of reports, not one per
  // leader every 10 s.
  EXPECT_LE(reports, 8u);
  // Clients cannot forge a report.
  Request forged;
  forged.op = Op::kPlacement;
  forged.value = placement::EncodeCommand(placement::ReportLoad{0, {{0, 1}}});
  EXPECT_EQ(c.Call(0, forged).status.code(), Code::kInvalidArgument);
}

TEST(EngineHealth, BadNodeStateRequestsGetSpecificErrors) {
  Cluster c;
  c.Run(3'000'000);
  EXPECT_EQ(c.SetState(0, "x1", "draining").status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.SetState(0, "", "draining").status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.SetState(0, "1", "suspect").status.code(), Code::kInvalidArgument) << "suspect is the detector's";
  EXPECT_EQ(c.SetState(0, "1", "joining").status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.SetState(0, "1", "sleepy").status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.SetState(0, "99", "draining").status.code(), Code::kNotFound);
  // Only a drained (or down) node is removed, and only once it holds no replica: with one
  // node per region, nothing else holds its region's copy.
  EXPECT_EQ(c.SetState(1, "2", "removed").status.code(), Code::kInvalidArgument);
  ASSERT_TRUE(c.SetState(1, "2", "draining").status.ok());
  { auto r = c.SetState(1, "2", "removed"); EXPECT_EQ(r.status.code(), Code::kConflict) << r.status.ToString(); }
  ASSERT_TRUE(c.SetState(1, "2", "up").status.ok());
  c.Run(500'000);  // the other nodes apply it with the metadata leader's next heartbeats
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.StateIn(at, 2), NodeState::kUp);
}

// Adding a node: the id must be the next one, the region must exist, the value must name
// a region and two addresses; each refusal is specific and changes nothing. A valid add
// commits (a retry of it too), every node applies it and grows, and its state is joining.
TEST(EngineHealth, NodeAddIsValidatedAndEveryNodeAppliesIt) {
  Cluster c;
  c.Run(3'000'000);
  auto add = [&](uint32_t at, const std::string& id, const std::string& value) {
    Request r;
    r.op = Op::kNodeAdd;
    r.key = id;
    r.value = value;
    Response out = c.Call(at, r);
    for (int i = 0; i < 5 && (out.status.code() == Code::kTimeout || out.status.code() == Code::kUnavailable); ++i) {
      c.Run(500'000);
      out = c.Call(at, r);
    }
    return out.status;
  };
  EXPECT_EQ(add(0, "x", "eu-west tcp://a tcp://b").code(), Code::kInvalidArgument);
  EXPECT_EQ(add(0, "3", "eu-west tcp://a").code(), Code::kInvalidArgument) << "two addresses";
  EXPECT_EQ(add(0, "3", "eu-west  tcp://a tcp://b").code(), Code::kInvalidArgument) << "an empty field";
  EXPECT_EQ(add(0, "3", "mars tcp://a tcp://b").code(), Code::kInvalidArgument) << "no such region";
  EXPECT_EQ(add(1, "4", "eu-west tcp://a tcp://b").code(), Code::kInvalidArgument) << "not the next id";
  EXPECT_EQ(add(1, "64", "eu-west tcp://a tcp://b").code(), Code::kInvalidArgument) << "not the next id";
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.engine(at).cluster_map().nodes().size(), 3u);
  ASSERT_TRUE(add(2, "3", "eu-west tcp://peer-3 tcp://client-3").ok());
  EXPECT_TRUE(add(0, "3", "eu-west tcp://peer-3 tcp://client-3").ok()) << "a retry of an add that committed";
  EXPECT_EQ(add(0, "3", "us-east tcp://peer-3 tcp://client-3").code(), Code::kInvalidArgument) << "id 3 is taken";
  c.Run(500'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) {
    const placement::Node* n = c.engine(at).cluster_map().FindNode(3);
    ASSERT_NE(n, nullptr) << "node " << at;
    EXPECT_EQ(n->region, 1u);
    EXPECT_EQ(n->peer_address, "tcp://peer-3");
    EXPECT_EQ(n->state, NodeState::kJoining) << "it has not started";
  }
  // A node that never came up is marked down, then removed (it holds no replica).
  ASSERT_TRUE(c.SetState(0, "3", "down").status.ok());
  ASSERT_TRUE(c.SetState(0, "3", "removed").status.ok());
  c.Run(500'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.StateIn(at, 3), NodeState::kRemoved) << "node " << at;
}

// ---- data directory identity ----------------------------------------------------------

Request PutRequest(const std::string& key, const std::string& value) {
  Request r;
  r.op = Op::kPut;
  r.key = key;
  r.value = value;
  return r;
}
Request GetRequest(const std::string& key) {
  Request r;
  r.op = Op::kGet;
  r.key = key;
  return r;
}

// A new cluster: every directory is new, and each node serves clients once a peer has
// echoed its id, which takes a round of messages.
TEST(EngineDisk, ANewDirectoryServesOnceAPeerConfirmedIt) {
  Cluster c;
  EXPECT_EQ(c.Call(1, PutRequest("lww/a", "1")).status.code(), Code::kUnavailable);
  c.Run(1'000'000);
  EXPECT_TRUE(c.Call(1, PutRequest("lww/a", "1")).status.ok());
  EXPECT_TRUE(c.Call(2, PutRequest("s", "1")).status.ok());
  for (uint32_t i = 0; i < c.nodes(); ++i) {
    EXPECT_FALSE(c.engine(i).data_directory_lost());
    EXPECT_EQ(c.engine(i).stats().foreign_disk_messages, 0u);
  }
}

// A node no peer hears from while the cluster is created: by default no new directory takes
// part (each waits for every peer to confirm it); started as a new cluster, the two others
// go on without it, and it joins when it comes.
TEST(EngineDisk, ANewClusterGoesOnWithoutAnUnreachableNodeOnlyWhenToldSo) {
  {
    Cluster c;
    c.Stop(2);
    c.Run(2'000'000);
    EXPECT_EQ(c.Call(0, PutRequest("s", "1")).status.code(), Code::kUnavailable);
  }
  Cluster c(false, true, 4, false, /*new_cluster=*/true);
  c.Stop(2);
  c.Run(2'000'000);
  Response r = c.Call(0, PutRequest("s", "1"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(c.Call(1, PutRequest("lww/a", "1")).status.ok());
  c.Resume(2);
  c.Run(2'000'000);
  r = c.Call(2, GetRequest("s"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.value, "1");
}

// A restart on the same directory is the same node: nothing changes.
TEST(EngineDisk, ARestartOnTheSameDirectoryIsTrusted) {
  Cluster c;
  c.Run(2'000'000);
  ASSERT_TRUE(c.Call(2, PutRequest("lww/a", "1")).status.ok());
  c.Restart(2, /*wipe=*/false);
  // Not new: it serves at once (from what it stored).
  Response r = c.Call(2, GetRequest("lww/a"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.value, "1");
  c.Run(2'000'000);
  ASSERT_TRUE(c.Call(2, PutRequest("s", "2")).status.ok());
  for (uint32_t i = 0; i < c.nodes(); ++i) {
    EXPECT_FALSE(c.engine(i).data_directory_lost());
    EXPECT_EQ(c.engine(i).stats().foreign_disk_messages, 0u);
  }
}

// A node restarted on an empty directory forgot its Paxos promises and its CRDT sequence
// numbers and state. Its peers drop everything it sends; it learns from them that it is not
// the node they know and refuses every client operation but status, with a message that
// says why. The other two regions go on.
TEST(EngineDisk, ALostDirectoryIsIgnoredByItsPeersAndRefusesClients) {
  Cluster c;
  c.Run(2'000'000);
  ASSERT_TRUE(c.Call(2, PutRequest("lww/a", "1")).status.ok());
  ASSERT_TRUE(c.Call(2, PutRequest("s", "1")).status.ok());
  c.Run(1'000'000);
  c.Restart(2, /*wipe=*/true);
  Response r = c.Call(2, GetRequest("lww/a"));
  EXPECT_EQ(r.status.code(), Code::kUnavailable) << "served from an empty directory: " << r.status.ToString();
  c.Run(2'000'000);
  EXPECT_TRUE(c.engine(2).data_directory_lost());
  EXPECT_GT(c.engine(0).stats().foreign_disk_messages + c.engine(1).stats().foreign_disk_messages, 0u);
  for (const Request& req : {GetRequest("lww/a"), PutRequest("lww/b", "2"), GetRequest("s"), PutRequest("s", "3")}) {
    r = c.Call(2, req);
    EXPECT_EQ(r.status.code(), Code::kUnavailable) << r.status.ToString();
    EXPECT_NE(r.status.message().find("data directory is not the one its peers know"), std::string::npos)
        << r.status.ToString();
  }
  // Status still answers, and says so; the peers' status names the node they ignore.
  Request status;
  status.op = Op::kStatus;
  r = c.Call(2, status);
  ASSERT_TRUE(r.status.ok());
  bool says_lost = false;
  for (const auto& line : r.values) says_lost |= line.find("data directory: disk") == 0 && line.find("LOST") != std::string::npos;
  EXPECT_TRUE(says_lost);
  r = c.Call(0, status);
  bool names_it = false;
  for (const auto& line : r.values) names_it |= line.find("node 2 sends from disk") == 0;
  EXPECT_TRUE(names_it);
  // The group goes on without it: strong writes commit with the other two regions, and what
  // node 2 acknowledged before it lost its directory is still there.
  ASSERT_TRUE(c.Call(0, PutRequest("s", "4")).status.ok());
  r = c.Call(1, GetRequest("s"));
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.value, "4");
  r = c.Call(1, GetRequest("lww/a"));
  EXPECT_EQ(r.value, "1");
  for (uint32_t g = 0; g < c.engine(0).groups(); ++g) EXPECT_NE(c.engine(0).LeaderOf(g), 2) << "group " << g;
  // It stays ignored across its own restarts (the peers remember the directory they knew).
  c.Restart(2, /*wipe=*/false);
  c.Run(1'000'000);
  EXPECT_TRUE(c.engine(2).data_directory_lost());
  EXPECT_EQ(c.Call(2, GetRequest("s")).status.code(), Code::kUnavailable);
}

// The broken variant trusts any directory: the node with the lost directory serves a read
// of a key it acknowledged before from its empty state. The test above can fail.
TEST(EngineDisk, TrustingAnyDirectoryServesFromAnEmptyState) {
  Cluster c(/*unsafe_detector_ignores_pauses=*/false, /*prefer=*/true, /*shards=*/4, /*unsafe_trust_any_disk=*/true);
  c.Run(2'000'000);
  ASSERT_TRUE(c.Call(2, PutRequest("lww/a", "1")).status.ok());
  c.Run(1'000'000);
  c.Restart(2, /*wipe=*/true);
  Response r = c.Call(2, GetRequest("lww/a"));
  EXPECT_EQ(r.status.code(), Code::kNotFound) << r.status.ToString();
  EXPECT_FALSE(c.engine(2).data_directory_lost());
}

// ---- several nodes per region ----------------------------------------------------------

// Two nodes per region, 8 shards: each node holds the replicas the map places on it (one
// per shard and region, spread evenly), and serves every key: a node without a replica of
// the key's shard proxies the request to its region's holder.
// With two nodes per region the metadata leader holds half the shards. A policy change is
// checked against every shard's rows at that shard's leader (a read index there), not only
// against the data the metadata leader holds: a strong key on a shard it does not hold
// still keeps its prefix from changing mode.
TEST(EngineNodes, APolicyChangeIsCheckedAgainstShardsTheMetadataLeaderDoesNotHold) {
  Cluster c(false, /*prefer=*/false, /*shards=*/8, false, /*new_cluster=*/true, /*per_region=*/2);
  c.Run(3'000'000);
  const int32_t meta = c.MetadataLeader();
  ASSERT_GE(meta, 0);
  // A key of a shard the metadata leader holds no replica of.
  std::string key;
  for (int k = 0; key.empty() && k < 1000; ++k) {
    const std::string candidate = "far/" + std::to_string(k);
    if (!c.engine(meta).Hosts(c.engine(meta).ShardOf(candidate))) key = candidate;
  }
  ASSERT_FALSE(key.empty());
  ASSERT_TRUE(c.Call(3, PutRequest(key, "strong")).status.ok());
  Request set;
  set.op = Op::kPolicySet;
  set.key = "far/";
  set.mode = Mode::kLww;
  for (uint32_t at : {static_cast<uint32_t>(meta), 4u}) {
    const Response r = c.Call(at, set);
    EXPECT_EQ(r.status.code(), Code::kInvalidArgument) << "at node " << at << ": " << r.status.ToString();
    EXPECT_NE(r.status.message().find(key), std::string::npos) << r.status.ToString();
  }
  EXPECT_GT(c.engine(meta).stats().policy_checks, 0u);
  // The key keeps its mode and its value.
  const Response get = c.Call(5, GetRequest(key));
  EXPECT_TRUE(get.status.ok() && get.value == "strong") << get.status.ToString();
  // A prefix holding no data changes mode; nodes cannot be asked to check by a client.
  set.key = "near/";
  EXPECT_TRUE(c.Call(1, set).status.ok());
  Request probe;
  probe.op = Op::kPolicyCheck;
  probe.key = "far/";
  EXPECT_EQ(c.Call(2, probe).status.code(), Code::kInvalidArgument);
}

// A policy change is checked against the change as the metadata leader sees it, not as a
// shard leader whose copy of the metadata group may not have applied the latest rule yet:
// a rule set and removed at once (the remove probes shard leaders before they learn of
// the set's commit) is removed, and a conflicting key is still found under the new rule.
TEST(EngineNodes, APolicyChangeIsCheckedAgainstThePolicyTheMetadataLeaderHolds) {
  Cluster c(false, /*prefer=*/false, /*shards=*/8, false, /*new_cluster=*/true, /*per_region=*/2);
  c.Run(3'000'000);
  const int32_t meta = c.MetadataLeader();
  ASSERT_GE(meta, 0);
  Request set;
  set.op = Op::kPolicySet;
  set.mode = Mode::kLww;
  Request remove;
  remove.op = Op::kPolicyRemove;
  for (int round = 0; round < 5; ++round) {
    set.key = remove.key = "tmp" + std::to_string(round) + "/";
    const Response s = c.Call(static_cast<uint32_t>(meta), set);
    ASSERT_TRUE(s.status.ok()) << s.status.ToString();
    const Response r = c.Call(static_cast<uint32_t>(meta), remove);
    EXPECT_TRUE(r.status.ok()) << "round " << round << ": " << r.status.ToString();
  }
  // A strong key under a sub-prefix whose rule was just set to strong conflicts with a
  // change of the enclosing prefix at once, wherever its shard leads.
  set.key = "deep/";
  ASSERT_TRUE(c.Call(static_cast<uint32_t>(meta), set).status.ok());
  set.key = "deep/strong/";
  set.mode = Mode::kStrong;
  ASSERT_TRUE(c.Call(static_cast<uint32_t>(meta), set).status.ok());
  c.Run(1'000'000);
  ASSERT_TRUE(c.Call(1, PutRequest("deep/strong/k", "v")).status.ok());
  remove.key = "deep/strong/";
  const Response r = c.Call(static_cast<uint32_t>(meta), remove);
  EXPECT_EQ(r.status.code(), Code::kInvalidArgument) << r.status.ToString();
  EXPECT_NE(r.status.message().find("deep/strong/k"), std::string::npos) << r.status.ToString();
}

// A shard-snapshot request for `shard` (token "" starts a new snapshot).
Request SnapshotRequest(uint32_t shard, const std::string& token, const std::string& offset) {
  Request r;
  r.op = Op::kShardSnapshot;
  r.delta = shard;
  r.key = token;
  r.value = offset;
  return r;
}

// Reads a whole snapshot of `shard` at node `at`, chunk by chunk, and decodes its rows;
// `chunks` counts the calls.
std::map<std::string, std::string> ReadSnapshot(Cluster& c, uint32_t at, uint32_t shard, int* chunks) {
  std::string token, bytes;
  int64_t total = -1;
  *chunks = 0;
  while (total < 0 || bytes.size() < static_cast<size_t>(total)) {
    const Response r = c.Call(at, SnapshotRequest(shard, token, std::to_string(bytes.size())));
    ++*chunks;
    EXPECT_TRUE(r.status.ok()) << "node " << at << ", chunk " << *chunks << ": " << r.status.ToString();
    if (!r.status.ok() || r.value.empty()) return {};
    EXPECT_TRUE(total < 0 || r.number == total) << "the snapshot changed size between chunks";
    EXPECT_TRUE(token.empty() || r.context == token);
    total = r.number;
    token = r.context;
    bytes += r.value;
  }
  std::map<std::string, std::string> rows;
  crdt::Decoder dec(bytes);
  uint64_t n = 0;
  EXPECT_TRUE(dec.GetVarint(&n).ok());
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    EXPECT_TRUE(dec.GetBytes(bytes.size(), &k, "key").ok() && dec.GetBytes(bytes.size(), &v, "value").ok());
    rows[std::string(k)] = std::string(v);
  }
  EXPECT_TRUE(dec.Finish().ok());
  return rows;
}

// A backup reads each shard by snapshot, at whichever node it asks (the leader serves it
// after a read index, so it holds a write acknowledged just before), in chunks of
// backup_chunk_bytes under one token; an idle token expires. Eventual keys come in pages.
TEST(EngineNodes, AShardSnapshotHoldsEveryAcknowledgedWriteInChunksAtAnyNode) {
  Cluster c(false, /*prefer=*/false, /*shards=*/4, false, /*new_cluster=*/true, /*per_region=*/2,
            /*backup_chunk_bytes=*/256);
  c.Run(3'000'000);
  const uint32_t shard = c.engine(0).ShardOf("s/0");
  std::map<std::string, std::string> expected;
  for (int k = 0; expected.size() < 40 && k < 1000; ++k) {
    const std::string key = "s/" + std::to_string(k);
    if (c.engine(0).ShardOf(key) != shard) continue;
    const std::string value = "value " + std::to_string(k) + std::string(20, 'v');
    ASSERT_TRUE(c.Call(k % c.nodes(), PutRequest(key, value)).status.ok()) << key;
    expected[key] = value;
  }
  ASSERT_EQ(expected.size(), 40u);
  for (uint32_t at = 0; at < c.nodes(); ++at) {
    // Acknowledged at one node, then the snapshot asked of another.
    const std::string last = "s/0";
    expected[last] = "last before the snapshot at " + std::to_string(at);
    ASSERT_TRUE(c.Call((at + 1) % c.nodes(), PutRequest(last, expected[last])).status.ok());
    int chunks = 0;
    EXPECT_EQ(ReadSnapshot(c, at, shard, &chunks), expected) << "at node " << at;
    EXPECT_GT(chunks, 4) << "a shard of " << expected.size() << " rows of ~40 bytes takes several 256-byte chunks";
  }

  // Bad requests get specific refusals.
  EXPECT_EQ(c.Call(1, SnapshotRequest(4, "", "0")).status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Call(1, SnapshotRequest(shard, "", "x")).status.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Call(1, SnapshotRequest(shard, "", "10")).status.code(), Code::kInvalidArgument);
  const Response unknown = c.Call(1, SnapshotRequest(shard, "0123456789abcdef0123456789abcdef", "0"));
  EXPECT_EQ(unknown.status.code(), Code::kNotFound) << unknown.status.ToString();
  const Response first = c.Call(2, SnapshotRequest(shard, "", "0"));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(c.Call(2, SnapshotRequest(shard, first.context, std::to_string(first.number + 1))).status.code(),
            Code::kInvalidArgument);
  // A token of another shard: kInvalidArgument when both shards have the same leader,
  // else kNotFound (a token lives at the leader that made it).
  EXPECT_FALSE(c.Call(2, SnapshotRequest((shard + 1) % 4, first.context, "0")).status.ok());
  // Still there after 30 s idle (and the read refreshes it), gone after 61 s idle.
  c.Run(30'000'000);
  EXPECT_TRUE(c.Call(2, SnapshotRequest(shard, first.context, "256")).status.ok());
  c.Run(61'000'000);
  const Response expired = c.Call(2, SnapshotRequest(shard, first.context, "512"));
  EXPECT_EQ(expired.status.code(), Code::kNotFound) << expired.status.ToString();

  // Eventual keys: pages of (key, state) pairs after the key asked, until found is false.
  std::map<std::string, std::string> lww;
  for (int k = 0; k < 30; ++k) {
    const std::string key = "lww/" + std::to_string(k);
    lww[key] = std::string(30, static_cast<char>('a' + k % 26));
    ASSERT_TRUE(c.Call(k % c.nodes(), PutRequest(key, lww[key])).status.ok());
  }
  Request del = GetRequest("lww/29");
  del.op = Op::kDelete;
  ASSERT_TRUE(c.Call(3, del).status.ok());
  lww.erase("lww/29");
  c.Run(2'000'000);  // every region has every write
  // Shard by shard, page by page, from any node (a node that does not serve a shard
  // proxies the dump to its holder).
  for (uint32_t at = 0; at < c.nodes(); ++at) {
    std::map<std::string, std::string> dumped;
    int pages = 0;
    for (uint32_t shard = 0; shard < 4; ++shard) {
      Request dump;
      dump.op = Op::kCrdtDump;
      dump.delta = shard;
      for (bool more = true; more && pages < 100; ++pages) {
        const Response r = c.Call(at, dump);
        ASSERT_TRUE(r.status.ok()) << r.status.ToString();
        ASSERT_EQ(r.values.size() % 2, 0u);
        for (size_t i = 0; i < r.values.size(); i += 2) {
          auto v = crdt::CrdtValue::Decode(r.values[i + 1]);
          ASSERT_TRUE(v.ok() && v->As<crdt::LwwRegister>() != nullptr) << r.values[i];
          EXPECT_EQ(c.engine(at).ShardOf(r.values[i]), shard) << r.values[i];
          dumped[r.values[i]] = v->As<crdt::LwwRegister>()->Get().value_or("(deleted)");
        }
        if (!r.values.empty()) dump.key = r.values[r.values.size() - 2];
        more = r.found;
      }
    }
    EXPECT_EQ(dumped, lww) << "at node " << at;
    EXPECT_GT(pages, 4) << "30 keys of ~80 bytes in 4 shards take several 256-byte pages";
  }
  Request out_of_range;
  out_of_range.op = Op::kCrdtDump;
  out_of_range.delta = 4;
  EXPECT_EQ(c.Call(0, out_of_range).status.code(), Code::kInvalidArgument);
}

TEST(EngineNodes, EachNodeHoldsItsShardsAndServesEveryKey) {
  Cluster c(false, /*prefer=*/false, /*shards=*/8, false, /*new_cluster=*/true, /*per_region=*/2);
  c.Run(3'000'000);
  const auto& map = c.engine(0).cluster_map();
  ASSERT_EQ(map.nodes().size(), 6u);
  ASSERT_TRUE(map.CheckInvariants().ok());
  for (uint32_t n = 0; n < c.nodes(); ++n) {
    EXPECT_EQ(c.engine(n).RegionOf(n), n % 3);
    EXPECT_EQ(map.FindNode(n)->region, n % 3);
    EXPECT_EQ(map.FindNode(n)->load.shards, 4u) << "node " << n;  // 8 shards over 2 nodes
    EXPECT_TRUE(c.engine(n).cluster_map() == map);
    for (uint32_t s = 0; s < 8; ++s) {
      EXPECT_EQ(c.engine(n).Hosts(s), map.ReplicaOf(s, n % 3) == n) << "node " << n << " shard " << s;
    }
    // The metadata group's voters are the first node of each region; the others follow
    // it as learners.
    ASSERT_TRUE(c.engine(n).Hosts(8));
    EXPECT_EQ(c.engine(n).replica(8).members().IsVoter(n), n < 3) << "node " << n;
    EXPECT_TRUE(c.engine(n).replica(8).members().IsMember(n)) << "node " << n;
  }
  // Strong writes at every node, each read back at every other node.
  for (uint32_t n = 0; n < c.nodes(); ++n) {
    for (int k = 0; k < 4; ++k) {
      const std::string key = "k" + std::to_string(n) + "/" + std::to_string(k);
      Response w = c.Call(n, PutRequest(key, "v" + std::to_string(n)));
      ASSERT_TRUE(w.status.ok()) << key << " at node " << n << ": " << w.status.ToString();
    }
  }
  uint64_t proxied = 0;
  for (uint32_t n = 0; n < c.nodes(); ++n) {
    for (uint32_t m = 0; m < c.nodes(); ++m) {
      for (int k = 0; k < 4; ++k) {
        const std::string key = "k" + std::to_string(m) + "/" + std::to_string(k);
        Response r = c.Call(n, GetRequest(key));
        ASSERT_TRUE(r.status.ok()) << key << " at node " << n << ": " << r.status.ToString();
        EXPECT_EQ(r.value, "v" + std::to_string(m));
      }
    }
    proxied += c.engine(n).stats().proxied;
    EXPECT_EQ(c.engine(n).stats().misrouted_messages, 0u);
  }
  EXPECT_GT(proxied, 0u);
  // Eventual keys reach every node.
  ASSERT_TRUE(c.Call(4, PutRequest("lww/x", "1")).status.ok());
  c.Run(1'000'000);
  for (uint32_t n = 0; n < c.nodes(); ++n) EXPECT_EQ(c.Call(n, GetRequest("lww/x")).value, "1") << "node " << n;
  // Every node is kept up by its heartbeats, those without a metadata replica included.
  c.Run(20'000'000);
  EXPECT_FALSE(c.condemned_live());
  for (uint32_t n = 0; n < c.nodes(); ++n) EXPECT_EQ(c.StateIn(0, n), NodeState::kUp) << "node " << n;
}

// A node that is only a learner of the metadata group sets node states (forwarded to the
// metadata leader), applies every change, and is judged by the detector like the others.
TEST(EngineNodes, LearnersOfTheMetadataGroupTakePartInHealth) {
  Cluster c(false, /*prefer=*/false, /*shards=*/8, false, /*new_cluster=*/true, /*per_region=*/2);
  c.Run(3'000'000);
  ASSERT_TRUE(c.SetState(5, "4", "draining").status.ok());
  c.Run(500'000);
  for (uint32_t at = 0; at < c.nodes(); ++at) EXPECT_EQ(c.StateIn(at, 4), NodeState::kDraining) << "in node " << at;
  c.Stop(3);
  c.Run(25'000'000);
  EXPECT_EQ(c.StateIn(0, 3), NodeState::kDown);
  EXPECT_EQ(c.StateIn(5, 3), NodeState::kDown);
  // Node 3's shards are led from the other regions meanwhile, and every running node
  // reaches them: node 0, whose region's holder of them is node 3, proxies to another
  // region's holder.
  for (uint32_t n : {0u, 1u, 2u, 4u, 5u}) {
    for (int k = 0; k < 8; ++k) {
      const std::string key = "after/" + std::to_string(n) + "/" + std::to_string(k);
      Response w = c.Call(n, PutRequest(key, "1"));
      EXPECT_TRUE(w.status.ok()) << key << " at node " << n << ": " << w.status.ToString();
    }
  }
  c.Resume(3);
  c.Run(5'000'000);
  EXPECT_EQ(c.StateIn(1, 3), NodeState::kUp);
}

// Draining a node moves its replicas to the other node of its region, one Paxos membership
// change at a time (learner, promotion, removal, FinishMove): every key stays readable from
// every node, the drained node erases what it held, and can then be removed.
TEST(EngineNodes, DrainMovesEveryReplicaToTheRegionsOtherNodeThenRemoveSucceeds) {
  Cluster c(false, /*prefer=*/false, /*shards=*/8, false, /*new_cluster=*/true, /*per_region=*/2);
  c.Run(3'000'000);
  std::vector<std::string> keys;
  for (int k = 0; k < 32; ++k) {
    keys.push_back("m/" + std::to_string(k));
    ASSERT_TRUE(c.Call(k % 6, PutRequest(keys.back(), "v" + std::to_string(k))).status.ok()) << keys.back();
  }
  ASSERT_EQ(c.engine(0).cluster_map().FindNode(4)->load.shards, 4u);
  EXPECT_EQ(c.SetState(2, "4", "removed").status.code(), Code::kInvalidArgument);  // drain first
  ASSERT_TRUE(c.SetState(2, "4", "draining").status.ok());
  // Status names each move in flight.
  bool listed = false;
  for (int i = 0; i < 1200 && !listed; ++i) {
    c.Run(100'000);
    for (const auto& line : c.engine(3).StatusLines()) listed |= line.rfind("move: shard ", 0) == 0 && line.find("node 4 -> node 1") != std::string::npos;
  }
  EXPECT_TRUE(listed) << "no status line showed a move off node 4";
  for (int i = 0; i < 120 && c.engine(0).cluster_map().FindNode(4)->load.shards != 0; ++i) c.Run(1'000'000);
  c.Run(2'000'000);
  const auto& map = c.engine(0).cluster_map();
  ASSERT_TRUE(map.CheckInvariants().ok());
  EXPECT_EQ(map.FindNode(4)->load.shards, 0u);
  EXPECT_EQ(map.FindNode(1)->load.shards, 8u);
  uint64_t changes = 0;
  for (uint32_t n = 0; n < c.nodes(); ++n) changes += c.engine(n).stats().member_changes;
  EXPECT_GE(changes, 4u * 2);  // per move: a learner added, promoted, the replica it replaces removed
  for (uint32_t s = 0; s < 8; ++s) {
    EXPECT_FALSE(map.shards()[s].change.has_value()) << "shard " << s;
    EXPECT_FALSE(c.engine(4).Hosts(s)) << "shard " << s;
    EXPECT_TRUE(c.engine(1).Hosts(s)) << "shard " << s;
    // The group is the map's: three voters, no learner.
    for (uint32_t r = 0; r < 3; ++r) {
      const uint32_t holder = map.ReplicaOf(s, r);
      const auto& members = c.engine(holder).replica(s).members();
      EXPECT_EQ(std::popcount(members.voters), 3) << "shard " << s;
      EXPECT_EQ(members.learners, 0u) << "shard " << s;
      for (uint32_t id : map.shards()[s].replica_ids) EXPECT_TRUE(members.IsVoter(id)) << "shard " << s << " id " << id;
    }
  }
  for (uint32_t n = 0; n < c.nodes(); ++n) EXPECT_TRUE(c.engine(n).cluster_map() == map) << "node " << n;
  // Every key, from every node (node 4 proxies: it holds nothing now), and the moved
  // replicas hold the data while node 4 erased its own.
  for (const std::string& key : keys) {
    auto moved = c.engine(1).ReadStrongForTest(key);
    ASSERT_TRUE(moved.ok()) << key;
    EXPECT_EQ(*moved, "v" + key.substr(2)) << key;
    EXPECT_FALSE(c.engine(4).ReadStrongForTest(key).ok()) << key;
    for (uint32_t n = 0; n < c.nodes(); ++n) {
      Response r = c.Call(n, GetRequest(key));
      EXPECT_TRUE(r.status.ok()) << key << " at node " << n << ": " << r.status.ToString();
      EXPECT_EQ(r.value, "v" + key.substr(2)) << key << " at node " << n;
    }
  }
  // Holding nothing, it can be removed; writes go on.
  ASSERT_TRUE(c.SetState(0, "4", "removed").status.ok());
  c.Run(1'000'000);
  EXPECT_EQ(c.StateIn(5, 4), NodeState::kRemoved);
  for (uint32_t n = 0; n < c.nodes(); ++n) {
    if (n == 4) continue;
    EXPECT_TRUE(c.Call(n, PutRequest(keys[n], "after")).status.ok()) << "node " << n;
  }
}

}  // namespace
}  // namespace geokv
