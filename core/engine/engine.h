// Engine: everything one geokv node does, as a single-threaded state machine driven by an
// Env (clock, transport, storage, randomness) — the same code under the deterministic
// simulator and in production (geokvd's event loop).
//
// A cluster has one node per region; node ids are region indexes. Each node runs:
//  * one Paxos replica per strong shard (keys are hashed onto `shards` groups, each with a
//    replica in every region and an optional preferred leader region), plus one metadata
//    group (the policy table);
//  * one CRDT disseminator for every eventual-mode key (replicated to every region).
// Each request is routed by the policy (longest prefix -> mode). Strong requests are
// served by the shard's leader: a follower forwards them there (or fails fast with
// kUnavailable when it knows no leader); reads use the leader's lease or a read-index round.
// Eventual requests are served locally and acknowledged once durable here.
//
// The policy lives in the metadata group; each node routes by the policy it has applied,
// so a change takes effect in a region when that region applies it (one heartbeat after
// the commit, normally). A change that would re-map keys holding data is refused, so the
// data of a key is never reinterpreted; clients create data under a new prefix once their
// region lists the new rule.
//
// Every round of the event loop persists what all protocols asked for in one Storage
// write (one fsync when any of them needs one), then sends, then applies (persist before
// send, with group commit).
//
// Thread-safety: none. Submit, Step and Tick must be called from one thread; callbacks run
// on it, inside those calls. Ownership: the Engine borrows the Env, which must outlive it.
#ifndef GEOKV_CORE_ENGINE_ENGINE_H_
#define GEOKV_CORE_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/engine/limits.h"
#include "core/engine/storage.h"
#include "core/engine/crdt_store.h"
#include "core/engine/env.h"
#include "core/engine/paxos_log.h"
#include "core/engine/policy.h"
#include "core/engine/request.h"
#include "replication/crdt/disseminator.h"
#include "replication/paxos/replica.h"

namespace geokv {

struct EngineOptions {
  uint32_t self = 0;     // this node's id: the index of its region
  uint32_t regions = 1;  // nodes in the cluster, one per region
  uint32_t shards = 4;   // strong-mode Paxos groups
  // Per shard, the region whose replica should lead it (empty: no preference).
  std::vector<std::optional<uint32_t>> preferred_leader;
  Policy policy;         // the policy until the metadata group says otherwise
  Limits limits;
  storage::Durability durability = storage::Durability::kSync;

  int64_t tick_us = 10'000;
  int heartbeat_ticks = 5;
  int election_ticks = 30;
  int resend_ticks = 30;
  int64_t lease_us = 250'000;
  double clock_drift_max = 0.001;
  int64_t request_timeout_ms = 5'000;
  int64_t crdt_batch_interval_us = 5'000;
  int64_t crdt_resend_interval_us = 600'000;
  uint64_t compact_every_slots = 10'000;  // strong shards snapshot this often
  size_t pending_requests_max = 100'000;

  // TEST ONLY: passed to every Paxos group (the simulator proves its checkers catch it).
  bool unsafe_skip_phase1_recovery = false;
};

struct EngineStats {
  uint64_t requests = 0;
  uint64_t forwarded = 0;
  uint64_t timeouts = 0;
  uint64_t bad_messages = 0;      // envelopes that failed verification
  uint64_t storage_writes = 0;    // one per event-loop round that had something to persist
  uint64_t storage_syncs = 0;
  uint64_t strong_applied = 0;
  uint64_t snapshots = 0;
};

class Engine {
 public:
  using Callback = std::function<void(Response)>;

  // Recovers every group and the CRDT state from env.Store().
  static StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options, Env& env);

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts an operation; `done` runs exactly once, possibly before Submit returns.
  // kUnavailable and kBusy mean the operation was refused before it could take effect;
  // kTimeout on a write means its outcome is unknown.
  void Submit(Request request, Callback done);
  // A message from node `from`. Bad messages are dropped and counted.
  void Step(uint32_t from, std::string_view bytes);
  // Advances time to env.NowUs(): protocol timers, request deadlines.
  void Tick();

  // Introspection.
  const Policy& policy() const { return policy_; }
  const EngineStats& stats() const { return stats_; }
  uint32_t ShardOf(std::string_view key) const;
  bool IsLeader(uint32_t group) const;
  int32_t LeaderOf(uint32_t group) const;
  uint32_t groups() const { return static_cast<uint32_t>(groups_.size()); }
  const crdt::Disseminator& disseminator() const { return *crdt_; }
  const paxos::Replica& replica(uint32_t group) const { return *groups_[group].replica; }
  // Human-readable lines for `geokv status`.
  std::vector<std::string> StatusLines() const;
  // Reads an applied strong value directly (tests and checkers; not linearizable).
  StatusOr<std::string> ReadStrongForTest(std::string_view key) const;

 private:
  struct Group {
    std::unique_ptr<PaxosLog> log;
    std::unique_ptr<paxos::Replica> replica;
    uint64_t applied = 0;       // highest slot applied to the state machine (persisted)
    uint64_t compacted_at = 0;  // applied slot of the last snapshot
  };
  struct Pending {
    Callback done;
    int64_t deadline_us = 0;
    uint64_t request_id = 0;    // echoed in the response
    bool write = false;         // forwards: the request changes state
    // Forwards: what was sent, where, and how often, so a refusal by a node that lost
    // leadership can be re-forwarded to the new leader under the same Paxos session.
    Request forwarded;
    uint32_t group = 0;
    uint32_t sent_to = 0;
    int attempts = 0;
  };
  static constexpr int kForwardAttemptsMax = 3;
  struct PendingRead {
    Request request;
    Callback done;
    int64_t deadline_us = 0;
  };

  Engine(const EngineOptions& options, Env& env);
  Status Recover();

  void Dispatch(Request request, Callback done, bool forwarded);
  void SubmitStrong(uint32_t group, Request request, Callback done, bool forwarded);
  void SubmitEventual(Mode mode, const Request& request, Callback done);
  Status CheckRequest(const Request& request) const;
  Status CheckPolicyChange(const Request& request) const;
  int64_t DeadlineUs(const Request& request) const;

  // The event-loop round: persist, send, apply, answer; repeated while there is work.
  void Process();
  Response ApplyCommand(uint32_t group, const paxos::Apply& apply);
  Response ServeRead(uint32_t group, const Request& request);
  std::optional<std::string> ReadStrong(uint32_t group, std::string_view key) const;
  void WriteStrong(uint32_t group, std::string_view key, std::optional<std::string> value);
  std::string SnapshotOf(uint32_t group) const;
  Status InstallSnapshot(uint32_t group, std::string_view data, uint64_t index);
  void SendEnvelope(uint32_t to, uint8_t channel, uint32_t group, std::string_view payload);
  // Re-sends a refused forward to the shard's current leader; false when it cannot.
  bool Reforward(uint64_t fid, Pending& pending);
  void Fail(Status status);

  const EngineOptions options_;
  Env& env_;

  Policy policy_;
  std::vector<Group> groups_;  // shards, then the metadata group
  storage::WriteBatch round_batch_;   // the current round's persistence (all protocols)
  bool round_sync_ = false;
  CrdtStore crdt_store_;
  std::unique_ptr<crdt::Disseminator> crdt_;
  std::vector<Callback> crdt_acks_;   // local CRDT operations waiting to be durable

  // Applied writes of the current round, readable before they reach the Storage.
  std::map<std::string, std::optional<std::string>, std::less<>> overlay_;
  storage::WriteBatch apply_batch_;

  uint64_t client_id_ = 0;  // this incarnation's Paxos client id (random, so never reused)
  uint64_t next_seq_ = 1;
  uint64_t next_id_ = 1;
  std::map<std::pair<uint64_t, uint64_t>, Pending> proposals_;  // by (client id, seq)
  std::map<uint64_t, PendingRead> reads_;     // by read id
  std::map<uint64_t, Pending> forwards_;      // by forward id
  Status failed_;  // set when the Storage failed: the engine refuses all further work
  bool processing_ = false;
  EngineStats stats_;
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_ENGINE_H_
