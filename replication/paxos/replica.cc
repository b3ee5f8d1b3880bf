#include "replication/paxos/replica.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <utility>

#include "replication/paxos/message.h"

namespace geokv::paxos {

StatusOr<std::unique_ptr<Replica>> Replica::Open(const Config& config, const Storage& storage) {
  if (config.replicas == 0 || config.replicas > 64) {
    return InvalidArgument("paxos: replicas must be in [1, 64]");
  }
  if (config.id >= Membership::kIdsMax) return InvalidArgument("paxos: id out of range");
  if (config.heartbeat_ticks < 1 || config.election_ticks <= config.heartbeat_ticks ||
      config.resend_ticks < 1 || config.window_slots == 0 || config.batch_bytes_max == 0 ||
      config.batch_commands_max == 0 || config.catchup_entries_max == 0 ||
      config.tick_us <= 0) {
    return InvalidArgument("paxos: invalid timing or limit");
  }
  if (config.preferred_leader && *config.preferred_leader >= Membership::kIdsMax) {
    return InvalidArgument("paxos: preferred leader out of range");
  }
  if (config.lease_us < 0 || config.clock_drift_max < 0 || config.clock_drift_max >= 0.5) {
    return InvalidArgument("paxos: invalid lease or drift bound");
  }
  // A full batch must fit in one message: per command, the wire adds at most 64 bytes.
  if (config.message_bytes_max <= kMessageOverheadBytes + config.batch_bytes_max +
                                      64 * config.batch_commands_max ||
      config.snapshot_chunk_bytes_max == 0 || config.snapshot_resends_max < 1 ||
      config.sessions_max == 0) {
    return InvalidArgument("paxos: message, batch, snapshot chunk or session limit");
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
    if (r->snapshot_.members.voters != 0) r->members_ = r->snapshot_.members;
    r->LoadSessions(r->snapshot_.sessions);
    r->applied_ = r->snapshot_.index;
    r->members_applied_dirty_ = true;  // reported with the snapshot handed over to install
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
  r->applied_members_ = r->members_;  // as of the snapshot; Ready() applies the log above it
  for (auto& [slot, e] : r->log_) {
    if (slot > c) break;
    e.chosen = true;
    if (e.members) r->members_ = *e.members;
  }
  r->members_slot_ = r->hs_.commit;  // when the membership was chosen is not kept: now, at the latest
  r->max_round_seen_ = r->hs_.promised.round;
  return r;
}

Replica::Replica(const Config& config)
    : cfg_(config),
      members_(Membership::Initial(config.replicas)),
      rng_(config.seed),
      preferred_leader_(config.preferred_leader) {
  peers_.resize(Membership::kIdsMax);
  promises_.resize(Membership::kIdsMax);
  transfers_.resize(Membership::kIdsMax);
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
  if (m.to != cfg_.id || m.from >= Membership::kIdsMax || m.from == cfg_.id ||
      m.ballot.node >= Membership::kIdsMax) {
    ++stats_.misaddressed;
    return InvalidArgument("paxos: message not for this replica");
  }
  // A PreVote names a ballot nobody promised: it must not push anyone's rounds up.
  if (m.type != MessageType::kPreVote) {
    max_round_seen_ = std::max({max_round_seen_, m.ballot.round, m.promised.round});
  }
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
    case MessageType::kPreVote: HandlePreVote(m); break;
    case MessageType::kPreVoteReply: HandlePreVoteReply(m); break;
    case MessageType::kSnapshotAck: HandleSnapshotAck(m); break;
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
  ResendChunks();
  switch (role_) {
    case Role::kLeader: {
      if (ticks_ >= quorum_check_tick_) {
        // Check quorum: a leader that hears from no majority (say, its outbound links work
        // but nothing comes back) steps down, so that its heartbeats stop holding the
        // followers back from electing a leader that can make progress.
        quorum_check_tick_ = ticks_ + cfg_.election_ticks;
        int heard = Counts(cfg_.id) ? 1 : 0;
        for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
          const uint64_t t = peers_[p].last_heard_tick;
          if (p != cfg_.id && Counts(p) && t > 0 && t + cfg_.election_ticks >= ticks_) ++heard;
        }
        if (heard < members_.Quorum()) {
          ++stats_.step_downs;
          BecomeFollower(Ballot{}, -1);
          break;
        }
      }
      if (++heartbeat_elapsed_ >= cfg_.heartbeat_ticks) SendHeartbeats();
      Resend();
      if (transfer_to_ >= 0 && ticks_ > transfer_deadline_tick_) transfer_to_ = -1;
      if (preferred_leader_ && *preferred_leader_ != cfg_.id && transfer_to_ < 0 &&
          members_.IsVoter(*preferred_leader_) && ticks_ >= preferred_check_tick_) {
        preferred_check_tick_ = ticks_ + cfg_.election_ticks;
        if (PeerHealthy(*preferred_leader_)) (void)TransferLeader(*preferred_leader_);
      }
      break;
    }
    case Role::kCandidate:
      if (++election_elapsed_ >= election_timeout_) {
        Campaign();
      } else if (++prepare_elapsed_ >= cfg_.resend_ticks) {
        prepare_elapsed_ = 0;
        for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
          if (p == cfg_.id || !members_.IsVoter(p) || promises_[p].complete) continue;
          SendPrepare(p, promises_[p].promised ? promises_[p].next_from : recover_from_);
        }
      }
      break;
    case Role::kPreCandidate:
      if (++election_elapsed_ >= election_timeout_) Campaign();  // a new round
      break;
    case Role::kFollower:
      // A learner, or a replica removed (or not yet added), never campaigns; but its
      // knowledge of the leader ages like a voter's. A learner promoted by a slot it has
      // not learned yet is a voter to the others: if it kept believing in a dead leader,
      // it would refuse their pre-votes and prepares forever (stickiness), and a group
      // whose other live voters need its vote would never elect a leader again.
      if (!members_.IsVoter(cfg_.id)) {
        election_elapsed_ = std::min(election_elapsed_ + 1, election_timeout_);
        break;
      }
      if (++election_elapsed_ >= election_timeout_) {
        if (LeaseBlocks(cfg_.id, Ballot{})) break;  // retry next tick
        Campaign();
      }
      break;
  }
}

Status Replica::Propose(Command cmd) {
  if (role_ != Role::kLeader || transfer_to_ >= 0) {
    return Status(Code::kUnavailable, "paxos: not the leader");
  }
  if (cmd.payload.size() > CommandBytesMax(cfg_)) {
    return Status(Code::kValueTooLarge, "paxos: command of " +
                                            std::to_string(cmd.payload.size()) +
                                            " bytes does not fit in a message (max " +
                                            std::to_string(CommandBytesMax(cfg_)) + ")");
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
  if (!members_.IsVoter(to)) return InvalidArgument("paxos: not a voter");
  if (role_ != Role::kLeader) return Status(Code::kUnavailable, "paxos: not the leader");
  if (to == cfg_.id) return Status::Ok();
  transfer_to_ = static_cast<int32_t>(to);
  transfer_deadline_tick_ = ticks_ + cfg_.election_ticks;
  MaybeSendTimeoutNow();
  return Status::Ok();
}

bool Replica::PeerHealthy(uint32_t id) const {
  if (role_ != Role::kLeader || !members_.IsVoter(id)) return false;
  if (id == cfg_.id) return true;
  // Heard from it within the last few heartbeats.
  const Peer& p = peers_[id];
  return p.last_heard_tick > 0 && p.last_heard_tick + 3 * static_cast<uint64_t>(cfg_.heartbeat_ticks) >= ticks_;
}

Status Replica::SetPreferredLeader(std::optional<uint32_t> preferred) {
  if (preferred && *preferred >= Membership::kIdsMax) {
    return InvalidArgument("paxos: preferred leader out of range");
  }
  preferred_leader_ = preferred;
  return Status::Ok();
}

size_t Replica::CommandBytesMax(const Config& config) {
  return config.message_bytes_max > kMessageOverheadBytes
             ? config.message_bytes_max - kMessageOverheadBytes
             : 0;
}

Status Replica::Compact(std::string data) {
  if (applied_ <= snapshot_.index) return Status::Ok();  // nothing new to cover
  // The one size a snapshot cannot have: FlatBuffers (32-bit offsets) could not encode it
  // for its chunks. An operational limit, so a Status; the log stays as it is.
  if (data.size() + 16 * sessions_.size() + kMessageOverheadBytes > kSnapshotBytesMax) {
    return Status(Code::kValueTooLarge, "paxos: snapshot of " + std::to_string(data.size()) +
                                            " bytes exceeds the encodable maximum");
  }
  Snapshot s;
  s.index = applied_;
  s.data = std::move(data);
  s.sessions = SessionList();
  s.members = applied_members_;
  snapshot_ = std::move(s);
  snapshot_bytes_.reset();
  snapshot_dirty_ = true;
  TrimLog();
  return Status::Ok();
}

bool Replica::HasReady() const {
  return snapshot_dirty_ || hs_dirty_ || !dirty_slots_.empty() || !out_.empty() ||
         applied_ < hs_.commit || !reads_ready_.empty() || members_applied_dirty_;
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
      bool repeat = false;
      const bool dup = ApplySession(c.client_id, c.seq, &repeat);
      rd.apply.push_back(Apply{s, c, dup, repeat});
    }
    if (e.members) {
      applied_members_ = *e.members;
      members_applied_dirty_ = true;
    }
  }
  applied_ = hs_.commit;
  if (members_applied_dirty_) rd.members = applied_members_;
  members_applied_dirty_ = false;
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
    const bool was_follower = role_ == Role::kFollower || role_ == Role::kPreCandidate;
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
  uint64_t first = p.from_slot;
  if (snapshot_.index > 0 && p.from_slot <= snapshot_.index) {
    // The candidate misses chosen slots we only hold in our snapshot: it must install it
    // before this promise counts; we start sending it (a no-op if already under way).
    p.compacted_index = snapshot_.index;
    first = snapshot_.index + 1;
    StartTransfer(m.from);
  }
  for (auto it = log_.lower_bound(first); it != log_.end(); ++it) {
    // At least one entry per message: a single entry always fits (CommandBytesMax).
    if (!p.entries.empty() && (p.entries.size() >= cfg_.catchup_entries_max ||
                               bytes + it->second.ByteSize() > cfg_.message_bytes_max / 2)) {
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
      role_ != Role::kFollower || !members_.IsVoter(cfg_.id)) {
    return;
  }
  StartElection(m.ballot);
}

// A snapshot covers chosen slots only, so installing one is safe whoever sent it and at
// whatever ballot: chunks are not tied to leadership (the leader's heartbeats are).
void Replica::HandleInstallSnapshot(const Message& m) {
  if (!m.chunk) return;  // a whole snapshot is a storage record, never a message
  const SnapshotChunk& c = *m.chunk;
  if (role_ == Role::kLeader || c.index <= hs_.commit) {
    // Nothing to gain from it (a leader knows every chosen slot): tell the sender to stop.
    SendSnapshotAck(m.from, c, c.total_bytes);
    return;
  }
  const bool same = assembly_ && assembly_->from == m.from && assembly_->index == c.index &&
                    assembly_->total_bytes == c.total_bytes && assembly_->hash == c.hash;
  if (!same) {
    // Bounded memory: one snapshot in assembly. A chunk of another one restarts it if that
    // one is newer, or if the assembly stalled (its sender, which resends every
    // resend_ticks, gave up or crashed); otherwise it waits. Never restarting for an older
    // one keeps two senders from taking turns forever.
    const bool stalled =
        assembly_ && ticks_ >= assembly_->last_tick + 2 * static_cast<uint64_t>(cfg_.resend_ticks);
    if (assembly_ && c.index <= assembly_->index && !stalled) return;
    if (c.offset != 0) {
      SendSnapshotAck(m.from, c, 0);  // start over from the beginning
      return;
    }
    assembly_ = Assembly{m.from, c.index, c.total_bytes, c.hash, std::string(), ticks_};
  }
  Assembly& a = *assembly_;
  if (c.offset != a.bytes.size()) {  // a duplicate or a chunk after a lost one
    SendSnapshotAck(m.from, c, a.bytes.size());
    return;
  }
  a.bytes.append(c.bytes);
  a.last_tick = ticks_;
  if (a.bytes.size() < a.total_bytes) {
    SendSnapshotAck(m.from, c, a.bytes.size());
    return;
  }
  Assembly done = std::move(a);
  assembly_.reset();
  StatusOr<Message> decoded = Corruption("paxos: snapshot hash mismatch");
  if (HashBytes(done.bytes) == done.hash) decoded = DecodeMessage(done.bytes, done.total_bytes);
  if (!decoded.ok() || !decoded->snapshot || decoded->snapshot->index != done.index) {
    ++stats_.malformed;
    SendSnapshotAck(m.from, c, 0);
    return;
  }
  done.bytes.clear();
  done.bytes.shrink_to_fit();
  const uint64_t before = hs_.commit;
  InstallSnapshot(*decoded->snapshot);
  if (hs_.commit > before) ++stats_.snapshots_installed;
  SendSnapshotAck(m.from, c, c.total_bytes);
  if (role_ == Role::kCandidate) {
    recover_from_ = std::max(recover_from_, hs_.commit + 1);
    recovered_.erase(recovered_.begin(), recovered_.lower_bound(recover_from_));
    MaybeFinishPhase1();
  }
}

void Replica::SendSnapshotAck(uint32_t to, const SnapshotChunk& c, uint64_t next_offset) {
  Message r;
  r.type = MessageType::kSnapshotAck;
  r.to = to;
  r.ballot = hs_.promised;
  r.commit = hs_.commit;
  SnapshotChunk ack;
  ack.index = c.index;
  ack.offset = next_offset;
  ack.total_bytes = c.total_bytes;
  ack.hash = c.hash;
  r.chunk = std::move(ack);
  Send(std::move(r));
}

void Replica::HandleSnapshotAck(const Message& m) {
  std::optional<OutTransfer>& t = transfers_[m.from];
  const SnapshotChunk& c = *m.chunk;
  if (!t || t->index != c.index || t->hash != c.hash || t->bytes->size() != c.total_bytes) {
    return;  // an answer about a transfer that is over
  }
  if (c.offset >= c.total_bytes) {
    t.reset();
    TrimLog();
    if (role_ == Role::kLeader) {
      // Continue from the log right away rather than at the next heartbeat.
      peers_[m.from].last_catchup_tick = 0;
      MaybeCatchUp(m.from, m.commit, hs_.commit);
    }
    return;
  }
  // Progress, or the receiver asks to start over; an older ack (duplicate) changes nothing.
  if (c.offset > t->offset || c.offset == 0) {
    const bool progress = c.offset > t->offset;
    t->offset = c.offset;
    if (progress) t->resends = 0;
    SendChunk(m.from);
  }
}

size_t Replica::ChunkBytes() const {
  return std::min(cfg_.snapshot_chunk_bytes_max, cfg_.message_bytes_max - kMessageOverheadBytes);
}

void Replica::StartTransfer(uint32_t peer) {
  if (peer == cfg_.id || snapshot_.index == 0 || transfers_[peer]) return;
  if (!snapshot_bytes_) {
    Message whole;
    whole.type = MessageType::kInstallSnapshot;
    whole.snapshot = snapshot_;
    auto bytes = std::make_shared<const std::string>(EncodeMessage(whole));
    assert(bytes->size() <= kSnapshotBytesMax && "snapshot larger than FlatBuffers allows");
    snapshot_hash_ = HashBytes(*bytes);
    snapshot_bytes_ = std::move(bytes);
  }
  OutTransfer t;
  t.bytes = snapshot_bytes_;
  t.index = snapshot_.index;
  t.hash = snapshot_hash_;
  transfers_[peer] = std::move(t);
  ++stats_.snapshots_sent;
  SendChunk(peer);
}

void Replica::SendChunk(uint32_t peer) {
  OutTransfer& t = *transfers_[peer];
  Message m;
  m.type = MessageType::kInstallSnapshot;
  m.to = peer;
  m.ballot = hs_.promised;
  m.commit = hs_.commit;
  SnapshotChunk c;
  c.index = t.index;
  c.offset = t.offset;
  c.total_bytes = t.bytes->size();
  c.hash = t.hash;
  c.bytes = t.bytes->substr(t.offset, ChunkBytes());
  m.chunk = std::move(c);
  t.sent_tick = ticks_;
  ++stats_.snapshot_chunks_sent;
  Send(std::move(m));
}

void Replica::ResendChunks() {
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    std::optional<OutTransfer>& t = transfers_[p];
    if (!t || t->sent_tick + static_cast<uint64_t>(cfg_.resend_ticks) > ticks_) continue;
    if (++t->resends > cfg_.snapshot_resends_max) {
      // The peer is down or unreachable: stop pinning the snapshot (and the log it needs).
      // Whoever still needs it asks again (a heartbeat answer, a prepare).
      ++stats_.snapshot_transfers_abandoned;
      t.reset();
      TrimLog();
      continue;
    }
    SendChunk(p);
  }
}

void Replica::TrimLog() {
  uint64_t upto = snapshot_.index;
  for (const auto& t : transfers_) {
    if (t) upto = std::min(upto, t->index);
  }
  log_.erase(log_.begin(), log_.upper_bound(upto));
  // The encoded copy doubles the snapshot's memory: keep it only while a transfer uses it.
  if (snapshot_bytes_ && snapshot_bytes_.use_count() == 1) snapshot_bytes_.reset();
}

bool Replica::ApplySession(uint64_t client_id, uint64_t seq, bool* repeat) {
  auto it = sessions_.find(client_id);
  bool dup = false;
  if (it == sessions_.end()) {
    session_lru_.emplace_back(client_id, seq);
    sessions_.emplace(client_id, std::prev(session_lru_.end()));
  } else {
    dup = it->second->second >= seq;
    if (repeat != nullptr) *repeat = it->second->second == seq;
    if (!dup) it->second->second = seq;
    session_lru_.splice(session_lru_.end(), session_lru_, it->second);
  }
  // Per command, not per Ready: every replica must forget the same client at the same slot
  // (duplicate decisions are part of the replicated state). A forgotten client loses
  // exactly-once only for a retry that arrives after sessions_max other clients were served.
  while (sessions_.size() > cfg_.sessions_max) {
    sessions_.erase(session_lru_.front().first);
    session_lru_.pop_front();
    ++stats_.sessions_evicted;
  }
  return dup;
}

void Replica::LoadSessions(const std::vector<std::pair<uint64_t, uint64_t>>& sessions) {
  session_lru_.clear();
  sessions_.clear();
  for (const auto& [client, seq] : sessions) (void)ApplySession(client, seq);
}

std::vector<std::pair<uint64_t, uint64_t>> Replica::SessionList() const {
  return {session_lru_.begin(), session_lru_.end()};
}

void Replica::InstallSnapshot(const Snapshot& s) {
  if (s.index <= hs_.commit) return;  // we already hold everything it covers
  // Unconditionally (unlike TrimLog): entries below a snapshot we did not take ourselves
  // may hold values that lost; a transfer we still run has its own bytes pinned.
  log_.erase(log_.begin(), log_.upper_bound(s.index));
  snapshot_ = s;
  snapshot_bytes_.reset();
  LoadSessions(s.sessions);
  hs_.commit = s.index;
  hs_dirty_ = true;
  applied_ = s.index;
  snapshot_dirty_ = true;
  install_pending_ = true;
  const Membership m = s.members.voters != 0 ? s.members : Membership::Initial(cfg_.replicas);
  applied_members_ = m;
  members_applied_dirty_ = true;
  if (m != members_) ApplyMembers(m);
}

bool Replica::MembershipSettled() const {
  if (role_ != Role::kLeader) return false;
  int known = 0;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (!members_.IsVoter(p)) continue;
    if ((p == cfg_.id ? hs_.commit : peers_[p].commit) >= members_slot_) ++known;
  }
  return known >= members_.Quorum();
}

bool Replica::Counts(uint32_t id) const {
  return members_.IsVoter(id) || (cfg_.unsafe_learners_count && members_.IsLearner(id));
}

void Replica::ApplyMembers(const Membership& m) {
  // Replicas this change removed are sent nothing as members any more: the leader keeps
  // telling them the commit index until they have learned it (or for a bounded time), so
  // that they know they left and never campaign.
  departed_ = (members_.voters | members_.learners) & ~(m.voters | m.learners);
  departed_slot_ = hs_.commit;
  members_slot_ = hs_.commit;
  departed_until_tick_ = ticks_ + 100 * static_cast<uint64_t>(cfg_.election_ticks);
  members_ = m;
  change_slot_ = 0;
  ++stats_.member_changes;
  switch (role_) {
    case Role::kLeader:
      if (members_.IsVoter(cfg_.id)) {
        // The slots above the change belong to the new voters: phase 1 among them, with a
        // fresh ballot. Queued commands wait for it rather than fail.
        std::deque<Command> queued = std::move(pending_);
        StartElection(Ballot{});
        if (role_ == Role::kCandidate || role_ == Role::kLeader) {
          for (auto& c : queued) pending_.push_back(std::move(c));
          FillWindow();
        }
      } else {
        BecomeFollower(Ballot{}, -1);
      }
      break;
    case Role::kCandidate:
    case Role::kPreCandidate:
      // A candidacy counted the old voters; start over under the new ones.
      BecomeFollower(Ballot{}, -1);
      break;
    case Role::kFollower:
      break;
  }
}

Status Replica::ChangeMembers(MemberChange change, uint32_t id) {
  if (role_ != Role::kLeader || transfer_to_ >= 0) {
    return Status(Code::kUnavailable, "paxos: not the leader");
  }
  if (hs_.commit < reads_ok_after_) {
    return Status(Code::kUnavailable, "paxos: leader recovery not yet committed");
  }
  if (change_slot_ != 0) {
    return Status(Code::kBusy, "paxos: a membership change is in progress (slot " +
                                   std::to_string(change_slot_) + ")");
  }
  if (id >= Membership::kIdsMax) return InvalidArgument("paxos: replica id out of range");
  const uint64_t bit = uint64_t{1} << id;
  Membership next = members_;
  ++next.epoch;
  switch (change) {
    case MemberChange::kAddLearner:
      if (members_.IsMember(id)) {
        return InvalidArgument("paxos: replica " + std::to_string(id) + " is already a member");
      }
      next.learners |= bit;
      break;
    case MemberChange::kPromote: {
      if (!members_.IsLearner(id)) {
        return InvalidArgument("paxos: replica " + std::to_string(id) + " is not a learner");
      }
      const Peer& p = peers_[id];
      if (p.last_heard_tick == 0 || p.last_heard_tick + cfg_.election_ticks < ticks_ ||
          p.commit + cfg_.window_slots < hs_.commit) {
        return Status(Code::kBusy, "paxos: learner " + std::to_string(id) +
                                       " is not caught up (commit " + std::to_string(p.commit) +
                                       " of " + std::to_string(hs_.commit) + ")");
      }
      next.learners &= ~bit;
      next.voters |= bit;
      break;
    }
    case MemberChange::kRemove:
      if (!members_.IsMember(id)) {
        return InvalidArgument("paxos: replica " + std::to_string(id) + " is not a member");
      }
      if (id == cfg_.id) return InvalidArgument("paxos: the leader cannot remove itself");
      next.voters &= ~bit;
      next.learners &= ~bit;
      break;
    default:
      return InvalidArgument("paxos: unknown membership change");
  }
  Entry e;
  e.slot = next_slot_++;
  e.ballot = ballot_;
  e.epoch = members_.epoch;
  e.members = next;
  Persist(e, /*sync=*/true);
  Inflight f;
  f.acks_mask = uint64_t{1} << cfg_.id;
  f.sent_tick = ticks_;
  inflight_[e.slot] = f;
  change_slot_ = e.slot;
  ++stats_.slots_proposed;
  const uint64_t to = members_.voters | members_.learners | next.voters | next.learners;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (p != cfg_.id && ((to >> p) & 1) != 0) SendAccepts(p, {e.slot});
  }
  AdvanceLeaderCommit();  // a group of one
  return Status::Ok();
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
    if (it->second.members) ApplyMembers(*it->second.members);
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
  change_slot_ = 0;
  ResetElectionTimer();
}

void Replica::Campaign() {
  if (cfg_.unsafe_disable_pre_vote) {
    StartElection(Ballot{});
  } else {
    StartPreVote();
  }
}

// PreVote (Ongaro's thesis, 9.6; etcd's PreVote): ask first whether a majority would
// promise, with the ballot phase 1 would use, raising nobody's promise (not even our own).
// A replica cut off from the group keeps failing here, so its ballot stays where it was and
// it rejoins as a follower instead of deposing the leader with a higher ballot.
void Replica::StartPreVote() {
  ++stats_.pre_votes;
  BecomeFollower(Ballot{}, -1);
  role_ = Role::kPreCandidate;
  pre_vote_ballot_ = Ballot{std::max(max_round_seen_, hs_.promised.round) + 1, cfg_.id};
  pre_vote_mask_ = uint64_t{1} << cfg_.id;
  pre_vote_granted_ = 1;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (p == cfg_.id || !members_.IsVoter(p)) continue;
    Message m;
    m.type = MessageType::kPreVote;
    m.to = p;
    m.ballot = pre_vote_ballot_;
    m.commit = hs_.commit;
    Send(std::move(m));
  }
  if (pre_vote_granted_ >= members_.Quorum()) StartElection(Ballot{});  // a group of one
}

void Replica::HandlePreVote(const Message& m) {
  // No: we lead (and check quorum would have stopped us if we could not), or we heard
  // from a live leader within the (minimum) election timeout, or a lease we granted
  // forbids helping this candidate. Answering changes nothing in our own state.
  bool grant = true;
  if (role_ == Role::kLeader) grant = false;
  if (role_ == Role::kFollower && leader_ >= 0 && election_elapsed_ < cfg_.election_ticks) {
    grant = false;
  }
  if (LeaseBlocks(m.from, Ballot{})) grant = false;
  if (!grant) ++stats_.pre_vote_refusals;
  Message r;
  r.type = MessageType::kPreVoteReply;
  r.to = m.from;
  r.ballot = m.ballot;
  r.promised = hs_.promised;  // lets the candidate pick a ballot above it
  r.granted = grant;
  Send(std::move(r));
}

void Replica::HandlePreVoteReply(const Message& m) {
  if (role_ != Role::kPreCandidate || m.ballot != pre_vote_ballot_ || !m.granted) return;
  const uint64_t bit = uint64_t{1} << m.from;
  if ((pre_vote_mask_ & bit) || !Counts(m.from)) return;
  pre_vote_mask_ |= bit;
  if (++pre_vote_granted_ >= members_.Quorum()) StartElection(Ballot{});
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
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (p != cfg_.id && members_.IsVoter(p)) SendPrepare(p, recover_from_);
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
  // Slots up to the acceptor's snapshot are chosen and we may have missed them: the
  // promise counts once we installed that snapshot (the acceptor is sending it), and
  // recovery then starts above it (HandleInstallSnapshot).
  p.needs_index = std::max(p.needs_index, m.compacted_index);
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
  if (role_ != Role::kCandidate) return;
  int complete = 0;
  for (uint32_t id = 0; id < Membership::kIdsMax; ++id) {
    const PeerPromise& p = promises_[id];
    if (Counts(id) && p.complete && p.needs_index <= hs_.commit) ++complete;
  }
  if (complete >= members_.Quorum()) BecomeLeader();
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
  RecoverMembership();
  if (role_ != Role::kLeader) return;
  change_slot_ = 0;
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
    e.epoch = members_.epoch;
    if (e.members) change_slot_ = s;  // RecoverMembership left it last: nothing follows it
    Persist(e, /*sync=*/true);
    Inflight f;
    f.acks_mask = uint64_t{1} << cfg_.id;
    f.sent_tick = ticks_;
    inflight_[s] = f;
    slots.push_back(s);
    ++stats_.slots_proposed;
  }
  recovered_.clear();
  next_slot_ = max_slot + 1;
  reads_ok_after_ = max_slot;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (p != cfg_.id && members_.IsMember(p) && !slots.empty()) SendAccepts(p, slots);
  }
  SendHeartbeats();
  AdvanceLeaderCommit();
  FillWindow();
}

void Replica::RecoverMembership() {
  // Entries of an older epoch above our commit index were proposed by a leader that had
  // missed a change committed below them: never chosen (see the file comment).
  for (auto it = recovered_.begin(); it != recovered_.end();) {
    if (it->second.epoch < members_.epoch) {
      ++stats_.recovered_dropped;
      it = recovered_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = recovered_.begin(); it != recovered_.end(); ++it) {
    Entry& x = it->second;
    if (x.epoch > members_.epoch) {
      // A later epoch with no change of ours below it: we missed a change that was chosen
      // and cannot lead its slots. Stand down; catch-up from its leader will bring it.
      BecomeFollower(Ballot{}, -1);
      return;
    }
    if (!x.members) continue;
    bool next_epoch = false;  // X was chosen: its epoch went on above it
    bool outranked = false;   // X lost: a leader of X's epoch went past it, at a higher ballot
    for (auto j = std::next(it); j != recovered_.end(); ++j) {
      if (j->second.epoch > x.epoch) next_epoch = true;
      if (j->second.epoch == x.epoch && j->second.ballot > x.ballot) outranked = true;
    }
    if (outranked && !next_epoch && !cfg_.unsafe_keep_lost_changes) {
      ++stats_.lost_changes;
      x.members.reset();
      x.noop = true;
      continue;
    }
    // X may be chosen: it ends our view of this epoch. What lies above it belongs to the
    // next one, recovered by phase 1 among X's voters once X is committed.
    stats_.recovered_dropped += static_cast<uint64_t>(std::distance(std::next(it), recovered_.end()));
    recovered_.erase(std::next(it), recovered_.end());
    return;
  }
}

void Replica::HandleNack(const Message& m) {
  if (role_ == Role::kFollower || role_ == Role::kPreCandidate || m.ballot != ballot_ ||
      m.promised <= ballot_) {
    return;
  }
  // Someone promised a higher ballot: our leadership (or candidacy) is over.
  BecomeFollower(Ballot{}, -1);
}

// ---------------------------------------------------------------------------------------
// Leader side.

void Replica::FillWindow() {
  // Nothing follows an uncommitted membership change (see the file comment).
  while (role_ == Role::kLeader && transfer_to_ < 0 && !pending_.empty() &&
         change_slot_ == 0 && next_slot_ - hs_.commit - 1 < cfg_.window_slots) {
    Entry e;
    e.slot = next_slot_++;
    e.ballot = ballot_;
    e.epoch = members_.epoch;
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
    f.sent_tick = ticks_;
    inflight_[e.slot] = f;
    for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
      if (p != cfg_.id && members_.IsMember(p)) SendAccepts(p, {e.slot});
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
  // The next one is due at the next multiple of heartbeat_ticks: every group a node leads
  // then beats in the same round (ticks_ runs in step across a node's groups), so their
  // heartbeats, and the answers, share one transport message per peer.
  heartbeat_elapsed_ = static_cast<int>(ticks_ % static_cast<uint64_t>(cfg_.heartbeat_ticks));
  ++hb_round_;
  round_times_.emplace_back(hb_round_, now_us_);
  while (round_times_.size() > 4096) round_times_.pop_front();
  if (ticks_ > departed_until_tick_) departed_ = 0;
  const uint64_t to = members_.voters | members_.learners | departed_;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (p == cfg_.id || ((to >> p) & 1) == 0) continue;
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
  std::vector<std::vector<uint64_t>> per_peer(Membership::kIdsMax);
  const uint64_t members = members_.voters | members_.learners;
  for (auto& [slot, f] : inflight_) {
    if (f.sent_tick + cfg_.resend_ticks > ticks_) continue;
    f.sent_tick = ticks_;
    for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
      const uint64_t bit = uint64_t{1} << p;
      if (p != cfg_.id && (members & bit) && !(f.acks_mask & bit)) per_peer[p].push_back(slot);
    }
  }
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
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
    if (it != inflight_.end()) it->second.acks_mask |= bit;
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
  if (m.commit >= departed_slot_) departed_ &= ~(uint64_t{1} << m.from);
  ConfirmRounds();
  MaybeCatchUp(m.from, m.commit, m.last_slot);
  MaybeSendTimeoutNow();
}

void Replica::AdvanceLeaderCommit() {
  uint64_t counted = 0;  // the acknowledgements that count towards a quorum
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (Counts(p)) counted |= uint64_t{1} << p;
  }
  bool advanced = false;
  while (role_ == Role::kLeader && !inflight_.empty() &&
         inflight_.begin()->first == hs_.commit + 1 &&
         std::popcount(inflight_.begin()->second.acks_mask & counted) >= members_.Quorum()) {
    Entry& e = log_.at(hs_.commit + 1);
    e.chosen = true;
    ++hs_.commit;
    hs_dirty_ = true;
    inflight_.erase(inflight_.begin());
    advanced = true;
    if (e.members) {
      ApplyMembers(*e.members);  // runs phase 1 again (or steps down): nothing follows it
      return;
    }
  }
  if (advanced) FillWindow();
}

void Replica::ConfirmRounds() {
  std::vector<uint64_t> acked;
  for (uint32_t p = 0; p < Membership::kIdsMax; ++p) {
    if (Counts(p)) acked.push_back(p == cfg_.id ? hb_round_ : peers_[p].acked_round);
  }
  const size_t quorum = static_cast<size_t>(members_.Quorum());
  if (acked.size() < quorum) return;
  std::sort(acked.begin(), acked.end(), std::greater<>());
  const uint64_t confirmed = acked[quorum - 1];
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
  if (role_ != Role::kLeader) return;  // e.g. phase 1 again right after a membership change
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
  if (!log_.count(peer_commit + 1)) {
    // The entries it needs are compacted away: send the snapshot (in chunks) instead.
    StartTransfer(peer);
    return;
  }
  size_t bytes = 0;
  for (uint64_t s = peer_commit + 1; s <= hs_.commit; ++s) {
    const Entry& e = log_.at(s);
    // At least one entry per message: a single entry always fits (CommandBytesMax).
    if (!m.entries.empty() && (m.entries.size() >= cfg_.catchup_entries_max ||
                               bytes + e.ByteSize() > cfg_.message_bytes_max / 2)) {
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

bool MaySendBeforePersist(MessageType type) {
  return type == MessageType::kAccept || type == MessageType::kHeartbeat || type == MessageType::kCatchUp;
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
