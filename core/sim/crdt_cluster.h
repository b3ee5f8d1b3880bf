// CrdtCluster: one crdt::Disseminator per region on the shared simulated network.
//
// Each region has two clocks, as the engine's Env does: a monotonic one (the shared
// virtual time plus clock_skew_us, fed to Tick) and a wall clock (an epoch plus
// wall_offset_us plus the virtual time scaled by wall_drift_ppm, fed to ObserveWallClock
// before every input; SetWallOffset makes it jump). Regions' wall clocks disagree by
// seconds and drift apart, as real ones do.
//
// Each region runs a tick every tick_us of its own (possibly skewed) clock; on a tick it
// ticks the state machine and handles the Ready batch as the engine would: persist into
// the region's durable image (group commit: everything since the last tick), then send,
// then report applied keys. A crash discards the state machine and everything not yet
// persisted (so operations since the last tick are lost and never acknowledged); a
// restart rebuilds the machine from the durable image.
//
// Local operations go through the cluster so that the history records them with the
// facts the checkers need (minted dots, retired contexts, stamps).
//
// Ownership: borrows the Network (must outlive the cluster); owns machines, images and
// the history. Not thread-safe (the simulation is single-threaded).
#ifndef GEOKV_CORE_SIM_CRDT_CLUSTER_H_
#define GEOKV_CORE_SIM_CRDT_CLUSTER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/sim/crdt_history.h"
#include "core/sim/network.h"
#include "replication/crdt/disseminator.h"

namespace geokv::sim {

struct CrdtClusterOptions {
  crdt::DisseminatorOptions node;  // self and regions are filled in per region
  Time tick_us = 5000;
  std::vector<Time> clock_skew_us;  // per region; missing entries mean no skew
  int64_t wall_epoch_us = 1'700'000'000'000'000;  // wall clock at virtual time 0
  std::vector<int64_t> wall_offset_us;  // per region; missing entries mean none
  std::vector<double> wall_drift_ppm;   // per region; missing entries mean none
};

class CrdtCluster {
 public:
  CrdtCluster(Network* net, CrdtClusterOptions options);

  int size() const { return static_cast<int>(nodes_.size()); }
  bool up(int i) const { return nodes_[i] != nullptr; }
  // The region's machine; the region must be up.
  crdt::Disseminator& node(int i) { return *nodes_[i]; }

  Status SetAdd(int i, const std::string& key, const std::string& element);
  Status SetRemove(int i, const std::string& key, const std::string& element);
  Status AddCounter(int i, const std::string& key, int64_t delta);
  Status PutLww(int i, const std::string& key, const std::string& value);
  Status DeleteLww(int i, const std::string& key);
  // `blind` writes with an empty context (a writer that read nothing).
  Status WriteMv(int i, const std::string& key, const std::string& value, bool blind);
  Status DeleteMv(int i, const std::string& key);

  void Crash(int i);
  void Restart(int i);
  // Steps region i's wall clock to a new offset (a jump, forwards or backwards).
  void SetWallOffset(int i, int64_t offset_us);
  int64_t WallNow(int i) const;
  int64_t wall_offset(int i) const { return wall_offset_us_[i]; }

  const CrdtHistory& history() const { return history_; }
  // Violations seen while operating (a put that did not take effect locally, a restart
  // that could not read its state back); the scenario adds them to its errors.
  const std::vector<std::string>& errors() const { return errors_; }
  // Called after a region processed a received message (state changes are visible in
  // memory from then on; benchmarks use it to time convergence).
  std::function<void(int node)> on_step;

  // Sum over regions of messages/bytes handed to the network by the machines.
  uint64_t bytes_sent() const;
  // Sums of the stats of every region over all its lives.
  uint64_t Sum(uint64_t crdt::DisseminatorStats::*field) const;
  uint64_t hlc_remote_ahead() const { return Sum(&crdt::DisseminatorStats::hlc_remote_ahead); }
  uint64_t transfers_completed() const { return Sum(&crdt::DisseminatorStats::transfers_completed); }
  uint64_t messages_bad() const { return Sum(&crdt::DisseminatorStats::messages_bad); }
  uint64_t tombstones_collected() const { return Sum(&crdt::DisseminatorStats::tombstones_collected); }

 private:
  Time LocalNow(int i) const;
  // Feeds region i its wall clock (before every input, as the engine does).
  void Wall(int i);
  crdt::HlcTimestamp LwwStamp(int i, const std::string& key) const;
  // Records an error unless the register now holds `value` (nullopt: deleted) under a
  // stamp above `before`; returns the write's stamp.
  crdt::HlcTimestamp CheckLwwTookEffect(int i, const std::string& key, const std::optional<std::string>& value,
                                        const crdt::HlcTimestamp& before);
  void OnTick(int i);
  void HandleReady(int i);
  void ScheduleTick(int i);

  Network* net_;
  const CrdtClusterOptions options_;
  std::vector<std::unique_ptr<crdt::Disseminator>> nodes_;
  std::vector<crdt::DurableImage> images_;
  std::vector<crdt::DisseminatorStats> dead_stats_;  // accumulated over crashed lives
  std::vector<int64_t> wall_offset_us_;
  CrdtHistory history_;
  std::vector<std::string> errors_;
};

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_CRDT_CLUSTER_H_
