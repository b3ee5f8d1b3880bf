// CrdtHistory: the record of every acknowledged local CRDT operation in a simulation, and
// the checkers that judge the final state against it.
//
// The checks do not reuse the CRDT join code, so a wrong join cannot hide itself:
//  * set and multi-value register: the live dots of the final state must be exactly the
//    dots minted by acknowledged operations minus those covered by the context some
//    acknowledged operation retired. A dot present that should be retired is a removed
//    element or deleted value come back; a dot missing is a lost update.
//  * counter: the value equals the sum of acknowledged increments.
//  * LWW register: the value is that of the acknowledged write with the greatest stamp.
// An operation is acknowledged when the Ready that followed it was persisted; operations
// lost in a crash before that were never acknowledged and are dropped from the history.
//
// Not thread-safe; owned by the simulation that records into it.
#ifndef GEOKV_CORE_SIM_CRDT_HISTORY_H_
#define GEOKV_CORE_SIM_CRDT_HISTORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "replication/crdt/crdt_value.h"

namespace geokv::sim {

struct CrdtOpRecord {
  crdt::CrdtType type = crdt::CrdtType::kLww;
  std::string key;
  // set / mvreg
  std::optional<crdt::Dot> minted;
  std::string value;  // element or register value (for minted dots) or LWW value
  crdt::CausalContext retired;
  // counter
  int64_t delta = 0;
  // lww
  crdt::HlcTimestamp ts;
  bool lww_delete = false;
};

class CrdtHistory {
 public:
  explicit CrdtHistory(int nodes) : pending_(nodes) {}

  void Record(int node, CrdtOpRecord op) { pending_[node].push_back(std::move(op)); }
  // The node persisted: its pending operations are acknowledged.
  void AckPending(int node);
  // The node crashed before persisting: its pending operations never happened.
  void DropPending(int node) { pending_[node].clear(); }

  size_t acked() const { return acked_count_; }

  // Compares the final state of every key (taken from one region after convergence) with
  // the history; returns human-readable violations (empty when correct).
  std::vector<std::string> Check(
      const std::map<std::string, crdt::CrdtValue, std::less<>>& final_states) const;

 private:
  std::vector<std::vector<CrdtOpRecord>> pending_;
  std::map<std::string, std::vector<CrdtOpRecord>> acked_;  // by key
  size_t acked_count_ = 0;
};

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_CRDT_HISTORY_H_
