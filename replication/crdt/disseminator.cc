#include "replication/crdt/disseminator.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <utility>

#include "flatbuffers/flatbuffers.h"
#include "replication/crdt/codec.h"
#include "replication/wire/crdt_generated.h"

namespace geokv::crdt {

namespace fbw = ::geokv::wire::crdt;

namespace {

// Version 2 packs delta entries (DeltaBatch.packed). A version 1 node drops version 2
// messages (counted as bad, never acknowledged, so resent until it is upgraded: nothing is
// lost); this one reads both.
constexpr uint16_t kWireVersion = 2;
constexpr uint16_t kWireVersionOldest = 1;

// FlatBuffers bytes around one KeyState (table, two vector headers, alignment padding,
// its slot in the entries vector; about 40 in practice). Counted generously, so that a
// message sized by these counts never exceeds message_bytes_max and is never refused.
constexpr size_t kEntryFramingBytes = 64;

size_t EntryWireBytes(std::string_view key, std::string_view state) {
  return key.size() + state.size() + kEntryFramingBytes;
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(flatbuffers::FlatBufferBuilder& b,
                                                         std::string_view s) {
  return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string_view View(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(v->data()), v->size());
}

template <typename T>
std::string Finish(flatbuffers::FlatBufferBuilder& b, ReplicaId from, fbw::Body type,
                   flatbuffers::Offset<T> body) {
  auto msg = fbw::CreateMessage(b, kWireVersion, from, type, body.Union());
  b.Finish(msg);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fbw::KeyState>>> Entries(
    flatbuffers::FlatBufferBuilder& b,
    const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<flatbuffers::Offset<fbw::KeyState>> out;
  out.reserve(entries.size());
  for (const auto& [key, state] : entries) {
    auto k = Bytes(b, key);
    auto s = Bytes(b, state);
    out.push_back(fbw::CreateKeyState(b, k, s));
  }
  return b.CreateVector(out);
}

// The entries of a batch as one byte string: key and state, each length-prefixed.
flatbuffers::Offset<flatbuffers::Vector<uint8_t>> PackedEntries(
    flatbuffers::FlatBufferBuilder& b, const std::vector<std::pair<std::string, std::string>>& entries) {
  Encoder enc;
  for (const auto& [key, state] : entries) {
    enc.PutBytes(key);
    enc.PutBytes(state);
  }
  return Bytes(b, enc.bytes());
}

// Validates one received entry; fails if it is malformed or over the limits (then
// kKeyTooLarge or kValueTooLarge, so the caller can count it as such).
Status DecodeEntry(std::string_view key, std::string_view state, size_t key_bytes_max,
                   const CrdtLimits& limits, std::vector<std::pair<std::string, std::string>>* out) {
  if (key.empty()) return Corruption("entry with an empty key");
  if (key.size() > key_bytes_max) return Status(Code::kKeyTooLarge, "entry with a key over the limit");
  auto v = CrdtValue::Decode(state, limits);
  if (!v.ok()) return v.status();
  out->emplace_back(std::string(key), std::string(state));
  return Status::Ok();
}

// Decodes and validates entries, tables first, then packed ones; fails on the first bad one.
Status DecodeEntries(const flatbuffers::Vector<flatbuffers::Offset<fbw::KeyState>>* entries,
                     const flatbuffers::Vector<uint8_t>* packed, size_t key_bytes_max,
                     const CrdtLimits& limits, std::vector<std::pair<std::string, std::string>>* out) {
  if (entries != nullptr) {
    for (const fbw::KeyState* e : *entries) {
      GEOKV_RETURN_IF_ERROR(DecodeEntry(View(e->key()), View(e->state()), key_bytes_max, limits, out));
    }
  }
  Decoder dec(View(packed));
  while (!dec.done()) {
    std::string_view key, state;
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(dec.remaining(), &key, "packed entry key"));
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(dec.remaining(), &state, "packed entry state"));
    GEOKV_RETURN_IF_ERROR(DecodeEntry(key, state, key_bytes_max, limits, out));
  }
  return Status::Ok();
}

}  // namespace

Disseminator::Disseminator(DisseminatorOptions options, DurableImage image)
    : options_(options),
      regions_(options.regions),
      limits_(options.limits.ForCluster(options.regions, options.key_bytes_max, options.message_bytes_max)),
      // Window 1 ms: timestamps leave this machine only through a Ready, which persists
      // the mark first, so the mark can track the clock exactly and a restart starts at
      // most 1 ms ahead instead of jumping a whole window into the future.
      clock_(HlcOptions{options.self, options.hlc_skew_report_ms, 1, options.unsafe_refuse_remote_stamps_ahead},
             image.progress ? image.progress->hlc_high_water_ms : 0) {
  assert(options_.regions >= 1 && options_.regions <= kReplicasMax);
  assert(options_.self < options_.regions);
  const size_t n = options_.regions;
  const bool fresh = !image.progress;
  if (image.progress) progress_ = *image.progress;
  progress_.applied.resize(n, 0);
  progress_.acked.resize(n, 0);
  retired_.assign(n, false);
  departed_.assign(n, false);
  for (ReplicaId r : progress_.retired) {
    if (r < n) retired_[r] = true;
  }
  if (fresh && options_.join && !options_.unsafe_join_without_transfer) {
    for (ReplicaId r = 0; r < n; ++r) {
      if (r != options_.self) progress_.join_pending.push_back(r);
    }
    MarkProgress();  // the first Ready persists the join, before any transfer is asked for
  }
  for (auto& [key, bytes] : image.states) {
    // Decoding accepts everything this node can hold (limits.h), so a failure here is
    // storage corruption or limits lowered below the data: never drop the key silently.
    auto v = CrdtValue::Decode(bytes, limits_);
    if (v.ok()) {
      states_.emplace(key, std::move(*v));
      continue;
    }
    ++stats_.states_unreadable;
    if (open_status_.ok()) {
      open_status_ = Corruption("persisted crdt state of key '" + key.substr(0, 64) +
                                "' does not decode: " + v.status().message());
    }
    unreadable_.emplace(key, std::move(bytes));
  }
  for (auto& b : image.log) {
    if (b.seq >= progress_.next_seq) progress_.next_seq = b.seq + 1;
    log_.push_back(std::move(b));
  }
  for (auto& [key, bytes] : image.open_batch) {
    auto v = CrdtValue::Decode(bytes, limits_);
    if (v.ok()) {
      open_batch_.emplace(key, std::move(*v));
    } else if (++stats_.states_unreadable; open_status_.ok()) {
      open_status_ = Corruption("persisted unsealed delta of key '" + key.substr(0, 64) +
                                "' does not decode: " + v.status().message());
    }
  }
  uint64_t log_first = log_.empty() ? progress_.next_seq : log_.front().seq;
  for (size_t p = 0; p < n; ++p) {
    // Never believe a peer holds less than what the log no longer has; the peer itself
    // notices the gap from log_first_seq and asks for a transfer.
    if (p != options_.self) progress_.acked[p] = std::max(progress_.acked[p], log_first - 1);
  }
  sent_upto_ = progress_.acked;
  last_batch_hlc_.assign(n, HlcTimestamp{});
  known_stable_.assign(n, HlcTimestamp{});
  for (const auto& [key, v] : states_) {
    if (auto* l = v.As<LwwRegister>(); l && l->deleted()) tombstones_.insert(key);
  }
  last_send_us_.assign(n, 0);
  reorder_.resize(n);
  transfers_.resize(n);
  ack_due_.assign(n, false);
}

// ---------------------------------------------------------------- local operations

Status Disseminator::CheckKey(std::string_view key) const {
  if (key.empty()) return InvalidArgument("empty key");
  if (key.size() > options_.key_bytes_max) {
    return Status(Code::kKeyTooLarge, "key of " + std::to_string(key.size()) + " bytes exceeds " +
                                          std::to_string(options_.key_bytes_max));
  }
  return Status::Ok();
}

void Disseminator::ObserveWallClock(int64_t wall_us) {
  wall_ms_ = wall_us / 1000;
  has_wall_ = true;
}

size_t Disseminator::StateBudgetBytes() const {
  return options_.message_bytes_max > CrdtLimits::kFramingBytes
             ? options_.message_bytes_max - CrdtLimits::kFramingBytes
             : 0;
}

Status Disseminator::CheckReadContext(const CausalContext& read) const {
  if (read.cloud_size() > kCloudDotsMax) {
    return InvalidArgument("read context carries " + std::to_string(read.cloud_size()) +
                           " out-of-order dots (limit " + std::to_string(kCloudDotsMax) + ")");
  }
  for (const auto& [r, n] : read.vv()) {
    if (r >= regions_) return InvalidArgument("read context names region " + std::to_string(r));
  }
  for (const Dot& d : read.cloud()) {
    if (d.replica >= regions_) return InvalidArgument("read context names region " + std::to_string(d.replica));
  }
  return Status::Ok();
}

void Disseminator::NoteJoinedSize(const CrdtValue& v) {
  const DotKernel* k = nullptr;
  size_t count_max = 0;
  if (auto* s = v.As<OrSet>()) {
    k = &s->kernel();
    count_max = limits_.HeldSetElementsMax();
  } else if (auto* m = v.As<MvRegister>()) {
    k = &m->kernel();
    count_max = limits_.HeldSiblingsMax();
  }
  if (k == nullptr) return;
  // Kept either way (joins never refuse); counted because a state transfer may have to
  // wait until it shrinks again.
  if (k->size() > count_max || k->footprint_bytes() > limits_.state_bytes_max * limits_.regions) {
    ++stats_.states_over_held_cap;
  }
}

StatusOr<CrdtValue*> Disseminator::Mutable(std::string_view key, CrdtType type) {
  if (joining()) {
    return Status(Code::kUnavailable, "joining: waiting for state transfers from " +
                                          std::to_string(progress_.join_pending.size()) + " replicas");
  }
  GEOKV_RETURN_IF_ERROR(CheckKey(key));
  if (auto u = unreadable_.find(key); u != unreadable_.end()) return open_status_;
  auto it = states_.find(key);
  if (it == states_.end()) it = states_.emplace(std::string(key), CrdtValue(type)).first;
  if (it->second.type() != type) {
    return Status(Code::kWrongMode, "key holds a " + std::string(CrdtTypeName(it->second.type())) +
                                        ", not a " + std::string(CrdtTypeName(type)));
  }
  return &it->second;
}

void Disseminator::QueueDelta(std::string_view key, const CrdtValue& delta) {
  if (open_batch_.empty()) open_since_us_ = now_us_;
  const CrdtValue& shipped = options_.ship_full_state ? *Get(key) : delta;
  auto it = open_batch_.find(key);
  if (it == open_batch_.end()) {
    open_batch_.emplace(std::string(key), shipped);
  } else if (options_.ship_full_state) {
    it->second = shipped;
  } else {
    Status s = it->second.Join(shipped);
    assert(s.ok());
    (void)s;
  }
  open_batch_bytes_ += key.size() + shipped.Encode().size();
  open_batch_dirty_ = true;
  dirty_.insert(std::string(key));
  if (open_batch_bytes_ >= options_.batch_bytes_max) SealBatch();
}

namespace {
// Drops a value created by a failed operation so failures leave no trace.
template <typename M>
void EraseIfFresh(M& states, std::string_view key, bool fresh) {
  if (!fresh) return;
  auto it = states.find(key);
  if (it != states.end()) states.erase(it);
}
}  // namespace

Status Disseminator::PutLww(std::string_view key, std::string_view value) {
  bool fresh = states_.find(key) == states_.end();
  auto v = Mutable(key, CrdtType::kLww);
  if (!v.ok()) return v.status();
  LwwRegister* reg = (*v)->As<LwwRegister>();
  if (value.size() > limits_.value_bytes_max) {
    EraseIfFresh(states_, key, fresh);
    return Status(Code::kValueTooLarge, "lww value of " + std::to_string(value.size()) +
                                            " bytes exceeds " + std::to_string(limits_.value_bytes_max));
  }
  // Strictly above the key's stamp, whatever the wall clock says, so the put wins here
  // and (being the greatest stamp) everywhere.
  const HlcTimestamp ts = clock_.NowAbove(reg->stamp(), WallMs());
  auto d = reg->Put(value, ts, limits_);
  if (!d.ok()) {
    EraseIfFresh(states_, key, fresh);
    return d.status();
  }
  assert(options_.unsafe_refuse_remote_stamps_ahead || reg->stamp() == ts);
  if (!(*v)->As<LwwRegister>()->deleted()) {
    auto t = tombstones_.find(key);
    if (t != tombstones_.end()) tombstones_.erase(t);
  }
  QueueDelta(key, CrdtValue(std::move(*d)));
  return Status::Ok();
}

Status Disseminator::DeleteLww(std::string_view key) {
  auto v = Mutable(key, CrdtType::kLww);
  if (!v.ok()) return v.status();
  LwwRegister* reg = (*v)->As<LwwRegister>();
  LwwRegister d = reg->Delete(clock_.NowAbove(reg->stamp(), WallMs()));
  QueueDelta(key, CrdtValue(std::move(d)));
  tombstones_.insert(std::string(key));
  return Status::Ok();
}

Status Disseminator::WriteMv(std::string_view key, std::string_view value, const CausalContext& read) {
  bool fresh = states_.find(key) == states_.end();
  auto v = Mutable(key, CrdtType::kMvReg);
  if (!v.ok()) return v.status();
  if (Status s = CheckReadContext(read); !s.ok()) {
    EraseIfFresh(states_, key, fresh);
    return s;
  }
  auto d = (*v)->As<MvRegister>()->Write(options_.self, value, read, limits_);
  if (!d.ok()) {
    EraseIfFresh(states_, key, fresh);
    return d.status();
  }
  QueueDelta(key, CrdtValue(std::move(*d)));
  return Status::Ok();
}

Status Disseminator::DeleteMv(std::string_view key, const CausalContext& read) {
  GEOKV_RETURN_IF_ERROR(CheckReadContext(read));
  auto v = Mutable(key, CrdtType::kMvReg);
  if (!v.ok()) return v.status();
  MvRegister d = (*v)->As<MvRegister>()->Delete(read);
  QueueDelta(key, CrdtValue(std::move(d)));
  return Status::Ok();
}

Status Disseminator::AddCounter(std::string_view key, int64_t delta) {
  bool fresh = states_.find(key) == states_.end();
  auto v = Mutable(key, CrdtType::kCounter);
  if (!v.ok()) return v.status();
  auto d = (*v)->As<PnCounter>()->Add(options_.self, delta);
  if (!d.ok()) {
    EraseIfFresh(states_, key, fresh);
    return d.status();
  }
  QueueDelta(key, CrdtValue(std::move(*d)));
  return Status::Ok();
}

Status Disseminator::SetAdd(std::string_view key, std::string_view element) {
  bool fresh = states_.find(key) == states_.end();
  auto v = Mutable(key, CrdtType::kSet);
  if (!v.ok()) return v.status();
  auto d = (*v)->As<OrSet>()->Add(options_.self, element, limits_);
  if (!d.ok()) {
    EraseIfFresh(states_, key, fresh);
    return d.status();
  }
  QueueDelta(key, CrdtValue(std::move(*d)));
  return Status::Ok();
}

Status Disseminator::SetRemove(std::string_view key, std::string_view element) {
  auto v = Mutable(key, CrdtType::kSet);
  if (!v.ok()) return v.status();
  OrSet d = (*v)->As<OrSet>()->Remove(element);
  QueueDelta(key, CrdtValue(std::move(d)));
  return Status::Ok();
}

const CrdtValue* Disseminator::Get(std::string_view key) const {
  auto it = states_.find(key);
  return it == states_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- sending

void Disseminator::Send(ReplicaId to, std::string bytes) {
  stats_.bytes_sent += bytes.size();
  pending_.messages.push_back(OutMessage{to, std::move(bytes)});
}

void Disseminator::SealBatch(bool heartbeat) {
  if (open_batch_.empty() && !heartbeat) return;
  if (!open_batch_.empty()) last_activity_us_ = now_us_;
  DeltaBatch b;
  b.seq = progress_.next_seq++;
  b.hlc = clock_.Now(WallMs());
  last_batch_hlc_[options_.self] = b.hlc;
  last_seal_us_ = now_us_;
  b.entries.reserve(open_batch_.size());
  for (auto& [key, delta] : open_batch_) b.entries.emplace_back(key, delta.Encode());
  open_batch_.clear();
  open_batch_bytes_ = 0;
  open_batch_dirty_ = true;
  pending_.log_append.push_back(b);
  log_.push_back(std::move(b));
  ++stats_.batches_sealed;
  MarkProgress();
  for (ReplicaId p = 0; p < regions_; ++p) {
    if (!Peer(p)) continue;
    // Stream to peers that are in sync; others catch up on ack or resend.
    if (sent_upto_[p] + 1 == log_.back().seq) SendDeltas(p, false);
  }
  TruncateLog();
}

void Disseminator::SendDeltas(ReplicaId peer, bool force) {
  const uint64_t last = progress_.next_seq - 1;
  const uint64_t from = std::max(sent_upto_[peer], progress_.acked[peer]) + 1;
  const uint64_t log_first = log_.empty() ? progress_.next_seq : log_.front().seq;
  flatbuffers::FlatBufferBuilder b(1024);
  std::vector<flatbuffers::Offset<fbw::DeltaBatch>> batches;
  size_t bytes = 0;
  uint64_t sent = sent_upto_[peer];
  for (const DeltaBatch& batch : log_) {
    if (batch.seq < from) continue;
    size_t size = 0;
    for (const auto& [k, s] : batch.entries) size += EntryWireBytes(k, s);
    if (!batches.empty() && (batches.size() >= options_.batches_per_message_max ||
                             bytes + size > StateBudgetBytes())) {
      break;
    }
    bytes += size;
    auto packed = PackedEntries(b, batch.entries);
    batches.push_back(fbw::CreateDeltaBatch(b, batch.seq, batch.hlc.physical_ms, batch.hlc.logical, 0, packed));
    sent = batch.seq;
  }
  if (batches.empty() && !force) return;
  auto vec = b.CreateVector(batches);
  const HlcTimestamp w = LocalStable();
  fbw::Stable stable(w.physical_ms, w.logical, w.node);
  auto body = fbw::CreateDeltas(b, log_first, last, vec, &stable);
  sent_upto_[peer] = std::max(sent_upto_[peer], sent);
  Send(peer, Finish(b, options_.self, fbw::Body::Deltas, body));
}

void Disseminator::TruncateLog() {
  uint64_t min_acked = progress_.next_seq - 1;
  for (ReplicaId p = 0; p < regions_; ++p) {
    if (Peer(p)) min_acked = std::min(min_acked, progress_.acked[p]);
  }
  bool changed = false;
  while (!log_.empty() && (log_.front().seq <= min_acked || log_.size() > options_.retention_batches)) {
    if (log_.front().seq > min_acked) ++stats_.log_truncated_unacked;
    log_.pop_front();
    changed = true;
  }
  if (changed) pending_.log_first_seq = log_.empty() ? progress_.next_seq : log_.front().seq;
}

void Disseminator::SendAck(ReplicaId origin) {
  flatbuffers::FlatBufferBuilder b(64);
  const HlcTimestamp w = LocalStable();
  fbw::Stable stable(w.physical_ms, w.logical, w.node);
  auto body = fbw::CreateAck(b, progress_.applied[origin], &stable);
  Send(origin, Finish(b, options_.self, fbw::Body::Ack, body));
}

// ---------------------------------------------------------------- receiving

void Disseminator::Step(ReplicaId from, std::string_view bytes) {
  if (from >= regions_ || from == options_.self || bytes.size() > options_.message_bytes_max + (1u << 16)) {
    ++stats_.messages_bad;
    return;
  }
  if (retired_[from]) {
    ++stats_.messages_from_retired;
    return;
  }
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!fbw::VerifyMessageBuffer(verifier)) {
    ++stats_.messages_bad;
    return;
  }
  const fbw::Message* msg = fbw::GetMessage(bytes.data());
  if (msg->version() < kWireVersionOldest || msg->version() > kWireVersion || msg->from() != from) {
    ++stats_.messages_bad;
    return;
  }
  switch (msg->body_type()) {
    case fbw::Body::Deltas: OnDeltas(from, msg->body_as_Deltas()); break;
    case fbw::Body::Ack: OnAck(from, msg->body_as_Ack()); break;
    case fbw::Body::TransferRequest: OnTransferRequest(from, msg->body_as_TransferRequest()); break;
    case fbw::Body::TransferDigest: OnTransferDigest(from, msg->body_as_TransferDigest()); break;
    case fbw::Body::TransferPull: OnTransferPull(from, msg->body_as_TransferPull()); break;
    case fbw::Body::TransferData: OnTransferData(from, msg->body_as_TransferData()); break;
    default: ++stats_.messages_bad; break;
  }
}

void Disseminator::OnDeltas(ReplicaId origin, const void* raw) {
  const auto* m = static_cast<const fbw::Deltas*>(raw);
  if (m == nullptr) {
    ++stats_.messages_bad;
    return;
  }
  // Validate the whole message before touching any state.
  std::vector<DeltaBatch> batches;
  if (m->batches() != nullptr) {
    if (m->batches()->size() > options_.batches_per_message_max * 4) {
      ++stats_.messages_bad;
      return;
    }
    for (const fbw::DeltaBatch* fb : *m->batches()) {
      DeltaBatch batch;
      batch.seq = fb->seq();
      batch.hlc = HlcTimestamp{fb->hlc_physical_ms(), fb->hlc_logical(), origin};
      if (batch.seq == 0) {
        ++stats_.messages_bad;
        return;
      }
      if (Status s = DecodeEntries(fb->entries(), fb->packed(), options_.key_bytes_max, limits_, &batch.entries); !s.ok()) {
        if (s.code() == Code::kValueTooLarge || s.code() == Code::kKeyTooLarge) ++stats_.entries_over_limit;
        ++stats_.messages_bad;
        return;
      }
      batches.push_back(std::move(batch));
    }
  }
  if (m->stable()) NoteStable(origin, m->stable()->physical_ms(), m->stable()->logical(), m->stable()->node());
  if (joining()) {
    // Not even buffered: the join's transfers cover them or the origin resends them.
    stats_.batches_dropped_joining += batches.size();
    return;
  }
  uint64_t& applied = progress_.applied[origin];
  for (DeltaBatch& batch : batches) {
    if (batch.seq <= applied) {
      ++stats_.batches_duplicate;
    } else if (batch.seq == applied + 1 || options_.unsafe_deliver_out_of_order) {
      ApplyBatch(origin, batch);
      DrainReorder(origin);
    } else if (batch.seq - applied <= options_.reorder_window_batches) {
      if (reorder_[origin].emplace(batch.seq, std::move(batch)).second) ++stats_.batches_buffered;
    } else {
      ++stats_.batches_dropped_window;
    }
  }
  if (applied + 1 < m->log_first_seq() && !transfers_[origin].active) StartTransfer(origin);
  ack_due_[origin] = true;
}

void Disseminator::ApplyBatch(ReplicaId origin, const DeltaBatch& batch) {
  if (!batch.entries.empty()) last_activity_us_ = now_us_;
  for (const auto& [key, bytes] : batch.entries) {
    auto v = CrdtValue::Decode(bytes, limits_);
    assert(v.ok());  // validated on receipt
    if (v.ok()) JoinRemote(key, *v);
  }
  clock_.Observe(batch.hlc, WallMs());
  progress_.applied[origin] = std::max(progress_.applied[origin], batch.seq);
  // Only a contiguous apply may advance the stamp (the out-of-order test mode may not).
  if (!options_.unsafe_deliver_out_of_order) {
    last_batch_hlc_[origin] = std::max(last_batch_hlc_[origin], batch.hlc);
  }
  ++stats_.batches_applied;
  MarkProgress();
}

void Disseminator::DrainReorder(ReplicaId origin) {
  auto& buf = reorder_[origin];
  uint64_t& applied = progress_.applied[origin];
  while (!buf.empty()) {
    auto it = buf.begin();
    if (it->first <= applied) {
      buf.erase(it);
    } else if (it->first == applied + 1) {
      ApplyBatch(origin, it->second);
      buf.erase(it);
    } else {
      break;
    }
  }
}

void Disseminator::JoinRemote(std::string_view key, const CrdtValue& v) {
  auto it = states_.find(key);
  const LwwRegister* lww = v.As<LwwRegister>();
  if (it == states_.end() && lww != nullptr && lww->written() &&
      lww->stamp() <= progress_.gc_horizon) {
    // An old write to a key whose tombstone was collected: already superseded here.
    ++stats_.stale_writes_ignored;
    return;
  }
  if (unreadable_.count(key) != 0) {
    // Joining into a fresh value would overwrite the undecodable stored bytes.
    ++stats_.entries_unreadable_key;
    return;
  }
  if (lww != nullptr && lww->written()) clock_.Observe(lww->stamp(), WallMs());
  if (it == states_.end()) it = states_.emplace(std::string(key), CrdtValue(v.type())).first;
  Status s = it->second.Join(v);
  if (!s.ok()) {
    ++stats_.entries_wrong_type;
    return;
  }
  NoteJoinedSize(it->second);
  if (auto* mine = it->second.As<LwwRegister>()) {
    if (mine->deleted()) {
      tombstones_.insert(std::string(key));
    } else if (auto t = tombstones_.find(key); t != tombstones_.end()) {
      tombstones_.erase(t);
    }
  }
  dirty_.insert(std::string(key));
  pending_.applied_keys.push_back(std::string(key));
}

void Disseminator::OnAck(ReplicaId peer, const void* raw) {
  const auto* m = static_cast<const fbw::Ack*>(raw);
  if (m == nullptr || m->applied() >= progress_.next_seq) {
    // An ack for a batch we never sealed: a bug or a forged message. Ignore it.
    ++stats_.messages_bad;
    return;
  }
  if (m->stable()) NoteStable(peer, m->stable()->physical_ms(), m->stable()->logical(), m->stable()->node());
  if (m->applied() <= progress_.acked[peer]) return;
  progress_.acked[peer] = m->applied();
  last_send_us_[peer] = now_us_;  // progress resets the resend timer
  MarkProgress();
  TruncateLog();
  if (sent_upto_[peer] <= progress_.acked[peer] && progress_.acked[peer] + 1 < progress_.next_seq) {
    SendDeltas(peer, false);
  }
}

// ---------------------------------------------------------------- state transfer

void Disseminator::StartTransfer(ReplicaId origin) {
  Transfer& t = transfers_[origin];
  t = Transfer{};
  t.active = true;
  // Ids only need to differ across attempts, including across restarts: virtual or real
  // time is monotonic, and the counter separates attempts within one microsecond.
  t.id = static_cast<uint64_t>(now_us_) * 1024 + (next_transfer_id_++ % 1024);
  t.started_us = now_us_;
  ++stats_.transfers_started;
  flatbuffers::FlatBufferBuilder b(64);
  auto body = fbw::CreateTransferRequest(b, t.id);
  Send(origin, Finish(b, options_.self, fbw::Body::TransferRequest, body));
}

uint64_t Disseminator::RangeDigest(const Range& r) const {
  uint64_t h = Fnv1a64("");
  for (auto it = states_.lower_bound(r.lo); it != states_.end(); ++it) {
    if (r.has_hi && it->first >= r.hi) break;
    std::string enc = it->second.Encode();
    Encoder e;
    e.PutBytes(it->first);
    e.PutBytes(enc);
    h = Fnv1a64(e.bytes(), h);
  }
  return h;
}

void Disseminator::OnTransferRequest(ReplicaId peer, const void* raw) {
  const auto* m = static_cast<const fbw::TransferRequest*>(raw);
  if (m == nullptr) return;
  // The open batch is already part of states_, so taking the digest at the last sealed
  // batch under-claims, which is safe: the peer later receives that batch as a duplicate.
  const uint64_t seq = progress_.next_seq - 1;
  size_t per_range = std::max<size_t>(options_.transfer_range_keys,
                                      (states_.size() + options_.transfer_ranges_max - 1) /
                                          options_.transfer_ranges_max);
  // A range also ends before it would outgrow one message, so that its TransferData (the
  // only message that can mark it complete) carries all of it.
  const size_t budget = StateBudgetBytes();
  std::vector<Range> ranges;
  size_t i = 0, bytes = 0;
  for (const auto& [key, v] : states_) {
    const size_t size = EntryWireBytes(key, v.Encode());
    if (i % per_range == 0 || bytes + size > budget) {
      if (!ranges.empty()) {
        ranges.back().hi = key;
        ranges.back().has_hi = true;
      }
      ranges.push_back(Range{ranges.empty() ? std::string() : key, std::string(), false});
      i = 0;
      bytes = 0;
    }
    ++i;
    bytes += size;
  }
  if (ranges.empty()) ranges.push_back(Range{});
  flatbuffers::FlatBufferBuilder b(1024);
  std::vector<flatbuffers::Offset<fbw::KeyRange>> out;
  for (uint32_t id = 0; id < ranges.size(); ++id) {
    const Range& r = ranges[id];
    auto lo = Bytes(b, r.lo);
    auto hi = Bytes(b, r.hi);
    out.push_back(fbw::CreateKeyRange(b, lo, hi, r.has_hi, RangeDigest(r), id));
  }
  auto vec = b.CreateVector(out);
  const HlcTimestamp sealed = last_batch_hlc_[options_.self];
  const HlcTimestamp& h = progress_.gc_horizon;
  fbw::Stable horizon(h.physical_ms, h.logical, h.node);
  auto body = fbw::CreateTransferDigest(b, m->transfer_id(), seq, vec, sealed.physical_ms, sealed.logical, &horizon);
  Send(peer, Finish(b, options_.self, fbw::Body::TransferDigest, body));
}

void Disseminator::OnTransferDigest(ReplicaId origin, const void* raw) {
  const auto* m = static_cast<const fbw::TransferDigest*>(raw);
  Transfer& t = transfers_[origin];
  if (m == nullptr || !t.active || t.have_digest || m->transfer_id() != t.id) return;
  if (m->ranges() == nullptr || m->ranges()->size() > options_.transfer_ranges_max) {
    ++stats_.messages_bad;
    return;
  }
  flatbuffers::FlatBufferBuilder b(1024);
  std::vector<flatbuffers::Offset<fbw::KeyRange>> pull;
  std::set<uint32_t> pending;
  for (const fbw::KeyRange* kr : *m->ranges()) {
    Range r{std::string(View(kr->lo())), std::string(View(kr->hi())), kr->has_hi()};
    if (RangeDigest(r) == kr->digest()) continue;
    if (!pending.insert(kr->id()).second) {
      ++stats_.messages_bad;
      return;
    }
    auto lo = Bytes(b, r.lo);
    auto hi = Bytes(b, r.hi);
    pull.push_back(fbw::CreateKeyRange(b, lo, hi, r.has_hi, 0, kr->id()));
  }
  t.have_digest = true;
  t.seq = m->seq();
  t.hlc = HlcTimestamp{m->hlc_physical_ms(), m->hlc_logical(), origin};
  if (const fbw::Stable* h = m->gc_horizon()) t.gc_horizon = HlcTimestamp{h->physical_ms(), h->logical(), h->node()};
  t.pending = std::move(pending);
  stats_.transfer_ranges_pulled += t.pending.size();
  if (t.pending.empty()) {
    OnTransferData(origin, nullptr);  // nothing differs: complete now
    return;
  }
  auto vec = b.CreateVector(pull);
  auto body = fbw::CreateTransferPull(b, t.id, vec);
  Send(origin, Finish(b, options_.self, fbw::Body::TransferPull, body));
}

void Disseminator::OnTransferPull(ReplicaId peer, const void* raw) {
  const auto* m = static_cast<const fbw::TransferPull*>(raw);
  if (m == nullptr || m->ranges() == nullptr || m->ranges()->size() > options_.transfer_ranges_max) {
    ++stats_.messages_bad;
    return;
  }
  for (const fbw::KeyRange* kr : *m->ranges()) {
    Range r{std::string(View(kr->lo())), std::string(View(kr->hi())), kr->has_hi()};
    ++stats_.transfer_ranges_served;
    std::vector<std::pair<std::string, std::string>> chunk;
    size_t bytes = 0;
    bool whole = true;  // everything of the range went into one message
    const size_t budget = StateBudgetBytes();
    auto flush = [&](bool complete) {
      flatbuffers::FlatBufferBuilder b(1024 + bytes);
      auto entries = Entries(b, chunk);
      auto body = fbw::CreateTransferData(b, m->transfer_id(), kr->id(), complete, entries);
      Send(peer, Finish(b, options_.self, fbw::Body::TransferData, body));
      chunk.clear();
      bytes = 0;
    };
    for (auto it = states_.lower_bound(r.lo); it != states_.end(); ++it) {
      if (r.has_hi && it->first >= r.hi) break;
      std::string enc = it->second.Encode();
      const size_t size = EntryWireBytes(it->first, enc);
      if (size > budget) {
        // Larger than any message: only while removals from a region at its cap are still
        // in flight to us (limits.h). The range stays incomplete and the peer retries.
        ++stats_.transfer_states_too_large;
        whole = false;
        continue;
      }
      if (!chunk.empty() && bytes + size > budget) {
        // The range grew since its digest. Parts are safe to join (each is a state we
        // hold), but only a message holding all of a range may complete it: the peer must
        // not count the range done when an earlier part was lost.
        flush(false);
        whole = false;
      }
      bytes += size;
      chunk.emplace_back(it->first, std::move(enc));
    }
    flush(whole);
  }
}

void Disseminator::OnTransferData(ReplicaId origin, const void* raw) {
  Transfer& t = transfers_[origin];
  if (raw != nullptr) {
    const auto* m = static_cast<const fbw::TransferData*>(raw);
    if (!t.active || !t.have_digest || m->transfer_id() != t.id) return;
    std::vector<std::pair<std::string, std::string>> entries;
    if (Status s = DecodeEntries(m->entries(), nullptr, options_.key_bytes_max, limits_, &entries); !s.ok()) {
      if (s.code() == Code::kValueTooLarge || s.code() == Code::kKeyTooLarge) ++stats_.entries_over_limit;
      ++stats_.messages_bad;
      return;
    }
    for (const auto& [key, bytes] : entries) {
      auto v = CrdtValue::Decode(bytes, limits_);
      if (v.ok()) JoinRemote(key, *v);
    }
    if (m->complete()) t.pending.erase(m->range_id());
  }
  if (!t.pending.empty()) return;
  // Every range now holds at least the origin's state as of t.seq, so every batch up to
  // t.seq is covered by what we joined.
  uint64_t& applied = progress_.applied[origin];
  applied = std::max(applied, t.seq);
  last_batch_hlc_[origin] = std::max(last_batch_hlc_[origin], t.hlc);
  t.active = false;
  ++stats_.transfers_completed;
  MarkProgress();
  DrainReorder(origin);
  ack_due_[origin] = true;
  auto& relay = progress_.relay_pending;
  relay.erase(std::remove(relay.begin(), relay.end(), origin), relay.end());
  if (joining()) {
    // Persisted with the states just joined (same Ready), so a restart resumes the join
    // with this origin done and its horizon kept.
    progress_.gc_horizon = std::max(progress_.gc_horizon, t.gc_horizon);
    // Our first writes must be stamped above what was collected: the others ignore a
    // write to an absent key at or below their horizon as stale (our wall clock may lag).
    clock_.Observe(t.gc_horizon, WallMs());
    clock_.Observe(t.hlc, WallMs());
    JoinDone(origin);
  }
}

// ---------------------------------------------------------------- membership

Status Disseminator::AddReplicas(uint32_t replicas) {
  if (replicas < regions_ || replicas > kReplicasMax) {
    return InvalidArgument("replica count " + std::to_string(replicas) + " outside [" +
                           std::to_string(regions_) + ", " + std::to_string(kReplicasMax) + "]");
  }
  if (replicas == regions_) return Status::Ok();
  // Refit: the per-replica share shrinks to budget / replicas, so the Held*() bounds
  // (share * replicas) stay about the message budget, and every state held now (at most
  // old_share * old_count <= budget) still decodes (decoders bound lengths only, limits.h)
  // and still ships in one message. A writer above its new share keeps its state and gets
  // the specific refusal on its next local update of that key.
  limits_ = options_.limits.ForCluster(replicas, options_.key_bytes_max, options_.message_bytes_max);
  const uint64_t log_first = log_.empty() ? progress_.next_seq : log_.front().seq;
  // As at construction: a new peer is believed to hold what the log no longer has; it
  // learns the gap from log_first_seq and asks for a transfer (or joins by transfers).
  progress_.applied.resize(replicas, 0);
  progress_.acked.resize(replicas, log_first - 1);
  sent_upto_.resize(replicas, log_first - 1);
  last_send_us_.resize(replicas, 0);
  reorder_.resize(replicas);
  transfers_.resize(replicas);
  ack_due_.resize(replicas, false);
  // Zero stamps: nothing is collected until the new replica's batches are applied here
  // and it has gossiped its own W (LocalStable and the global minimum both include it).
  last_batch_hlc_.resize(replicas, HlcTimestamp{});
  known_stable_.resize(replicas, HlcTimestamp{});
  retired_.resize(replicas, false);
  departed_.resize(replicas, false);
  regions_ = replicas;
  MarkProgress();
  return Status::Ok();
}

void Disseminator::RetireReplica(ReplicaId id) {
  if (id >= regions_ || id == options_.self || retired_[id]) return;
  retired_[id] = true;
  progress_.retired.insert(std::upper_bound(progress_.retired.begin(), progress_.retired.end(), id), id);
  transfers_[id] = Transfer{};
  reorder_[id].clear();
  ack_due_[id] = false;
  MarkProgress();
  TruncateLog();  // it no longer holds the log
  if (joining()) JoinDone(id);
  // Relay: what it shipped to some survivors only reaches every survivor through a
  // transfer from each of them (see "Membership").
  auto& relay = progress_.relay_pending;
  relay.erase(std::remove(relay.begin(), relay.end(), id), relay.end());
  for (ReplicaId p = 0; p < regions_; ++p) {
    if (!Peer(p) || std::find(relay.begin(), relay.end(), p) != relay.end()) continue;
    relay.insert(std::upper_bound(relay.begin(), relay.end(), p), p);
    transfers_[p] = Transfer{};  // a transfer started before the retirement may predate what we need
  }
}

void Disseminator::MarkDeparted(ReplicaId id) {
  if (id >= regions_ || id == options_.self || retired_[id] || departed_[id]) return;
  departed_[id] = true;
  // It holds nothing a newcomer or a survivor must take from it (what it wrote reaches us
  // as its batches), and it no longer needs ours.
  auto& relay = progress_.relay_pending;
  if (std::find(relay.begin(), relay.end(), id) != relay.end()) {
    relay.erase(std::remove(relay.begin(), relay.end(), id), relay.end());
    MarkProgress();
  }
  TruncateLog();
  if (joining()) JoinDone(id);
}

bool Disseminator::Shipped() const {
  if (!open_batch_.empty()) return false;
  for (ReplicaId p = 0; p < regions_; ++p) {
    if (Peer(p) && progress_.acked[p] + 1 < progress_.next_seq) return false;
  }
  return true;
}

void Disseminator::JoinDone(ReplicaId origin) {
  auto& pending = progress_.join_pending;
  auto it = std::find(pending.begin(), pending.end(), origin);
  if (it == pending.end()) return;
  pending.erase(it);
  MarkProgress();
  if (!pending.empty()) return;
  // Joined. Acknowledge every origin now (our W rides along), and seal heartbeats for a
  // while so that the others apply our stamp and collection resumes.
  last_activity_us_ = now_us_;
  for (ReplicaId o = 0; o < regions_; ++o) {
    if (o != options_.self && !retired_[o]) ack_due_[o] = true;
  }
}

// ---------------------------------------------------------------- time and output

HlcTimestamp Disseminator::LocalStable() const {
  // A joining replica has applied nothing yet: minimal, so nobody collects past it.
  if (joining() || !progress_.relay_pending.empty()) return HlcTimestamp{};
  HlcTimestamp w = last_batch_hlc_[options_.self];
  for (ReplicaId o = 0; o < regions_; ++o) {
    if (!retired_[o]) w = std::min(w, last_batch_hlc_[o]);
  }
  return w;
}

void Disseminator::NoteStable(ReplicaId from, int64_t physical_ms, uint32_t logical, uint32_t node) {
  HlcTimestamp w{physical_ms, logical, node};
  known_stable_[from] = std::max(known_stable_[from], w);
}

void Disseminator::CollectTombstones() {
  if (tombstones_.empty()) return;
  known_stable_[options_.self] = LocalStable();
  HlcTimestamp global = known_stable_[options_.self];
  for (ReplicaId r = 0; r < regions_; ++r) {
    // A departed replica serves nothing: what it has not applied cannot be read there.
    if (!retired_[r] && !departed_[r]) global = std::min(global, known_stable_[r]);
  }
  for (auto t = tombstones_.begin(); t != tombstones_.end();) {
    auto it = states_.find(*t);
    const LwwRegister* l = it == states_.end() ? nullptr : it->second.As<LwwRegister>();
    if (l == nullptr || !l->deleted()) {
      t = tombstones_.erase(t);
    } else if (l->stamp() <= global && open_batch_.find(*t) == open_batch_.end()) {
      progress_.gc_horizon = std::max(progress_.gc_horizon, l->stamp());
      MarkProgress();
      erased_.push_back(*t);
      dirty_.erase(*t);
      states_.erase(it);
      ++stats_.tombstones_collected;
      t = tombstones_.erase(t);
    } else {
      ++t;
    }
  }
}

void Disseminator::Tick(int64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  if (!open_batch_.empty() && now_us_ - open_since_us_ >= options_.batch_interval_us) SealBatch();
  // Heartbeats carry our stable stamp to the peers so that tombstones get collected: needed
  // while we hold tombstones, and for a while after any batch moved (a peer may hold one we
  // already collected). An idle cluster goes quiet: no message, no fsync.
  const bool heartbeat_useful =
      !tombstones_.empty() || now_us_ - last_activity_us_ < kHeartbeatsAfterActivity * options_.heartbeat_interval_us;
  if (options_.collect_tombstones && regions_ > 1 && !joining() && open_batch_.empty() && heartbeat_useful &&
      now_us_ - last_seal_us_ >= options_.heartbeat_interval_us) {
    SealBatch(/*heartbeat=*/true);
  }
  if (options_.collect_tombstones) CollectTombstones();
  for (ReplicaId p = 0; p < regions_; ++p) {
    if (p == options_.self || retired_[p]) continue;
    if (!departed_[p] && progress_.acked[p] + 1 < progress_.next_seq &&
        now_us_ - last_send_us_[p] >= options_.resend_interval_us) {
      // Go-back-N: resend from the peer's acknowledgement. Also tells a peer that is
      // behind the log where the log now starts.
      if (sent_upto_[p] > progress_.acked[p]) {
        stats_.batches_resent += sent_upto_[p] - progress_.acked[p];
      }
      sent_upto_[p] = progress_.acked[p];
      last_send_us_[p] = now_us_;
      SendDeltas(p, true);
    }
    Transfer& t = transfers_[p];
    if (t.active && now_us_ - t.started_us >= options_.transfer_timeout_us) StartTransfer(p);
  }
  // Join: one transfer from every origin still pending (retried on the timeout above).
  for (ReplicaId o : progress_.join_pending) {
    if (!transfers_[o].active) StartTransfer(o);
  }
  // Relay after a retirement: likewise.
  for (ReplicaId o : progress_.relay_pending) {
    if (!transfers_[o].active) StartTransfer(o);
  }
}

bool Disseminator::HasReady() const {
  if (!erased_.empty()) return true;
  if (!pending_.empty() || !dirty_.empty() || progress_dirty_) return true;
  for (bool due : ack_due_) {
    if (due) return true;
  }
  return false;
}

Ready Disseminator::GetReady() {
  assert(!ready_outstanding_ && "GetReady called twice without Advance");
  ready_outstanding_ = true;
  for (ReplicaId o = 0; o < regions_; ++o) {
    if (ack_due_[o] && !retired_[o]) {
      SendAck(o);
      ack_due_[o] = false;
    }
  }
  for (const std::string& key : dirty_) {
    auto it = states_.find(key);
    if (it != states_.end()) pending_.states.emplace_back(key, it->second.Encode());
  }
  dirty_.clear();
  pending_.erased_keys = std::move(erased_);
  erased_.clear();
  if (open_batch_dirty_) {
    std::vector<std::pair<std::string, std::string>> open;
    for (const auto& [key, delta] : open_batch_) open.emplace_back(key, delta.Encode());
    pending_.open_batch = std::move(open);
    open_batch_dirty_ = false;
  }
  if (auto hw = clock_.TakeHighWaterToPersist()) {
    progress_.hlc_high_water_ms = *hw;
    progress_dirty_ = true;
  }
  if (progress_dirty_) {
    pending_.progress = progress_;
    progress_dirty_ = false;
  }
  // Messages queued before a RetireReplica: nothing more is sent to a retired replica.
  std::erase_if(pending_.messages, [&](const OutMessage& m) { return retired_[m.to]; });
  Ready out = std::move(pending_);
  pending_ = Ready{};
  return out;
}

void Disseminator::Advance() {
  assert(ready_outstanding_);
  ready_outstanding_ = false;
}

}  // namespace geokv::crdt
