#include "core/sim/paxos_cluster.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "replication/paxos/message.h"

namespace geokv::sim {
namespace {

using paxos::Apply;
using paxos::Entry;
using paxos::MessageType;

constexpr double kLocalRttMs = 0.5;  // a client and the replica of its own region
constexpr int kCodeOk = 0;
constexpr int kCodeFailed = 1;  // cas did not swap
constexpr int kCodeRedirect = 2;

uint64_t HashEntry(const Entry& e) {
  uint64_t h = e.noop ? 0x9e3779b97f4a7c15ull : 0xcbf29ce484222325ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 0x100000001b3ull;
    }
  };
  for (const auto& c : e.commands) {
    mix(&c.client_id, sizeof c.client_id);
    mix(&c.seq, sizeof c.seq);
    mix(c.payload.data(), c.payload.size());
  }
  if (e.members) {
    const uint64_t m[3] = {e.members->epoch, e.members->voters, e.members->learners};
    mix(m, sizeof m);
    h ^= 0x5bd1e995ull;
  }
  return h;
}

struct KvResult {
  bool ok = true;
  int64_t out = 0;
};

struct Node {
  std::unique_ptr<paxos::Replica> replica;
  PaxosStore storage;
  bool up = true;
  uint64_t life = 0;  // bumped on crash so that timers of an earlier life stop
  // Paused (SIGSTOP): inputs wait in `held`; a tick that fell due waits in `tick_held`.
  bool paused = false;
  uint64_t pause_id = 0;
  std::vector<std::pair<bool, std::function<void()>>> held;  // (from a client, input)
  bool tick_held = false;
  double rate = 1.0;
  Time offset_us = 0;
  // Application state: volatile, rebuilt by re-applying the log after a restart.
  std::map<std::string, int64_t> kv;
  std::map<uint64_t, std::pair<uint64_t, KvResult>> last_result;  // client -> (seq, result)
  uint64_t applied_slot = 0;
  uint64_t last_commit = 0;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<int, uint64_t>> waiting;  // -> (ep, req)
  std::map<uint64_t, std::tuple<int, uint64_t, std::string>> reads;  // id -> (ep, req, key)
};

struct Client {
  int endpoint = 0;
  int region = 0;
  uint64_t seq = 0;
  int done_ops = 0;
  bool busy = false;
  HistoryOp cur;
  uint64_t cur_seq = 0;
  int attempts = 0;
  int target = 0;
  uint64_t req_id = 0;
};

class Cluster {
 public:
  explicit Cluster(const PaxosSimOptions& o);
  PaxosSimResult Run();

 private:
  Time LocalNow(int r) const {
    const Node& n = nodes_[r];
    return n.offset_us + static_cast<Time>(n.rate * static_cast<double>(net_.Now()));
  }
  paxos::Config ConfigFor(int r) const;
  void Open(int r);
  void ScheduleTick(int r);
  void Process(int r);
  void CheckSend(int r, const paxos::OutMessage& m);
  void ApplyOne(int r, const Apply& a);
  std::string SaveState(int r) const;
  void LoadState(int r, const std::string& data);
  void OnReplicaMessage(int r, int from, const std::string& bytes);
  void OnClientRequest(int r, int from, const std::string& bytes);
  void Reply(int r, int endpoint, uint64_t req, int code, int64_t out, int32_t hint);
  void Crash(int r);
  void Restart(int r);
  void Pause(int r, Time duration_us);
  void Resume(int r);
  // Runs `input` now, or when the replica resumes if it is paused.
  void Input(int r, bool from_client, std::function<void()> input);
  void Nemesis();
  // One membership change proposed to the leader (add a learner, promote, remove).
  void ChangeMembers();
  void EndFaults();
  int CurrentLeader() const;

  void StartOp(int c);
  void SendAttempt(int c);
  void OnClientResponse(int c, const std::string& bytes);
  void Finish(int c, bool unknown, bool ok, int64_t out);

  void CheckStep();
  void CheckFinal();
  void Fail(std::string why) {
    if (result_.ok) {
      result_.ok = false;
      result_.failure = std::move(why);
    }
  }

  const PaxosSimOptions o_;
  const int r_;  // replicas
  Network net_;
  std::vector<Node> nodes_;
  std::vector<Client> clients_;
  PaxosSimResult result_;
  std::unordered_map<uint64_t, uint64_t> chosen_;  // slot -> value hash
  std::map<uint32_t, paxos::Membership> memberships_;  // epoch -> the membership applied
  std::set<std::pair<uint64_t, uint64_t>> chosen_cmds_;
  std::set<std::pair<uint64_t, uint64_t>> acked_writes_;
  std::map<std::pair<uint64_t, uint64_t>, Time> first_applied_us_;
  uint64_t next_req_ = 0;
  uint64_t next_read_ = 0;
  uint64_t steps_ = 0;
  int clients_done_ = 0;
  bool faults_over_ = false;
  std::optional<Time> crash_time_;
  uint64_t commit_at_crash_ = 0;
  uint64_t replica_msgs_ = 0;
  uint64_t replica_bytes_ = 0;
  uint64_t replica_hb_msgs_ = 0;
  uint64_t window_start_hb_ = 0;
  uint64_t window_start_msgs_ = 0, window_start_bytes_ = 0, window_start_cmds_ = 0;
};

Network MakeNetwork(const PaxosSimOptions& o) {
  Network aws = Network::Aws(o.seed, o.replicas);
  const int n = o.replicas + o.clients;
  std::vector<std::string> regions;
  std::vector<int> region_of(n);
  for (int i = 0; i < n; ++i) {
    region_of[i] = i < o.replicas ? i : (i - o.replicas) % o.replicas;
    regions.push_back(aws.region(region_of[i]) + (i < o.replicas ? "" : "-client"));
  }
  std::vector<std::vector<double>> rtt(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      const int a = region_of[i], b = region_of[j];
      rtt[i][j] = a == b ? kLocalRttMs : aws.rtt_ms(a, b);
    }
  }
  return Network(o.seed, std::move(regions), std::move(rtt));
}

Cluster::Cluster(const PaxosSimOptions& o)
    : o_(o), r_(o.replicas), net_(MakeNetwork(o)), nodes_(o.replicas), clients_(o.clients) {
  result_.seed = o.seed;
  auto& rng = net_.Rng();
  std::uniform_real_distribution<double> drift(-o.clock_drift_max, o.clock_drift_max);
  for (int r = 0; r < r_; ++r) {
    nodes_[r].rate = 1.0 + drift(rng);
    nodes_[r].offset_us =
        static_cast<Time>(rng() % static_cast<uint64_t>(std::max<Time>(1, o.clock_offset_us_max)));
    net_.Attach(r, [this, r](int from, std::string bytes) {
      Input(r, from >= r_, [this, r, from, bytes = std::move(bytes)] {
        if (from < r_) {
          OnReplicaMessage(r, from, bytes);
        } else {
          OnClientRequest(r, from, bytes);
        }
      });
    });
  }
  for (int c = 0; c < o.clients; ++c) {
    clients_[c].endpoint = r_ + c;
    clients_[c].region = c % r_;
    clients_[c].target = c % r_;
    net_.Attach(r_ + c, [this, c](int, std::string bytes) { OnClientResponse(c, bytes); });
  }
  result_.election_timeout_us = o.config.election_ticks * o.config.tick_us;
}

paxos::Config Cluster::ConfigFor(int r) const {
  paxos::Config c = o_.config;
  c.id = static_cast<uint32_t>(r);
  c.replicas = static_cast<uint32_t>(o_.genesis_voters > 0 ? o_.genesis_voters : r_);
  c.seed = o_.seed * 1000003 + static_cast<uint64_t>(r) * 7919 + nodes_[r].life;
  return c;
}

void Cluster::Open(int r) {
  auto rep = paxos::Replica::Open(ConfigFor(r), nodes_[r].storage.log());
  if (!rep.ok()) {
    Fail("replica " + std::to_string(r) + " failed to open: " + rep.status().ToString());
    return;
  }
  nodes_[r].replica = std::move(*rep);
}

void Cluster::ScheduleTick(int r) {
  const uint64_t life = nodes_[r].life;
  const auto real = static_cast<Time>(static_cast<double>(o_.config.tick_us) / nodes_[r].rate);
  net_.At(net_.Now() + real, [this, r, life] {
    Node& n = nodes_[r];
    if (!n.up || n.life != life || !n.replica) return;
    if (n.paused) {
      n.tick_held = true;  // Resume() ticks, after the held inputs, and reschedules
      return;
    }
    n.replica->Tick(LocalNow(r));
    Process(r);
    ScheduleTick(r);
  });
}

void Cluster::Process(int r) {
  Node& n = nodes_[r];
  while (n.replica && n.replica->HasReady()) {
    paxos::Ready rd = n.replica->Ready();
    // 1. Persist (snapshot first: it drops the log it covers), synced if must_sync.
    Status persisted = n.storage.Persist(rd);
    if (!persisted.ok()) Fail("replica " + std::to_string(r) + " failed to persist: " + persisted.ToString());
    // 2. Send (after checking that what each message claims is durable).
    for (auto& m : rd.messages) {
      if (o_.check_invariants) CheckSend(r, m);
      ++replica_msgs_;
      replica_bytes_ += m.bytes.size();
      if (m.type == MessageType::kHeartbeat || m.type == MessageType::kHeartbeatAck) {
        ++replica_hb_msgs_;
      }
      net_.Send(r, static_cast<int>(m.to), std::move(m.bytes));
    }
    // 3. Apply: load a snapshot handed over by a peer (or found at restart), then check
    // every newly committed slot against what was chosen.
    if (rd.install_snapshot && rd.snapshot) {
      LoadState(r, rd.snapshot->data);
      n.applied_slot = rd.snapshot->index;
    }
    const uint64_t applied = n.replica->applied_index();
    for (uint64_t s = n.applied_slot + 1; s <= applied; ++s) {
      const Entry* e = n.replica->LogEntry(s);
      if (e == nullptr) {
        Fail("replica " + std::to_string(r) + " applied missing slot " + std::to_string(s));
        continue;
      }
      const uint64_t h = HashEntry(*e);
      auto [it, fresh] = chosen_.try_emplace(s, h);
      if (!fresh && it->second != h && o_.check_invariants) {
        Fail("two values chosen for slot " + std::to_string(s) + " (replica " +
             std::to_string(r) + ")");
      }
      if (fresh) {
        for (const auto& c : e->commands) chosen_cmds_.emplace(c.client_id, c.seq);
      }
    }
    n.applied_slot = applied;
    if (rd.members) {
      auto [it, fresh] = memberships_.try_emplace(rd.members->epoch, *rd.members);
      if (!fresh && it->second != *rd.members && o_.check_invariants) {
        Fail("two memberships applied for epoch " + std::to_string(rd.members->epoch) +
             " (replica " + std::to_string(r) + ")");
      }
    }
    for (const Apply& a : rd.apply) ApplyOne(r, a);
    // 4. Serve reads from the state after applying.
    for (const auto& rs : rd.reads) {
      auto it = n.reads.find(rs.request_id);
      if (it == n.reads.end()) continue;
      auto [ep, req, key] = it->second;
      n.reads.erase(it);
      auto kv = n.kv.find(key);
      Reply(r, ep, req, kCodeOk, kv == n.kv.end() ? 0 : kv->second, -1);
    }
    n.replica->Advance();
    if (o_.compact_every_slots > 0 &&
        n.replica->applied_index() >=
            n.replica->snapshot_index() + static_cast<uint64_t>(o_.compact_every_slots)) {
      Status st = n.replica->Compact(SaveState(r));
      if (!st.ok()) Fail("compact failed: " + st.ToString());
    }
  }
}

// The application state as text: "kv" pairs, then the reply cache (part of the replicated
// state: a retried command is answered from it on every replica).
std::string Cluster::SaveState(int r) const {
  const Node& n = nodes_[r];
  std::ostringstream out;
  out << n.kv.size();
  for (const auto& [k, v] : n.kv) out << ' ' << k << ' ' << v;
  out << ' ' << n.last_result.size();
  for (const auto& [client, sr] : n.last_result) {
    out << ' ' << client << ' ' << sr.first << ' ' << sr.second.ok << ' ' << sr.second.out;
  }
  return out.str();
}

void Cluster::LoadState(int r, const std::string& data) {
  Node& n = nodes_[r];
  n.kv.clear();
  n.last_result.clear();
  std::istringstream in(data);
  size_t count = 0;
  in >> count;
  for (size_t i = 0; i < count; ++i) {
    std::string k;
    int64_t v = 0;
    in >> k >> v;
    n.kv[k] = v;
  }
  in >> count;
  for (size_t i = 0; i < count; ++i) {
    uint64_t client = 0, seq = 0;
    KvResult res;
    in >> client >> seq >> res.ok >> res.out;
    n.last_result[client] = {seq, res};
  }
  if (!in) Fail("replica " + std::to_string(r) + " got an unreadable snapshot");
}

void Cluster::CheckSend(int r, const paxos::OutMessage& out) {
  if (out.type != MessageType::kPromise && out.type != MessageType::kAccepted &&
      out.type != MessageType::kAccept) {
    return;
  }
  auto m = paxos::DecodeMessage(out.bytes, 1 << 30);
  if (!m.ok()) {
    Fail("replica " + std::to_string(r) + " sent an undecodable message");
    return;
  }
  // What a crash now would keep, decoded by PaxosLog as recovery would decode it.
  const PaxosStore& st = nodes_[r].storage;
  auto hs = st.DurableHardState();
  if (!hs.ok()) {
    Fail("replica " + std::to_string(r) + " has an unreadable durable hard state: " + hs.status().ToString());
    return;
  }
  if (hs->promised < m->ballot) {
    Fail("persist-before-send: replica " + std::to_string(r) + " answered a ballot it has "
         "not durably promised");
  }
  std::vector<uint64_t> slots = m->slots;
  if (out.type == MessageType::kAccept) {
    for (const auto& e : m->entries) slots.push_back(e.slot);
  }
  std::optional<uint64_t> snapshot_index;  // read only when an entry is not durable itself
  for (uint64_t s : slots) {
    auto e = st.DurableEntry(s);
    if (!e.ok()) {
      Fail("replica " + std::to_string(r) + " has an unreadable durable entry: " + e.status().ToString());
      return;
    }
    if (*e && (*e)->ballot >= m->ballot) continue;
    if (!snapshot_index) {
      auto index = st.DurableSnapshotIndex();
      if (!index.ok()) {
        Fail("replica " + std::to_string(r) + " has an unreadable durable snapshot: " +
             index.status().ToString());
        return;
      }
      snapshot_index = *index;
    }
    if (s <= *snapshot_index) continue;  // covered by a durable snapshot
    Fail("persist-before-send: replica " + std::to_string(r) + " acknowledged slot " +
         std::to_string(s) + " before syncing it");
  }
}

void Cluster::ApplyOne(int r, const Apply& a) {
  Node& n = nodes_[r];
  KvResult res;
  if (!a.duplicate) {
    std::istringstream in(a.command.payload);
    std::string op, key;
    int64_t value = 0, arg = 0;
    in >> op >> key >> value >> arg;
    int64_t& cell = n.kv[key];
    if (op == "put") {
      cell = value;
    } else if (op == "cas") {
      res.ok = cell == arg;
      if (res.ok) cell = value;
    } else if (op == "add") {
      cell += value;
      res.out = cell;
    }
    n.last_result[a.command.client_id] = {a.command.seq, res};
    // When the write took effect (a retry of an older sequence number that commits after
    // a newer one is a duplicate and never does).
    first_applied_us_.try_emplace({a.command.client_id, a.command.seq}, net_.Now());
  } else {
    auto it = n.last_result.find(a.command.client_id);
    if (it == n.last_result.end() || it->second.first != a.command.seq) return;
    res = it->second.second;
  }
  auto w = n.waiting.find({a.command.client_id, a.command.seq});
  if (w != n.waiting.end()) {
    Reply(r, w->second.first, w->second.second, res.ok ? kCodeOk : kCodeFailed, res.out, -1);
    n.waiting.erase(w);
  }
}

void Cluster::OnReplicaMessage(int r, int from, const std::string& bytes) {
  (void)from;
  Node& n = nodes_[r];
  if (!n.replica) return;
  (void)n.replica->Step(bytes, LocalNow(r));
  Process(r);
}

void Cluster::Reply(int r, int endpoint, uint64_t req, int code, int64_t out, int32_t hint) {
  net_.Send(r, endpoint,
            std::to_string(req) + " " + std::to_string(code) + " " + std::to_string(out) +
                " " + std::to_string(hint));
}

void Cluster::OnClientRequest(int r, int from, const std::string& bytes) {
  Node& n = nodes_[r];
  if (!n.replica) return;
  std::istringstream in(bytes);
  uint64_t req = 0, client = 0, seq = 0;
  std::string op, key;
  int64_t value = 0, arg = 0;
  in >> req >> client >> seq >> op >> key >> value >> arg;
  Status st;
  if (op == "get") {
    const uint64_t id = ++next_read_;
    st = n.replica->ReadIndex(id, LocalNow(r));
    if (st.ok()) n.reads[id] = {from, req, key};
  } else {
    paxos::Command cmd;
    cmd.client_id = client;
    cmd.seq = seq;
    cmd.payload = op + " " + key + " " + std::to_string(value) + " " + std::to_string(arg);
    st = n.replica->Propose(std::move(cmd));
    if (st.ok()) n.waiting[{client, seq}] = {from, req};
  }
  if (!st.ok()) Reply(r, from, req, kCodeRedirect, 0, n.replica->leader_hint());
  Process(r);
}

void Cluster::Crash(int r) {
  Node& n = nodes_[r];
  if (!n.up) return;
  n.up = false;
  ++n.life;
  n.paused = false;
  n.held.clear();
  n.tick_held = false;
  net_.SetUp(r, false);
  n.storage.Crash();
  n.replica.reset();
  n.kv.clear();
  n.last_result.clear();
  n.waiting.clear();
  n.reads.clear();
  n.applied_slot = 0;
  n.last_commit = 0;
}

void Cluster::Input(int r, bool from_client, std::function<void()> input) {
  Node& n = nodes_[r];
  if (n.paused) {
    ++result_.held_inputs;
    n.held.emplace_back(from_client, std::move(input));
    return;
  }
  input();
}

void Cluster::Pause(int r, Time duration_us) {
  Node& n = nodes_[r];
  if (!n.up || n.paused) return;
  ++result_.pauses;
  n.paused = true;
  const uint64_t id = ++n.pause_id;
  const uint64_t life = n.life;
  net_.At(net_.Now() + duration_us, [this, r, id, life] {
    const Node& m = nodes_[r];
    if (m.life == life && m.pause_id == id) Resume(r);
  });
}

void Cluster::Resume(int r) {
  Node& n = nodes_[r];
  if (!n.paused) return;
  n.paused = false;
  // Everything that queued up while stopped, each reading the clock now, and no tick in
  // between: a process resumed by SIGCONT first drains its sockets. The peer socket and
  // the client socket are separate queues: the seed picks which one is drained first (each
  // in arrival order), so a client's request may be handled before the peer messages that
  // arrived ahead of it, as in the production server.
  std::vector<std::pair<bool, std::function<void()>>> held = std::move(n.held);
  n.held.clear();
  const bool clients_first = net_.Rng()() % 2 == 0;
  std::stable_partition(held.begin(), held.end(),
                        [clients_first](const auto& h) { return h.first == clients_first; });
  for (auto& input : held) {
    if (n.paused || !n.up) break;
    input.second();
  }
  if (n.tick_held && n.up && n.replica) {
    n.tick_held = false;
    n.replica->Tick(LocalNow(r));
    Process(r);
    ScheduleTick(r);
  }
}

void Cluster::Restart(int r) {
  Node& n = nodes_[r];
  if (n.up) return;
  n.up = true;
  net_.SetUp(r, true);
  Open(r);
  ScheduleTick(r);
}

int Cluster::CurrentLeader() const {
  int best = -1;
  paxos::Ballot b;
  for (int r = 0; r < r_; ++r) {
    const Node& n = nodes_[r];
    if (n.up && n.replica && n.replica->IsLeader() && n.replica->promised() >= b) {
      b = n.replica->promised();
      best = r;
    }
  }
  return best;
}

void Cluster::Nemesis() {
  if (faults_over_) return;
  auto& rng = net_.Rng();
  const int kinds = o_.pauses ? 9 : 8;
  const int kind = static_cast<int>(rng() % static_cast<uint64_t>(kinds + (o_.member_changes ? 4 : 0)));
  if (kind >= kinds) {
    ChangeMembers();
    const Time next = 300'000 + static_cast<Time>(rng() % 1'200'000);
    if (net_.Now() + next < o_.fault_phase_us) net_.At(net_.Now() + next, [this] { Nemesis(); });
    return;
  }
  int down = 0;
  for (const auto& n : nodes_) down += n.up ? 0 : 1;
  switch (kind) {
    case 0: {  // isolate one replica (often the leader) from the others, both ways
      int v = rng() % 2 == 0 ? CurrentLeader() : -1;
      if (v < 0) v = static_cast<int>(rng() % r_);
      for (int p = 0; p < r_; ++p) {
        if (p == v) continue;
        net_.Block(v, p, true);
        net_.Block(p, v, true);
      }
      break;
    }
    case 1: {  // asymmetric: a few directed links
      const int links = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < links; ++i) {
        const int a = static_cast<int>(rng() % r_), b = static_cast<int>(rng() % r_);
        if (a != b) net_.Block(a, b, true);
      }
      break;
    }
    case 2:
    case 3: {  // crash a replica (the leader half of the time); restart it later
      if (!o_.crashes || down >= (r_ - 1) / 2) break;
      int v = kind == 3 ? CurrentLeader() : -1;
      if (v < 0) v = static_cast<int>(rng() % r_);
      Crash(v);
      const Time back = 200'000 + static_cast<Time>(rng() % 2'500'000);
      net_.At(net_.Now() + back, [this, v] { Restart(v); });
      break;
    }
    case 4:
      net_.HealAll();
      break;
    case 5: {  // ask the leader to hand over to a random replica
      const int l = CurrentLeader();
      const int to = static_cast<int>(rng() % r_);
      if (l >= 0 && to != l && !nodes_[l].paused) {
        (void)nodes_[l].replica->TransferLeader(static_cast<uint32_t>(to));
        Process(l);
      }
      break;
    }
    case 8: {  // pause a replica (the leader half of the time), as SIGSTOP would
      int v = rng() % 2 == 0 ? CurrentLeader() : -1;
      if (v < 0) v = static_cast<int>(rng() % r_);
      const Time max = std::max<Time>(o_.pause_us_max, 100'001);
      Pause(v, 100'000 + static_cast<Time>(rng() % static_cast<uint64_t>(max - 100'000)));
      break;
    }
    default: {  // new network weather
      std::uniform_real_distribution<double> p(0.0, 0.08);
      Faults f;
      f.loss = p(rng);
      f.duplicate = p(rng);
      f.jitter_us = static_cast<Time>(rng() % 40'000);
      net_.SetFaults(f);
      break;
    }
  }
  const Time next = 300'000 + static_cast<Time>(rng() % 1'200'000);
  if (net_.Now() + next < o_.fault_phase_us) net_.At(net_.Now() + next, [this] { Nemesis(); });
}

void Cluster::ChangeMembers() {
  const int l = CurrentLeader();
  if (l < 0 || nodes_[l].paused) return;
  paxos::Replica& leader = *nodes_[l].replica;
  const paxos::Membership& m = leader.members();
  std::vector<uint32_t> spares, learners, voters;
  for (int r = 0; r < r_; ++r) {
    const auto id = static_cast<uint32_t>(r);
    if (m.IsVoter(id)) {
      if (r != l) voters.push_back(id);
    } else if (m.IsLearner(id)) {
      learners.push_back(id);
    } else {
      spares.push_back(id);
    }
  }
  auto& rng = net_.Rng();
  auto pick = [&rng](const std::vector<uint32_t>& v) { return v[rng() % v.size()]; };
  // Grow by a learner, promote it, shrink back by a voter (never below three), and now and
  // then drop a learner before it is promoted.
  const int roll = static_cast<int>(rng() % 8);
  Status st;
  if (!learners.empty() && roll < 5) {
    st = leader.ChangeMembers(paxos::MemberChange::kPromote, pick(learners));
  } else if (!learners.empty() && roll == 5) {
    st = leader.ChangeMembers(paxos::MemberChange::kRemove, pick(learners));
  } else if (voters.size() + 1 > 3 && (spares.empty() || roll % 2 == 0)) {
    st = leader.ChangeMembers(paxos::MemberChange::kRemove, pick(voters));
  } else if (!spares.empty()) {
    st = leader.ChangeMembers(paxos::MemberChange::kAddLearner, pick(spares));
  }
  (void)st;  // busy (a change in flight, a learner behind) or not ready: tried again later
  Process(l);
}

void Cluster::EndFaults() {
  faults_over_ = true;
  net_.HealAll();
  Faults f;
  f.jitter_us = o_.faults ? 5'000 : o_.calm_jitter_us;
  net_.SetFaults(f);
  for (int r = 0; r < r_; ++r) {
    Restart(r);
    Resume(r);
  }
}

void Cluster::StartOp(int c) {
  Client& cl = clients_[c];
  if (cl.done_ops >= o_.ops_per_client) return;
  auto& rng = net_.Rng();
  HistoryOp op;
  op.client = c;
  op.region = cl.region;
  op.key = "k" + std::to_string(rng() % static_cast<uint64_t>(o_.keys));
  int kind = static_cast<int>(rng() % 10);
  if (o_.writes_only && kind >= 3 && kind < 6) kind = 0;
  if (kind < 3) {
    op.op = "put";
    op.value = static_cast<int64_t>(rng() % 10);
  } else if (kind < 6) {
    op.op = "get";
  } else if (kind < 8) {
    op.op = "cas";
    op.arg = static_cast<int64_t>(rng() % 10);
    op.value = static_cast<int64_t>(rng() % 10);
  } else {
    op.op = "add";
    op.value = 1 + static_cast<int64_t>(rng() % 5);
  }
  op.call_us = net_.Now();
  cl.cur = op;
  cl.cur_seq = op.op == "get" ? 0 : ++cl.seq;
  cl.busy = true;
  cl.attempts = 0;
  SendAttempt(c);
}

void Cluster::SendAttempt(int c) {
  Client& cl = clients_[c];
  if (++cl.attempts > o_.client_attempts_max) {
    Finish(c, /*unknown=*/true, false, 0);
    return;
  }
  if (o_.clients_know_leader) {
    const int l = CurrentLeader();
    if (l >= 0) cl.target = l;
  }
  cl.req_id = ++next_req_;
  const uint64_t client_id = static_cast<uint64_t>(c) + 1;
  std::string msg = std::to_string(cl.req_id) + " " + std::to_string(client_id) + " " +
                    std::to_string(cl.cur_seq) + " " + cl.cur.op + " " + cl.cur.key + " " +
                    std::to_string(cl.cur.value) + " " + std::to_string(cl.cur.arg);
  net_.Send(cl.endpoint, cl.target, std::move(msg));
  const uint64_t req = cl.req_id;
  net_.At(net_.Now() + o_.client_timeout_us, [this, c, req] {
    Client& k = clients_[c];
    if (!k.busy || k.req_id != req) return;
    k.target = (k.target + 1) % r_;
    SendAttempt(c);
  });
}

void Cluster::OnClientResponse(int c, const std::string& bytes) {
  Client& cl = clients_[c];
  std::istringstream in(bytes);
  uint64_t req = 0;
  int code = 0;
  int64_t out = 0;
  int32_t hint = -1;
  in >> req >> code >> out >> hint;
  if (!cl.busy || req != cl.req_id) return;  // an answer to an abandoned attempt
  if (code == kCodeRedirect) {
    cl.target = (hint >= 0 && hint != cl.target) ? hint : (cl.target + 1) % r_;
    cl.req_id = ++next_req_;  // invalidates the pending timeout
    const uint64_t rid = cl.req_id;
    net_.At(net_.Now() + 30'000, [this, c, rid] {
      if (clients_[c].busy && clients_[c].req_id == rid) SendAttempt(c);
    });
    return;
  }
  Finish(c, false, code == kCodeOk, out);
}

void Cluster::Finish(int c, bool unknown, bool ok, int64_t out) {
  Client& cl = clients_[c];
  cl.busy = false;
  cl.req_id = ++next_req_;
  HistoryOp op = cl.cur;
  op.seq = cl.cur_seq;
  op.return_us = net_.Now();
  op.unknown = unknown;
  op.ok = ok;
  op.out = out;
  if (!(unknown && op.op == "get")) result_.history.push_back(op);
  if (!unknown && op.op != "get") acked_writes_.emplace(static_cast<uint64_t>(c) + 1, cl.cur_seq);
  if (++cl.done_ops >= o_.ops_per_client) {
    ++clients_done_;
    return;
  }
  const Time think = static_cast<Time>(net_.Rng()() % static_cast<uint64_t>(o_.think_us_max + 1));
  net_.At(net_.Now() + think, [this, c] { StartOp(c); });
}

void Cluster::CheckStep() {
  ++steps_;
  for (int r = 0; r < r_; ++r) {
    Node& n = nodes_[r];
    if (!n.up || !n.replica) continue;
    const uint64_t c = n.replica->commit_index();
    if (c < n.last_commit) {
      Fail("replica " + std::to_string(r) + " commit index went back");
    }
    n.last_commit = c;
    // Committed entries never change: spot-check the newest every step, and every slot
    // of one replica (rotating) every 512 steps.
    auto check = [&](uint64_t s) {
      const Entry* e = n.replica->LogEntry(s);
      auto it = chosen_.find(s);
      if (e == nullptr || (it != chosen_.end() && it->second != HashEntry(*e))) {
        Fail("committed slot " + std::to_string(s) + " changed on replica " +
             std::to_string(r));
      }
    };
    const uint64_t first = n.replica->snapshot_index() + 1;
    if (c >= first) check(c);
    if (steps_ % 512 == 0 && static_cast<int>((steps_ / 512) % r_) == r) {
      for (uint64_t s = first; s <= c; ++s) check(s);
    }
  }
}

void Cluster::CheckFinal() {
  uint64_t max_commit = 0;
  paxos::Membership final_members;
  for (const auto& n : nodes_) {
    if (n.replica && n.replica->commit_index() >= max_commit) {
      max_commit = n.replica->commit_index();
      final_members = n.replica->members();
    }
  }
  result_.member_changes = final_members.epoch;
  for (int r = 0; r < r_; ++r) {
    const Node& n = nodes_[r];
    if (!n.replica) {
      Fail("replica " + std::to_string(r) + " is not running after healing");
      continue;
    }
    // A replica outside the group (removed, or never added) is sent nothing: it stays where
    // it was. Every member must have caught up and agree on the membership.
    if (!final_members.IsMember(static_cast<uint32_t>(r))) continue;
    if (n.replica->members() != final_members) {
      Fail("replica " + std::to_string(r) + " ends in membership epoch " +
           std::to_string(n.replica->members().epoch) + ", the group in epoch " +
           std::to_string(final_members.epoch));
    }
    if (n.replica->applied_index() != max_commit) {
      const auto& st = n.replica->stats();
      Fail("replica " + std::to_string(r) + " did not catch up after healing: applied " +
           std::to_string(n.replica->applied_index()) + " of " + std::to_string(max_commit) +
           " (snapshot " + std::to_string(n.replica->snapshot_index()) + ", leader hint " +
           std::to_string(n.replica->leader_hint()) + ", snapshots installed " +
           std::to_string(st.snapshots_installed) + ", malformed " +
           std::to_string(st.malformed) + ")");
    }
    result_.malformed += n.replica->stats().malformed;
    result_.elections += n.replica->stats().elections;
    result_.snapshots_sent += n.replica->stats().snapshots_sent;
    result_.snapshots_installed += n.replica->stats().snapshots_installed;
  }
  for (const auto& n : nodes_) {  // members or not
    if (!n.replica) continue;
    result_.lost_changes += n.replica->stats().lost_changes;
    result_.recovered_dropped += n.replica->stats().recovered_dropped;
  }
  for (const auto& w : acked_writes_) {
    if (!chosen_cmds_.count(w)) {
      Fail("acknowledged write of client " + std::to_string(w.first) + " seq " +
           std::to_string(w.second) + " is missing");
      break;
    }
  }
  if (clients_done_ < o_.clients) Fail("clients did not finish before the deadline");
  if (o_.config.preferred_leader && final_members.IsVoter(*o_.config.preferred_leader) &&
      CurrentLeader() != static_cast<int>(*o_.config.preferred_leader)) {
    Fail("preferred leader " + std::to_string(*o_.config.preferred_leader) +
         " did not take over after healing (leader " + std::to_string(CurrentLeader()) + ")");
  }
  result_.commands_applied = chosen_cmds_.size();
}

PaxosSimResult Cluster::Run() {
  for (int r = 0; r < r_; ++r) {
    Open(r);
    ScheduleTick(r);
  }
  auto& rng = net_.Rng();
  for (int c = 0; c < o_.clients; ++c) {
    net_.At(static_cast<Time>(rng() % 500'000), [this, c] { StartOp(c); });
  }
  if (!o_.faults) {
    Faults f;
    f.jitter_us = o_.calm_jitter_us;
    net_.SetFaults(f);
  } else {
    Faults f;
    f.jitter_us = 10'000;
    net_.SetFaults(f);
    net_.At(200'000, [this] { Nemesis(); });
  }
  net_.At(o_.fault_phase_us, [this] { EndFaults(); });
  if (o_.crash_leader_at_us) {
    net_.At(*o_.crash_leader_at_us, [this] {
      const int l = CurrentLeader();
      if (l < 0) return;
      for (const auto& n : nodes_) {
        if (n.replica) commit_at_crash_ = std::max(commit_at_crash_, n.replica->commit_index());
      }
      crash_time_ = net_.Now();
      Crash(l);
    });
  }
  if (o_.measure_from_us && o_.measure_to_us) {
    net_.At(*o_.measure_from_us, [this] {
      window_start_msgs_ = replica_msgs_;
      window_start_bytes_ = replica_bytes_;
      window_start_cmds_ = chosen_cmds_.size();
      window_start_hb_ = replica_hb_msgs_;
    });
    net_.At(*o_.measure_to_us, [this] {
      result_.window_messages = replica_msgs_ - window_start_msgs_;
      result_.window_bytes = replica_bytes_ - window_start_bytes_;
      result_.window_commands = chosen_cmds_.size() - window_start_cmds_;
      result_.window_heartbeat_messages = replica_hb_msgs_ - window_start_hb_;
    });
  }
  std::optional<Time> settle_until;
  while (result_.ok && net_.Step()) {
    if (o_.check_invariants) CheckStep();
    if (crash_time_ && !result_.new_leader_us && CurrentLeader() >= 0) {
      result_.new_leader_us = net_.Now() - *crash_time_;
    }
    if (crash_time_ && !result_.failover_us) {
      for (const auto& n : nodes_) {
        if (n.replica && n.replica->commit_index() > commit_at_crash_) {
          result_.failover_us = net_.Now() - *crash_time_;
          break;
        }
      }
    }
    if (!settle_until && clients_done_ >= o_.clients && faults_over_) {
      // Give catch-up a few seconds after the last answer, then check convergence.
      settle_until = net_.Now() + 3'000'000;
    }
    if (settle_until && net_.Now() >= *settle_until) break;
    if (net_.Now() > o_.deadline_us) break;
  }
  if (result_.ok) CheckFinal();
  // Pin down unanswered writes with what the simulator knows (see HistoryOp::unknown).
  std::vector<HistoryOp> history;
  history.reserve(result_.history.size());
  for (HistoryOp& op : result_.history) {
    if (op.unknown) {
      auto it = first_applied_us_.find({static_cast<uint64_t>(op.client) + 1, op.seq});
      if (it == first_applied_us_.end()) continue;
      op.return_us = std::max(it->second, op.call_us);
    }
    history.push_back(std::move(op));
  }
  result_.history = std::move(history);
  result_.leader_at_end = CurrentLeader();
  result_.trace_hash = net_.TraceHash();
  result_.end_us = net_.Now();
  result_.net = net_.stats();
  return std::move(result_);
}

}  // namespace

PaxosSimResult RunPaxosSim(const PaxosSimOptions& options) {
  Cluster cluster(options);
  return cluster.Run();
}

void WriteHistories(const std::string& path, const std::vector<PaxosSimResult>& runs) {
  nlohmann::json root;
  root["histories"] = nlohmann::json::array();
  for (const auto& run : runs) {
    nlohmann::json h;
    h["seed"] = run.seed;
    h["ops"] = nlohmann::json::array();
    for (const auto& op : run.history) {
      h["ops"].push_back({{"client", op.client},
                          {"op", op.op},
                          {"key", op.key},
                          {"value", op.value},
                          {"arg", op.arg},
                          {"call", op.call_us},
                          {"return", op.return_us},
                          {"ok", op.ok},
                          {"out", op.out},
                          {"unknown", op.unknown}});
    }
    root["histories"].push_back(std::move(h));
  }
  std::ofstream f(path, std::ios::trunc);
  f << root.dump();
}

std::optional<std::vector<uint64_t>> PorcupineRejects(const std::string& checker, const std::string& path,
                                                      std::vector<uint64_t>* undecided) {
  const std::string cmd = "'" + checker + "' -histories '" + path + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  std::vector<uint64_t> rejected;
  bool summary = false;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string word;
    ls >> word;
    if (word == "REJECT") {
      uint64_t seed = 0;
      std::string why;
      ls >> seed >> why;
      rejected.push_back(seed);
      if (why == "unknown" && undecided != nullptr) undecided->push_back(seed);
    } else if (word == "CHECKED") {
      summary = true;
    }
  }
  if (!summary) return std::nullopt;
  return rejected;
}

}  // namespace geokv::sim
