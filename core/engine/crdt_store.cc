#include "core/engine/crdt_store.h"

#include "replication/crdt/codec.h"

namespace geokv {

namespace {

constexpr std::string_view kStateTable = "crdt_state";
constexpr std::string_view kLogTable = "crdt_log";
constexpr std::string_view kMetaTable = "crdt_meta";
constexpr size_t kPage = 1024;
constexpr uint64_t kCountMax = 1u << 24;
constexpr size_t kBytesMax = 64u << 20;

std::string SeqKey(uint64_t seq) {
  std::string k;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  return k;
}

void EncodePairs(crdt::Encoder* enc, const std::vector<std::pair<std::string, std::string>>& pairs) {
  enc->PutVarint(pairs.size());
  for (const auto& [k, v] : pairs) {
    enc->PutBytes(k);
    enc->PutBytes(v);
  }
}

Status DecodePairs(crdt::Decoder* dec, std::vector<std::pair<std::string, std::string>>* pairs) {
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(kCountMax, &n, "pair count"));
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    GEOKV_RETURN_IF_ERROR(dec->GetBytes(kBytesMax, &k, "key"));
    GEOKV_RETURN_IF_ERROR(dec->GetBytes(kBytesMax, &v, "value"));
    pairs->emplace_back(std::string(k), std::string(v));
  }
  return Status::Ok();
}

std::string EncodeBatch(const crdt::DeltaBatch& b) {
  crdt::Encoder enc;
  enc.PutVarint(b.seq);
  b.hlc.EncodeTo(&enc);
  EncodePairs(&enc, b.entries);
  return enc.Release();
}

Status DecodeBatch(std::string_view bytes, crdt::DeltaBatch* b) {
  crdt::Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetVarint(&b->seq));
  GEOKV_RETURN_IF_ERROR(b->hlc.DecodeFrom(&dec));
  GEOKV_RETURN_IF_ERROR(DecodePairs(&dec, &b->entries));
  return dec.Finish();
}

void EncodeCounts(crdt::Encoder* enc, const std::vector<uint64_t>& v) {
  enc->PutVarint(v.size());
  for (uint64_t x : v) enc->PutVarint(x);
}

Status DecodeCounts(crdt::Decoder* dec, std::vector<uint64_t>* v) {
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(4096, &n, "region count"));
  v->resize(n);
  for (auto& x : *v) GEOKV_RETURN_IF_ERROR(dec->GetVarint(&x));
  return Status::Ok();
}

void EncodeIds(crdt::Encoder* enc, const std::vector<crdt::ReplicaId>& ids) {
  enc->PutVarint(ids.size());
  for (crdt::ReplicaId id : ids) enc->PutVarint(id);
}

Status DecodeIds(crdt::Decoder* dec, std::vector<crdt::ReplicaId>* ids) {
  std::vector<uint64_t> raw;
  GEOKV_RETURN_IF_ERROR(DecodeCounts(dec, &raw));
  for (uint64_t id : raw) {
    if (id >= crdt::kReplicasMax) return Corruption("replica id " + std::to_string(id) + " out of range");
    ids->push_back(static_cast<crdt::ReplicaId>(id));
  }
  return Status::Ok();
}

// Membership fields (retired, join_pending) follow as an optional tail, tagged with its
// version. It is written only when one of them is not empty, so a node that never used
// them keeps the old encoding (and stays readable by older builds); an old encoding,
// without the tail, reads as nothing retired and not joining.
constexpr uint64_t kProgressTailMembership = 1;
constexpr uint64_t kProgressTailRelay = 2;  // the same, then relay_pending

std::string EncodeProgress(const crdt::Progress& p) {
  crdt::Encoder enc;
  enc.PutVarint(p.next_seq);
  EncodeCounts(&enc, p.applied);
  EncodeCounts(&enc, p.acked);
  enc.PutSigned(p.hlc_high_water_ms);
  p.gc_horizon.EncodeTo(&enc);
  if (!p.relay_pending.empty()) {
    enc.PutVarint(kProgressTailRelay);
    EncodeIds(&enc, p.retired);
    EncodeIds(&enc, p.join_pending);
    EncodeIds(&enc, p.relay_pending);
  } else if (!p.retired.empty() || !p.join_pending.empty()) {
    enc.PutVarint(kProgressTailMembership);
    EncodeIds(&enc, p.retired);
    EncodeIds(&enc, p.join_pending);
  }
  return enc.Release();
}

Status DecodeProgress(std::string_view bytes, crdt::Progress* p) {
  crdt::Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetVarint(&p->next_seq));
  GEOKV_RETURN_IF_ERROR(DecodeCounts(&dec, &p->applied));
  GEOKV_RETURN_IF_ERROR(DecodeCounts(&dec, &p->acked));
  GEOKV_RETURN_IF_ERROR(dec.GetSigned(&p->hlc_high_water_ms));
  GEOKV_RETURN_IF_ERROR(p->gc_horizon.DecodeFrom(&dec));
  if (!dec.done()) {
    uint64_t tail = 0;
    GEOKV_RETURN_IF_ERROR(dec.GetVarint(&tail));
    if (tail != kProgressTailMembership && tail != kProgressTailRelay) {
      return Corruption("unknown progress tail " + std::to_string(tail));
    }
    GEOKV_RETURN_IF_ERROR(DecodeIds(&dec, &p->retired));
    GEOKV_RETURN_IF_ERROR(DecodeIds(&dec, &p->join_pending));
    if (tail == kProgressTailRelay) GEOKV_RETURN_IF_ERROR(DecodeIds(&dec, &p->relay_pending));
  }
  return dec.Finish();
}

constexpr std::string_view kListed = "replica";  // a row under every replica's prefix in kMetaTable
constexpr size_t kPrefixBytes = 8;

std::string Prefix(uint32_t shard, uint32_t replica_id) {
  std::string p;
  for (uint32_t v : {shard, replica_id}) {
    for (int i = 3; i >= 0; --i) p.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  return p;
}

uint32_t U32At(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

// Calls fn(entry) for every row of `table` under `prefix`, page by page.
template <typename Fn>
Status ForEach(storage::Storage& store, std::string_view table, std::string_view prefix, Fn&& fn) {
  std::string after;
  for (;;) {
    auto page = store.Scan(table, prefix, after, kPage);
    if (!page.ok()) return page.status();
    for (const auto& e : *page) GEOKV_RETURN_IF_ERROR(fn(e));
    if (page->size() < kPage) return Status::Ok();
    after = page->back().key;
  }
}

}  // namespace

CrdtStore::CrdtStore(storage::Storage& store, uint32_t shard, uint32_t replica_id)
    : store_(store), prefix_(Prefix(shard, replica_id)) {}

StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> CrdtStore::List(storage::Storage& store) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  GEOKV_RETURN_IF_ERROR(ForEach(store, kMetaTable, "", [&](const storage::Entry& e) {
    if (e.key == "open" || e.key == "progress") {
      return Status(Code::kVersion, "the data directory holds eventual keys in the layout of an earlier version "
                                    "(one CRDT replica per node, not per shard); restore its data into a new "
                                    "cluster from a backup (docs/operations.md, \"Backups\")");
    }
    if (e.key.size() <= kPrefixBytes) return Corruption("crdt meta row with a short key");
    std::pair<uint32_t, uint32_t> id{U32At(e.key, 0), U32At(e.key, 4)};
    if (out.empty() || out.back() != id) out.push_back(id);
    return Status::Ok();
  }));
  return out;
}

StatusOr<crdt::DurableImage> CrdtStore::Load() {
  crdt::DurableImage image;
  GEOKV_RETURN_IF_ERROR(ForEach(store_, kStateTable, prefix_, [&](const storage::Entry& e) {
    image.states.emplace(e.key.substr(kPrefixBytes), e.value);
    return Status::Ok();
  }));
  listed_ = store_.Get(kMetaTable, prefix_ + std::string(kListed)).ok();
  GEOKV_RETURN_IF_ERROR(ForEach(store_, kLogTable, prefix_, [&](const storage::Entry& e) {
    crdt::DeltaBatch b;
    Status s = DecodeBatch(e.value, &b);
    if (!s.ok()) return Corruption("crdt delta log: " + s.message());
    image.log.push_back(std::move(b));
    return Status::Ok();
  }));
  auto open = store_.Get(kMetaTable, prefix_ + "open");
  if (open.ok()) {
    crdt::Decoder dec(*open);
    Status s = DecodePairs(&dec, &image.open_batch);
    if (s.ok()) s = dec.Finish();
    if (!s.ok()) return Corruption("crdt open batch: " + s.message());
  } else if (!open.status().IsNotFound()) {
    return open.status();
  }
  auto progress = store_.Get(kMetaTable, prefix_ + "progress");
  if (progress.ok()) {
    crdt::Progress p;
    Status s = DecodeProgress(*progress, &p);
    if (!s.ok()) return Corruption("crdt progress: " + s.message());
    image.progress = std::move(p);
  } else if (!progress.status().IsNotFound()) {
    return progress.status();
  }
  if (!image.log.empty()) log_first_seq_ = image.log.front().seq;
  return image;
}

void CrdtStore::Persist(const crdt::Ready& ready, storage::WriteBatch* batch) {
  if (!listed_) {
    batch->Put(kMetaTable, prefix_ + std::string(kListed), "");
    listed_ = true;
  }
  // Collected tombstones first: a key may be erased and re-created in the same Ready.
  for (const auto& key : ready.erased_keys) batch->Delete(kStateTable, prefix_ + key);
  for (const auto& [key, state] : ready.states) batch->Put(kStateTable, prefix_ + key, state);
  for (const auto& b : ready.log_append) batch->Put(kLogTable, prefix_ + SeqKey(b.seq), EncodeBatch(b));
  if (ready.log_first_seq > log_first_seq_) {
    // Delete the stored batches below the new start (only rows that exist are visited).
    const std::string first = prefix_ + SeqKey(ready.log_first_seq);
    std::string after;
    bool done = false;
    while (!done) {
      auto page = store_.Scan(kLogTable, prefix_, after, kPage);
      if (!page.ok()) break;  // left for the next truncation; stale batches are harmless
      for (const auto& e : *page) {
        if (e.key >= first) { done = true; break; }
        batch->Delete(kLogTable, e.key);
      }
      if (page->size() < kPage) done = true;
      if (!page->empty()) after = page->back().key;
    }
    for (const auto& b : ready.log_append) {
      if (b.seq < ready.log_first_seq) batch->Delete(kLogTable, prefix_ + SeqKey(b.seq));
    }
    log_first_seq_ = ready.log_first_seq;
  }
  if (ready.open_batch) {
    crdt::Encoder enc;
    EncodePairs(&enc, *ready.open_batch);
    batch->Put(kMetaTable, prefix_ + "open", enc.bytes());
  }
  if (ready.progress) batch->Put(kMetaTable, prefix_ + "progress", EncodeProgress(*ready.progress));
}

Status CrdtStore::Erase(storage::WriteBatch* batch) {
  for (std::string_view table : {kStateTable, kLogTable, kMetaTable}) {
    GEOKV_RETURN_IF_ERROR(ForEach(store_, table, prefix_, [&](const storage::Entry& e) {
      batch->Delete(table, e.key);
      return Status::Ok();
    }));
  }
  listed_ = false;
  return Status::Ok();
}

}  // namespace geokv
