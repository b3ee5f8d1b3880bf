// A tiny synchronous driver for unit tests: N replicas, each on its own sim::PaxosStore (the
// production PaxosLog over storage::MemoryStorage), a FIFO of messages delivered by hand,
// links that can be cut. Follows the Ready contract: persist (and sync), then send, then
// apply. The first `voters` replicas form the genesis group (Config::replicas); the others
// (ids voters..n-1) start as joiners that know of no group until a leader adds them.
#ifndef GEOKV_TESTS_REPLICATION_PAXOS_GROUP_H_
#define GEOKV_TESTS_REPLICATION_PAXOS_GROUP_H_

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "core/sim/paxos_store.h"
#include "replication/paxos/replica.h"

namespace geokv::paxos::testing {

class Group {
 public:
  struct InFlight {
    uint32_t from;
    OutMessage msg;
  };

  explicit Group(int n, Config base = Config{}) : Group(n, n, base) {}
  // n replicas of which the first `voters` are the genesis voters.
  Group(int n, int voters, Config base = Config{})
      : base_(base), voters_(voters), st_(n), r_(n), applied_(n), reads_(n), installed_(n),
        members_(n) {
    for (int i = 0; i < n; ++i) Open(i);
  }

  Config ConfigFor(int i) const {
    Config c = base_;
    c.id = static_cast<uint32_t>(i);
    c.replicas = static_cast<uint32_t>(voters_);
    c.seed = 100 + static_cast<uint64_t>(i);
    return c;
  }
  void Open(int i) {
    auto rep = Replica::Open(ConfigFor(i), st_[i].log());
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    r_[i] = std::move(*rep);
    applied_[i].clear();
    members_[i].clear();
  }
  // Power loss and restart from what storage kept.
  void Restart(int i) {
    Crash(i);
    Open(i);
  }
  bool up(int i) const { return r_[i] != nullptr; }
  Replica& at(int i) { return *r_[i]; }
  sim::PaxosStore& storage(int i) { return st_[i]; }
  int size() const { return static_cast<int>(r_.size()); }
  std::vector<Apply>& applied(int i) { return applied_[i]; }
  std::vector<ReadState>& reads(int i) { return reads_[i]; }
  std::vector<Snapshot>& installed(int i) { return installed_[i]; }
  // Every Ready::members replica i reported since it was last opened.
  std::vector<Membership>& members_reported(int i) { return members_[i]; }
  std::deque<InFlight>& queue() { return q_; }

  void Pump(int i) {
    if (!r_[i]) return;
    while (r_[i]->HasReady()) {
      Ready rd = r_[i]->Ready();
      ASSERT_TRUE(st_[i].Persist(rd).ok());  // synced when rd.must_sync
      if (rd.snapshot && rd.install_snapshot) installed_[i].push_back(*rd.snapshot);
      for (auto& m : rd.messages) q_.push_back(InFlight{static_cast<uint32_t>(i), std::move(m)});
      for (auto& a : rd.apply) applied_[i].push_back(a);
      for (auto& rs : rd.reads) reads_[i].push_back(rs);
      if (rd.members) members_[i].push_back(*rd.members);
      r_[i]->Advance();
    }
  }
  void PumpAll() {
    for (int i = 0; i < size(); ++i) Pump(i);
  }
  // Delivers queued messages (and the ones they cause) until quiet or `limit` messages.
  int Deliver(int limit = 100000) {
    PumpAll();
    int n = 0;
    while (!q_.empty() && n < limit) {
      InFlight m = std::move(q_.front());
      q_.pop_front();
      ++n;
      const int to = static_cast<int>(m.msg.to);
      if (!r_[to] || cut_.count({static_cast<int>(m.from), to})) continue;
      if (m.msg.bytes.size() > max_message_bytes_) max_message_bytes_ = m.msg.bytes.size();
      if (filter_) {
        const int copies = filter_(m);
        if (copies == 0) continue;
        if (copies > 1) q_.push_back(m);  // a duplicate, delivered later (reordered)
      }
      (void)r_[to]->Step(m.msg.bytes, now_);
      Pump(to);
    }
    return n;
  }
  void Tick(int i, int ticks = 1) {
    for (int k = 0; k < ticks; ++k) {
      now_ += base_.tick_us;
      if (r_[i]) r_[i]->Tick(now_);
      Pump(i);
    }
  }
  // Every replica ticks once per step; messages are delivered after each step.
  void Run(int steps) {
    for (int s = 0; s < steps; ++s) {
      now_ += base_.tick_us;
      for (int i = 0; i < size(); ++i) {
        if (r_[i]) r_[i]->Tick(now_);
        Pump(i);
      }
      Deliver();
    }
  }
  void Cut(int a, int b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void CutDirected(int from, int to) { cut_.insert({from, to}); }
  void Isolate(int a) {
    for (int b = 0; b < size(); ++b) {
      if (b != a) Cut(a, b);
    }
  }
  void HealAll() { cut_.clear(); }
  void Crash(int i) {
    r_[i].reset();
    st_[i].Crash();
  }
  int Leader() const {
    for (int i = 0; i < static_cast<int>(r_.size()); ++i) {
      if (r_[i] && r_[i]->IsLeader()) return i;
    }
    return -1;
  }
  // Elects replica i by running its election timeout out first.
  void Elect(int i) {
    // The others run one tick short of the minimum election timeout: none of them can time
    // out yet. If i's first PreVote fails (they heard from a leader and grant PreVotes only
    // after a full election timeout of silence), they run one tick more. A replica that is
    // not a voter never counts towards its timeout: it is left alone.
    for (int j = 0; j < size(); ++j) {
      while (j != i && r_[j] && r_[j]->members().IsVoter(static_cast<uint32_t>(j)) &&
             r_[j]->election_elapsed_ticks() < base_.election_ticks - 1) {
        Tick(j);
      }
    }
    Deliver();
    const uint64_t pre_votes = r_[i]->stats().pre_votes;
    bool nudged = false;
    for (int k = 0; k < 4 * base_.election_ticks && !r_[i]->IsLeader(); ++k) {
      Tick(i);
      Deliver();
      if (!nudged && r_[i]->stats().pre_votes > pre_votes && !r_[i]->IsLeader()) {
        nudged = true;
        for (int j = 0; j < size(); ++j) {
          if (j != i && r_[j]) Tick(j, 1);
        }
        Deliver();
      }
    }
    ASSERT_TRUE(r_[i]->IsLeader());
  }
  int64_t now() const { return now_; }
  // Largest message delivered so far.
  size_t max_message_bytes() const { return max_message_bytes_; }
  // Network faults for Deliver: returns how many copies of a message to deliver (0: lost,
  // 2: duplicated). Unset: exactly one.
  void SetFilter(std::function<int(const InFlight&)> f) { filter_ = std::move(f); }

 private:
  Config base_;
  int voters_;  // genesis voters: ids 0..voters_-1
  std::vector<sim::PaxosStore> st_;
  std::vector<std::unique_ptr<Replica>> r_;
  std::vector<std::vector<Apply>> applied_;
  std::vector<std::vector<ReadState>> reads_;
  std::vector<std::vector<Snapshot>> installed_;
  std::vector<std::vector<Membership>> members_;
  std::deque<InFlight> q_;
  std::set<std::pair<int, int>> cut_;
  int64_t now_ = 1'000'000;
  size_t max_message_bytes_ = 0;
  std::function<int(const InFlight&)> filter_;
};

inline Command Cmd(uint64_t client, uint64_t seq, std::string payload = "x") {
  return Command{client, seq, std::move(payload)};
}

}  // namespace geokv::paxos::testing

#endif  // GEOKV_TESTS_REPLICATION_PAXOS_GROUP_H_
