#include "replication/paxos/replica.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "replication/paxos/message.h"

namespace geokv::paxos {

StatusOr<std::unique_ptr<Replica>> Replica::Open(const Config& config, const Storage& storage) {
  if (config.replicas == 0 || config.replicas > 64) {
    return InvalidArgument("paxos: replicas must be in [1, 64]");
  }
  if (config.id >= config.replicas) return InvalidArgument("paxos: id out of range");
  if (config.heartbeat_ticks < 1 || config.election_ticks <= config.heartbeat_ticks ||
      config.resend_ticks < 1 || config.window_slots == 0 || config.batch_bytes_max == 0 ||
      config.batch_commands_max == 0 || config.catchup_entries_max == 0 ||
      config.tick_us <= 0) {
    return InvalidArgument("paxos: invalid timing or limit");
  }
  if (config.preferred_leader && *config.preferred_leader >= config.replicas) {
    return InvalidArgument("paxos: preferred leader out of range");
  }
  if (config.lease_us < 0 || config.clock_drift_max < 0 || config.clock_drift_max >= 0.5) {
    return InvalidArgument("paxos: invalid lease or drift bound");
  }
  auto hs = storage.LoadHardState();
  if (!hs.ok()) return hs.status();
  auto entries = storage.LoadEntries();
  if (!entries.ok()) return entries.status();
  auto snapshot = storage.LoadSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  std::unique_ptr<Replica> r(new Replica(config));
  r->hs_ = *hs;
  uint64_t c = 0;
  if (*snapshot) {
    r->snapshot_ = std::move(**snapshot);
    r->sessions_.insert(r->snapshot_.sessions.begin(), r->snapshot_.sessions.end());
    r->applied_ = r->snapshot_.index;
    c = r->snapshot_.index;
    r->hs_.commit = std::max(r->hs_.commit, c);
    r->snapshot_dirty_ = true;  // hand it to the application to load
    r->install_pending_ = true;
  }
  for (auto& e : *entries) {
    if (e.slot > r->snapshot_.index) r->log_[e.slot] = std::move(e);
  }
  // The commit index may have been persisted without its entries only if storage broke
  // the prefix rule; clamp to what is really there rather than trust it.
  while (c < r->hs_.commit && r->log_.count(c + 1)) ++c;
  r->hs_.commit = c;
  for (auto& [slot, e] : r->log_) {
    if (slot <= c) e.chosen = true;
  }
  r->max_round_seen_ = r->hs_.promised.round;
  return r;
}

Replica::Replica(const Config& config)
    : cfg_(config), quorum_(static_cast<int>(config.replicas / 2 + 1)), rng_(config.seed) {
  peers_.resize(cfg_.replicas);
  promises_.resize(cfg_.replicas);
  ResetElectionTimer();
}

// ---------------------------------------------------------------------------------------
// Inputs.

void Replica::Observe(int64_t now_us) {
  if (cfg_.unsafe_lease_cached_time) return;
  now_us_ = std::max(now_us_, now_us);
}

Status Replica::Step(std::string_view bytes, int64_t now_us) {
  Observe(now_us);
  auto decoded = DecodeMessage(bytes, cfg_.message_bytes_max);
  if (!decoded.ok()) {
    ++stats_.malformed;
    return decoded.status();
  }
  const Message& m = *decoded;
  if (m.to != cfg_.id || m.from >= cfg_.replicas || m.from == cfg_.id ||
      m.ballot.node >= cfg_.replicas) {
    ++stats_.misaddressed;
    return InvalidArgument("paxos: message not for this replica");
  }
  max_round_seen_ = std::max({max_round_seen_, m.ballot.round, m.promised.round});
  switch (m.type) {
    case MessageType::kPrepare: HandlePrepare(m); break;
    case MessageType::kPromise: HandlePromise(m); break;
    case MessageType::kAccept: HandleAccept(m); break;
    case MessageType::kAccepted: HandleAccepted(m); break;
    case MessageType::kHeartbeat: HandleHeartbeat(m); break;
    case MessageType::kHeartbeatAck: HandleHeartbeatAck(m); break;
    case MessageType::kNack: HandleNack(m); break;
    case MessageType::kCatchUp: HandleCatchUp(m); break;
    case MessageType::kTimeoutNow: HandleTimeoutNow(m); break;
    case MessageType::kInstallSnapshot: HandleInstallSnapshot(m); break;
  }
  return Status::Ok();
}

void Replica::Tick(int64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  ++ticks_;
  if (!ticked_) {
    ticked_ = true;
    // After a restart we do not know which lease we granted before the crash: refuse to
    // help anyone win until any such lease has surely expired.
    if (cfg_.lease_us > 0) {
      grant_until_us_ = now_us_ + cfg_.lease_us + cfg_.tick_us;
      grant_holder_ = kRefuseAll;
    }
  }
  switch (role_) {
    case Role::kLeader: {
      if (ticks_ >= quorum_check_tick_) {
        // Check quorum: a leader that hears from no majority (say, its outbound links work
        // but nothing comes back) steps down, so that its heartbeats stop holding the
        // followers back from electing a leader that can make progress.
        quorum_check_tick_ = ticks_ + cfg_.election_ticks;
        int heard = 1;
        for (uint32_t p = 0; p < cfg_.replicas; ++p) {
          const uint64_t t = peers_[p].last_heard_tick;
          if (p != cfg_.id && t > 0 && t + cfg_.election_ticks >= ticks_) ++heard;
        }
        if (heard < quorum_) {
          ++stats_.step_downs;
          BecomeFollower(Ballot{}, -1);
          break;
        }
      }
      if (++heartbeat_elapsed_ >= cfg_.heartbeat_ticks) SendHeartbeats();
      Resend();
      if (transfer_to_ >= 0 && ticks_ > transfer_deadline_tick_) transfer_to_ = -1;
      if (cfg_.preferred_leader && *cfg_.preferred_leader != cfg_.id && transfer_to_ < 0 &&
          ticks_ >= preferred_check_tick_) {
        preferred_check_tick_ = ticks_ + cfg_.election_ticks;
        const Peer& p = peers_[*cfg_.preferred_leader];
        // Healthy: heard from it within the last few heartbeats.
        if (p.last_heard_tick + 3 * cfg_.heartbeat_ticks >= ticks_ && p.last_heard_tick > 0) {
          (void)TransferLeader(*cfg_.preferred_leader);
        }
      }
      break;
    }
    case Role::kCandidate:
      if (++election_elapsed_ >= election_timeout_) {
        StartElection(Ballot{});
      } else if (++prepare_elapsed_ >= cfg_.resend_ticks) {
        prepare_elapsed_ = 0;
        for (uint32_t p = 0; p < cfg_.replicas; ++p) {
          if (p == cfg_.id || promises_[p].complete) continue;
          SendPrepare(p, promises_[p].promised ? promises_[p].next_from : recover_from_);
        }
      }
      break;
    case Role::kFollower:
      if (++election_elapsed_ >= election_timeout_) {
        if (LeaseBlocks(cfg_.id, Ballot{})) break;  // retry next tick
        StartElection(Ballot{});
      }
      break;
  }
}

Status Replica::Propose(Command cmd) {
  if (role_ != Role::kLeader || transfer_to_ >= 0) {
    return Status(Code::kUnavailable, "paxos: not the leader");
  }
  if (cmd.payload.size() > cfg_.batch_bytes_max) {
    return InvalidArgument("paxos: command larger than a batch");
  }
  if (pending_.size() >= cfg_.pending_commands_max) {
    return Status(Code::kBusy, "paxos: proposal queue full");
  }
  pending_.push_back(std::move(cmd));
  FillWindow();
  return Status::Ok();
}

Status Replica::ReadIndex(uint64_t request_id, int64_t now_us) {
  Observe(now_us);
  if (role_ != Role::kLeader || transfer_to_ >= 0) {
    return Status(Code::kUnavailable, "paxos: not the leader");
  }
  if (hs_.commit < reads_ok_after_) {
    // Until its recovery commits, the leader may not know every chosen write.
    return Status(Code::kUnavailable, "paxos: leader not ready for reads");
  }
  if (HasLease()) {
    ++stats_.lease_reads;
    reads_ready_.push_back(ReadState{request_id, hs_.commit});
    return Status::Ok();
  }
  if (pending_reads_.size() >= cfg_.reads_pending_max) {
    return Status(Code::kBusy, "paxos: too many pending reads");
  }
  ++stats_.quorum_reads;
  // The read is safe once a majority confirms a heartbeat round that started after it.
  pending_reads_.push_back(PendingRead{request_id, hs_.commit, hb_round_ + 1});
  SendHeartbeats();
  return Status::Ok();
}

Status Replica::TransferLeader(uint32_t to) {
  if (to >= cfg_.replicas) return InvalidArgument("paxos: no such replica");
  if (role_ != Role::kLeader) return Status(Code::kUnavailable, "paxos: not the leader");
  if (to == cfg_.id) return Status::Ok();
  transfer_to_ = static_cast<int32_t>(to);
  transfer_deadline_tick_ = ticks_ + cfg_.election_ticks;
  MaybeSendTimeoutNow();
  return Status::Ok();
}

Status Replica::Compact(std::string data) {
  if (applied_ <= snapshot_.index) return Status::Ok();  // nothing new to cover
  Snapshot s;
  s.index = applied_;
  s.data = std::move(data);
  s.sessions.assign(sessions_.begin(), sessions_.end());
  if (s.data.size() + 16 * s.sessions.size() + 1024 > cfg_.message_bytes_max / 2) {
    return InvalidArgument("paxos: snapshot larger than a message");
  }
  log_.erase(log_.begin(), log_.upper_bound(s.index));
  snapshot_ = std::move(s);
  snapshot_dirty_ = true;
  return Status::Ok();
}

bool Replica::HasReady() const {
  return snapshot_dirty_ || hs_dirty_ || !dirty_slots_.empty() || !out_.empty() || applied_ < hs_.commit ||
         !reads_ready_.empty();
}

paxos::Ready Replica::Ready() {
  assert(!ready_outstanding_ && "Ready() called twice without Advance()");
  paxos::Ready rd;
  if (snapshot_dirty_) {
    rd.snapshot = snapshot_;
    rd.install_snapshot = install_pending_;
  }
  if (hs_dirty_) rd.hard_state = hs_;
  rd.entries.reserve(dirty_slots_.size());
  for (uint64_t s : dirty_slots_) {
    auto it = log_.find(s);
    if (it != log_.end()) rd.entries.push_back(it->second);
  }
  rd.must_sync = must_sync_;
  rd.messages = std::move(out_);
  for (uint64_t s = applied_ + 1; s <= hs_.commit; ++s) {
    const Entry& e = log_.at(s);
    for (const Command& c : e.commands) {
      auto [it, inserted] = sessions_.try_emplace(c.client_id, c.seq);
      const bool dup = !inserted && it->second >= c.seq;
      if (!inserted && !dup) it->second = c.seq;
      rd.apply.push_back(Apply{s, c, dup});
    }
  }
  // Bounded memory: forget the lowest client ids first (a client forgotten this way loses
  // exactly-once only for a retry that arrives after that many other clients).
  while (sessions_.size() > cfg_.sessions_max) sessions_.erase(sessions_.begin());
  applied_ = hs_.commit;
  rd.reads = std::move(reads_ready_);
  hs_dirty_ = false;
  snapshot_dirty_ = false;
  install_pending_ = false;
  must_sync_ = false;
  dirty_slots_.clear();
  out_.clear();
  reads_ready_.clear();
  ready_outstanding_ = true;
  return rd;
}

void Replica::Advance() {
  assert(ready_outstanding_);
  ready_outstanding_ = false;
}

const Entry* Replica::LogEntry(uint64_t slot) const {
  auto it = log_.find(slot);
  return it == log_.end() ? nullptr : &it->second;
}

bool Replica::HasLease() const {
  // now_us_ lags the real local time by up to a tick: keep a tick of margin.
  return cfg_.lease_us > 0 && role_ == Role::kLeader && transfer_to_ < 0 &&
         !lease_forfeited_ && now_us_ + cfg_.tick_us < lease_until_us_;
}

// ---------------------------------------------------------------------------------------
// Acceptor side.

void Replica::HandlePrepare(const Message& m) {
  if (m.ballot < hs_.promised) {
    Message nack;
    nack.type = MessageType::kNack;
    nack.to = m.from;
    nack.ballot = m.ballot;
    nack.promised = hs_.promised;
    Send(std::move(nack));
    return;
  }
  if (m.ballot > hs_.promised && role_ == Role::kFollower && leader_ >= 0 &&
      static_cast<int32_t>(m.ballot.node) != leader_ &&
      election_elapsed_ < std::max(1, cfg_.election_ticks / 2) &&
      !(m.waiver == leader_ballot_ && !m.waiver.IsZero())) {
    // Stickiness: our leader was alive less than half an election timeout ago, so this
    // candidate is likely cut off from it (or from us) and would only disrupt it. Ignoring
    // a prepare is always safe; the candidate retries.
    ++stats_.sticky_refusals;
    return;
  }
  if (m.ballot > hs_.promised && LeaseBlocks(m.ballot.node, m.waiver)) {
    // Silence rather than a Nack: the candidate retries after its timeout, by which time
    // the lease has run out unless the leader keeps renewing it (then it should not win).
    ++stats_.lease_refusals;
    return;
  }
  Promise(m.ballot);
  if (role_ != Role::kFollower || leader_ballot_ != m.ballot) {
    const bool was_follower = role_ == Role::kFollower;
    const int elapsed = election_elapsed_;
    BecomeFollower(m.ballot, -1);
    // A promise is not a sign of a working leader: keep counting towards our own
    // election, so that a candidate that cannot hear answers cannot hold us back forever.
    if (was_follower) election_elapsed_ = elapsed;
  }
  Message p;
  p.type = MessageType::kPromise;
  p.to = m.from;
  p.ballot = m.ballot;
  p.commit = hs_.commit;
  p.from_slot = std::max<uint64_t>(m.from_slot, 1);
  p.last_slot = log_.empty() ? 0 : log_.rbegin()->first;
  p.complete = true;
  size_t bytes = 0;
  if (snapshot_.index > 0 && p.from_slot <= snapshot_.index) {
    // The candidate misses chosen slots we no longer hold as entries.
    p.snapshot = snapshot_;
    bytes += snapshot_.data.size() + 16 * snapshot_.sessions.size();
  }
  for (auto it = log_.lower_bound(p.from_slot); it != log_.end(); ++it) {
    if (p.entries.size() >= cfg_.catchup_entries_max ||
        bytes + it->second.ByteSize() > cfg_.message_bytes_max / 2) {
      p.complete = false;
      break;
    }
    Entry e = it->second;
    e.chosen = e.chosen || e.slot <= hs_.commit;
    bytes += e.ByteSize();
    p.entries.push_back(std::move(e));
  }
  Send(std::move(p));
}

bool Replica::AcceptLeader(const Message& m) {
  if (m.ballot < hs_.promised) {
    Message nack;
    nack.type = MessageType::kNack;
    nack.to = m.from;
    nack.ballot = m.ballot;
    nack.promised = hs_.promised;
    Send(std::move(nack));
    return false;
  }
  Promise(m.ballot);
  if (role_ != Role::kFollower || leader_ballot_ != m.ballot || leader_ != (int32_t)m.from) {
    BecomeFollower(m.ballot, static_cast<int32_t>(m.from));
  }
  election_elapsed_ = 0;
  GrantLease(m.from, m.ballot);
  return true;
}

void Replica::HandleAccept(const Message& m) {
  if (!AcceptLeader(m)) return;
  Message r;
  r.type = MessageType::kAccepted;
  r.to = m.from;
  r.ballot = m.ballot;
  for (const Entry& in : m.entries) {
    Entry e = in;
    if (in.slot <= snapshot_.index) {
      // Chosen and covered by our snapshot, which phase 1 would report; make sure the
      // snapshot is durable before we say so.
      must_sync_ = true;
      r.slots.push_back(in.slot);
      continue;
    }
    if (in.slot <= hs_.commit) {
      // We know this slot's chosen value; a correct leader proposes the same one. Keep
      // ours, stamped with the new ballot, so what we acknowledge is what we store.
      e = log_.at(in.slot);
      e.chosen = true;
    } else {
      auto it = log_.find(e.slot);
      e.chosen = it != log_.end() && it->second.chosen && it->second.SameValue(e);
    }
    e.ballot = m.ballot;
    Persist(e, /*sync=*/true);
    r.slots.push_back(in.slot);
  }
  AdvanceFollowerCommit(m.commit, m.ballot);
  r.commit = hs_.commit;
  r.last_slot = m.commit;  // echo: lets the leader tell "lagging" from "not yet told"
  Send(std::move(r));
}

void Replica::HandleHeartbeat(const Message& m) {
  if (!AcceptLeader(m)) return;
  AdvanceFollowerCommit(m.commit, m.ballot);
  Message r;
  r.type = MessageType::kHeartbeatAck;
  r.to = m.from;
  r.ballot = m.ballot;
  r.round = m.round;
  r.commit = hs_.commit;
  r.last_slot = m.commit;
  Send(std::move(r));
}

void Replica::HandleCatchUp(const Message& m) {
  if (!AcceptLeader(m)) return;
  for (const Entry& in : m.entries) {
    if (in.slot <= hs_.commit) continue;
    Entry e = in;
    // A chosen value re-stamped with the current ballot: any accepted value at a ballot at
    // least the one that chose it equals the chosen value, so recovery stays correct.
    e.ballot = m.ballot;
    e.chosen = true;
    Persist(e, /*sync=*/false);
  }
  AdvanceFollowerCommit(m.commit, m.ballot);
  Message r;
  r.type = MessageType::kHeartbeatAck;
  r.to = m.from;
  r.ballot = m.ballot;
  r.round = 0;
  r.commit = hs_.commit;
  r.last_slot = m.commit;
  Send(std::move(r));
}

void Replica::HandleTimeoutNow(const Message& m) {
  if (m.ballot != leader_ballot_ || leader_ != static_cast<int32_t>(m.from) ||
      role_ != Role::kFollower) {
    return;
  }
  StartElection(m.ballot);
}

void Replica::HandleInstallSnapshot(const Message& m) {
  if (!AcceptLeader(m)) return;
  if (!m.snapshot) return;
  InstallSnapshot(*m.snapshot);
  AdvanceFollowerCommit(m.commit, m.ballot);
  Message r;
  r.type = MessageType::kHeartbeatAck;
  r.to = m.from;
  r.ballot = m.ballot;
  r.commit = hs_.commit;
  r.last_slot = m.commit;
  Send(std::move(r));
}

void Replica::InstallSnapshot(const Snapshot& s) {
  if (s.index <= hs_.commit) return;  // we already hold everything it covers
  log_.erase(log_.begin(), log_.upper_bound(s.index));
  snapshot_ = s;
  sessions_.clear();
  sessions_.insert(s.sessions.begin(), s.sessions.end());
  hs_.commit = s.index;
  hs_dirty_ = true;
  applied_ = s.index;
  snapshot_dirty_ = true;
  install_pending_ = true;
}

void Replica::AdvanceFollowerCommit(uint64_t leader_commit, Ballot leader_ballot) {
  while (hs_.commit < leader_commit) {
    auto it = log_.find(hs_.commit + 1);
    if (it == log_.end()) break;
    // Only the current leader's value (or one learned as chosen) is known to be chosen; an
    // entry left by an older ballot may be a value that lost.
    if (!it->second.chosen && it->second.ballot != leader_ballot) break;
    it->second.chosen = true;
    ++hs_.commit;
    hs_dirty_ = true;
  }
}

void Replica::GrantLease(uint32_t holder, Ballot b) {
  if (cfg_.lease_us <= 0) return;
  // now_us_ may lag the receipt time by a tick; extend by a tick so we never give up a
  // lease earlier than the leader (who counts from its send time) believes.
  const int64_t until = now_us_ + cfg_.lease_us + cfg_.tick_us;
  if (grant_holder_ == kRefuseAll && now_us_ < grant_until_us_) {
    grant_until_us_ = std::max(grant_until_us_, until);
  } else {
    grant_until_us_ = until;
  }
  grant_holder_ = static_cast<int32_t>(holder);
  grant_ballot_ = b;
}

bool Replica::LeaseBlocks(uint32_t candidate, Ballot waiver) const {
  if (cfg_.lease_us <= 0) return false;
  if (!ticked_) return true;  // restarted and no clock yet: see Tick()
  if (now_us_ >= grant_until_us_) return false;
  if (grant_holder_ == static_cast<int32_t>(candidate)) return false;
  // The leader we granted to handed over (TimeoutNow) and stopped using its lease.
  if (!waiver.IsZero() && waiver == grant_ballot_ && grant_holder_ != kRefuseAll) return false;
  return true;
}

void Replica::Promise(Ballot b) {
  if (b > hs_.promised) {
    hs_.promised = b;
    hs_dirty_ = true;
    must_sync_ = true;
  }
}

void Replica::Persist(const Entry& e, bool sync) {
  log_[e.slot] = e;
  dirty_slots_.insert(e.slot);
  if (sync) must_sync_ = true;
}

// ---------------------------------------------------------------------------------------
// Roles.

void Replica::ResetElectionTimer() {
  election_elapsed_ = 0;
  election_timeout_ = cfg_.election_ticks +
                      static_cast<int>(rng_() % static_cast<uint64_t>(cfg_.election_ticks));
}

void Replica::BecomeFollower(Ballot leader_ballot, int32_t leader) {
  role_ = Role::kFollower;
  leader_ballot_ = leader_ballot;
  leader_ = leader;
  inflight_.clear();
  pending_.clear();
  pending_reads_.clear();
  recovered_.clear();
  transfer_to_ = -1;
  lease_until_us_ = 0;
  ResetElectionTimer();
}

void Replica::StartElection(Ballot waiver) {
  ++stats_.elections;
  BecomeFollower(Ballot{}, -1);
  role_ = Role::kCandidate;
  ballot_ = Ballot{std::max(max_round_seen_, hs_.promised.round) + 1, cfg_.id};
  max_round_seen_ = ballot_.round;
  leader_ballot_ = ballot_;
  waiver_ = waiver;
  Promise(ballot_);
  recover_from_ = hs_.commit + 1;
  for (auto& p : promises_) p = PeerPromise{};
  promises_[cfg_.id] = PeerPromise{true, true, 0};
  for (auto it = log_.lower_bound(recover_from_); it != log_.end(); ++it) {
    recovered_[it->first] = it->second;
  }
  prepare_elapsed_ = 0;
  for (uint32_t p = 0; p < cfg_.replicas; ++p) {
    if (p != cfg_.id) SendPrepare(p, recover_from_);
  }
  MaybeFinishPhase1();  // a group of one
}

void Replica::SendPrepare(uint32_t to, uint64_t from_slot) {
  Message m;
  m.type = MessageType::kPrepare;
  m.to = to;
  m.ballot = ballot_;
  m.from_slot = from_slot;
  m.waiver = waiver_;
  Send(std::move(m));
}

void Replica::HandlePromise(const Message& m) {
  if (role_ != Role::kCandidate || m.ballot != ballot_) return;
  PeerPromise& p = promises_[m.from];
  if (p.complete) return;
  const uint64_t expected_from = p.promised ? p.next_from : recover_from_;
  if (m.from_slot != expected_from) return;  // a stale or duplicated chunk
  p.promised = true;
  if (m.snapshot && m.snapshot->index > hs_.commit) {
    // Slots up to the snapshot are chosen and we missed them: adopt the snapshot and
    // recover only above it.
    InstallSnapshot(*m.snapshot);
    recover_from_ = std::max(recover_from_, m.snapshot->index + 1);
    recovered_.erase(recovered_.begin(), recovered_.lower_bound(recover_from_));
  }
  if (!cfg_.unsafe_skip_phase1_recovery) {
    for (const Entry& e : m.entries) {
      if (e.slot < recover_from_) continue;
      auto it = recovered_.find(e.slot);
      if (it == recovered_.end() || e.ballot > it->second.ballot) recovered_[e.slot] = e;
    }
  }
  if (m.complete) {
    p.complete = true;
  } else {
    p.next_from = m.entries.empty() ? m.from_slot : m.entries.back().slot + 1;
    SendPrepare(m.from, p.next_from);
  }
  MaybeFinishPhase1();
}

void Replica::MaybeFinishPhase1() {
  int complete = 0;
  for (const auto& p : promises_) complete += p.complete ? 1 : 0;
  if (complete >= quorum_) BecomeLeader();
}

void Replica::BecomeLeader() {
  ++stats_.leaderships;
  role_ = Role::kLeader;
  leader_ = static_cast<int32_t>(cfg_.id);
  leader_ballot_ = ballot_;
  for (auto& p : peers_) p = Peer{};
  inflight_.clear();
  hb_round_ = 0;
  confirmed_round_ = 0;
  round_times_.clear();
  lease_until_us_ = 0;
  lease_forfeited_ = false;
  quorum_check_tick_ = ticks_ + 2 * cfg_.election_ticks;  // first answers take a round trip
  uint64_t max_slot = hs_.commit;
  if (!recovered_.empty()) max_slot = std::max(max_slot, recovered_.rbegin()->first);
  // Re-propose every slot above the commit index at our ballot: the highest-ballot value a
  // majority reported, or a no-op for a hole nobody accepted anything in.
  std::vector<uint64_t> slots;
  for (uint64_t s = hs_.commit + 1; s <= max_slot; ++s) {
    Entry e;
    auto it = recovered_.find(s);
    if (it != recovered_.end()) {
      e = it->second;
    } else {
      e.noop = true;
    }
    e.slot = s;
    e.ballot = ballot_;
    e.chosen = false;
    Persist(e, /*sync=*/true);
    Inflight f;
    f.acks_mask = uint64_t{1} << cfg_.id;
    f.acks = 1;
    f.sent_tick = ticks_;
    inflight_[s] = f;
    slots.push_back(s);
    ++stats_.slots_proposed;
  }
  recovered_.clear();
  next_slot_ = max_slot + 1;
  reads_ok_after_ = max_slot;
  for (uint32_t p = 0; p < cfg_.replicas; ++p) {
    if (p != cfg_.id && !slots.empty()) SendAccepts(p, slots);
  }
  SendHeartbeats();
  AdvanceLeaderCommit();
  FillWindow();
}

void Replica::HandleNack(const Message& m) {
  if (role_ == Role::kFollower || m.ballot != ballot_ || m.promised <= ballot_) return;
  // Someone promised a higher ballot: our leadership (or candidacy) is over.
  BecomeFollower(Ballot{}, -1);
}

// ---------------------------------------------------------------------------------------
// Leader side.

void Replica::FillWindow() {
  while (role_ == Role::kLeader && transfer_to_ < 0 && !pending_.empty() &&
         next_slot_ - hs_.commit - 1 < cfg_.window_slots) {
    Entry e;
    e.slot = next_slot_++;
    e.ballot = ballot_;
    size_t bytes = 0;
    while (!pending_.empty() && e.commands.size() < cfg_.batch_commands_max &&
           (e.commands.empty() || bytes + pending_.front().payload.size() <= cfg_.batch_bytes_max)) {
      bytes += pending_.front().payload.size();
      e.commands.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    ++stats_.slots_proposed;
    stats_.commands_proposed += e.commands.size();
    Persist(e, /*sync=*/true);
    Inflight f;
    f.acks_mask = uint64_t{1} << cfg_.id;
    f.acks = 1;
    f.sent_tick = ticks_;
    inflight_[e.slot] = f;
    for (uint32_t p = 0; p < cfg_.replicas; ++p) {
      if (p != cfg_.id) SendAccepts(p, {e.slot});
    }
  }
  AdvanceLeaderCommit();  // a group of one commits alone
}

void Replica::SendAccepts(uint32_t to, const std::vector<uint64_t>& slots) {
  Message m;
  m.type = MessageType::kAccept;
  m.to = to;
  m.ballot = ballot_;
  size_t bytes = 0;
  auto flush = [&] {
    if (m.entries.empty()) return;
    m.commit = hs_.commit;
    Send(m);
    m.entries.clear();
    bytes = 0;
  };
  for (uint64_t s : slots) {
    const Entry& e = log_.at(s);
    if (!m.entries.empty() && (m.entries.size() >= kEntriesPerMessageMax / 2 ||
                               bytes + e.ByteSize() > cfg_.message_bytes_max / 2)) {
      flush();
    }
    bytes += e.ByteSize();
    m.entries.push_back(e);
  }
  flush();
}

void Replica::SendHeartbeats() {
  heartbeat_elapsed_ = 0;
  ++hb_round_;
  round_times_.emplace_back(hb_round_, now_us_);
  while (round_times_.size() > 4096) round_times_.pop_front();
  for (uint32_t p = 0; p < cfg_.replicas; ++p) {
    if (p == cfg_.id) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = p;
    m.ballot = ballot_;
    m.commit = hs_.commit;
    m.round = hb_round_;
    Send(std::move(m));
  }
  ConfirmRounds();  // a group of one
}

void Replica::Resend() {
  std::vector<std::vector<uint64_t>> per_peer(cfg_.replicas);
  for (auto& [slot, f] : inflight_) {
    if (f.sent_tick + cfg_.resend_ticks > ticks_) continue;
    f.sent_tick = ticks_;
    for (uint32_t p = 0; p < cfg_.replicas; ++p) {
      if (p != cfg_.id && !(f.acks_mask & (uint64_t{1} << p))) per_peer[p].push_back(slot);
    }
  }
  for (uint32_t p = 0; p < cfg_.replicas; ++p) {
    if (!per_peer[p].empty()) SendAccepts(p, per_peer[p]);
  }
}

void Replica::HandleAccepted(const Message& m) {
  if (role_ != Role::kLeader || m.ballot != ballot_) return;
  Peer& peer = peers_[m.from];
  peer.last_heard_tick = ticks_;
  const uint64_t bit = uint64_t{1} << m.from;
  for (uint64_t s : m.slots) {
    auto it = inflight_.find(s);
    if (it == inflight_.end() || (it->second.acks_mask & bit)) continue;
    it->second.acks_mask |= bit;
    ++it->second.acks;
  }
  AdvanceLeaderCommit();
  MaybeCatchUp(m.from, m.commit, m.last_slot);
  MaybeSendTimeoutNow();
  FillWindow();
}

void Replica::HandleHeartbeatAck(const Message& m) {
  if (role_ != Role::kLeader || m.ballot != ballot_) return;
  Peer& peer = peers_[m.from];
  peer.last_heard_tick = ticks_;
  peer.acked_round = std::max(peer.acked_round, m.round);
  ConfirmRounds();
  MaybeCatchUp(m.from, m.commit, m.last_slot);
  MaybeSendTimeoutNow();
}

void Replica::AdvanceLeaderCommit() {
  bool advanced = false;
  while (!inflight_.empty() && inflight_.begin()->first == hs_.commit + 1 &&
         inflight_.begin()->second.acks >= quorum_) {
    log_.at(hs_.commit + 1).chosen = true;
    ++hs_.commit;
    hs_dirty_ = true;
    inflight_.erase(inflight_.begin());
    advanced = true;
  }
  if (advanced) FillWindow();
}

void Replica::ConfirmRounds() {
  std::vector<uint64_t> acked;
  acked.reserve(cfg_.replicas);
  for (uint32_t p = 0; p < cfg_.replicas; ++p) {
    acked.push_back(p == cfg_.id ? hb_round_ : peers_[p].acked_round);
  }
  std::sort(acked.begin(), acked.end(), std::greater<>());
  const uint64_t confirmed = acked[quorum_ - 1];
  if (confirmed <= confirmed_round_) return;
  confirmed_round_ = confirmed;
  while (!round_times_.empty() && round_times_.front().first < confirmed) {
    round_times_.pop_front();
  }
  if (!round_times_.empty() && round_times_.front().first == confirmed && cfg_.lease_us > 0 &&
      transfer_to_ < 0 && !lease_forfeited_) {
    lease_until_us_ = std::max(lease_until_us_, round_times_.front().second + LeaderLeaseUs());
  }
  while (!pending_reads_.empty() && pending_reads_.front().round <= confirmed) {
    reads_ready_.push_back(ReadState{pending_reads_.front().id, pending_reads_.front().index});
    pending_reads_.pop_front();
  }
}

int64_t Replica::LeaderLeaseUs() const {
  // The acceptor's lease lasts lease_us on a clock that may run (1 + drift) fast; ours may
  // run (1 - drift) slow. Count only what is certainly inside the acceptor's lease.
  const double e = cfg_.clock_drift_max;
  const auto us = static_cast<int64_t>(static_cast<double>(cfg_.lease_us) * (1 - e) / (1 + e));
  return std::max<int64_t>(0, us - cfg_.tick_us);
}

void Replica::MaybeCatchUp(uint32_t peer, uint64_t peer_commit, uint64_t echoed_commit) {
  Peer& p = peers_[peer];
  p.commit = std::max(p.commit, peer_commit);
  // The peer answered a message that told it `echoed_commit`; if it is still behind that,
  // it misses chosen entries (or holds stale ones) and the commit index alone cannot help.
  if (peer_commit >= echoed_commit || peer_commit >= hs_.commit) return;
  if (p.last_catchup_tick == ticks_) return;  // at most one chunk per peer per tick
  p.last_catchup_tick = ticks_;
  Message m;
  m.type = MessageType::kCatchUp;
  m.to = peer;
  m.ballot = ballot_;
  m.commit = hs_.commit;
  if (peer_commit < snapshot_.index) {
    // The entries it needs are compacted away: send the snapshot instead.
    m.type = MessageType::kInstallSnapshot;
    m.snapshot = snapshot_;
    ++stats_.snapshots_sent;
    Send(std::move(m));
    return;
  }
  size_t bytes = 0;
  for (uint64_t s = peer_commit + 1; s <= hs_.commit; ++s) {
    const Entry& e = log_.at(s);
    if (m.entries.size() >= cfg_.catchup_entries_max ||
        bytes + e.ByteSize() > cfg_.message_bytes_max / 2) {
      break;
    }
    bytes += e.ByteSize();
    m.entries.push_back(e);
  }
  ++stats_.catchups;
  Send(std::move(m));
}

void Replica::MaybeSendTimeoutNow() {
  if (transfer_to_ < 0 || role_ != Role::kLeader) return;
  if (peers_[transfer_to_].commit < hs_.commit || !inflight_.empty()) return;
  // From here on we serve no lease reads: the target may win before our lease ends.
  lease_until_us_ = 0;
  lease_forfeited_ = true;
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = static_cast<uint32_t>(transfer_to_);
  m.ballot = ballot_;
  Send(std::move(m));
}

void Replica::Send(Message m) {
  m.from = cfg_.id;
  OutMessage out;
  out.to = m.to;
  out.type = m.type;
  out.bytes = EncodeMessage(m);
  out_.push_back(std::move(out));
}

}  // namespace geokv::paxos
