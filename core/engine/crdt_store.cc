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

std::string EncodeProgress(const crdt::Progress& p) {
  crdt::Encoder enc;
  enc.PutVarint(p.next_seq);
  EncodeCounts(&enc, p.applied);
  EncodeCounts(&enc, p.acked);
  enc.PutSigned(p.hlc_high_water_ms);
  p.gc_horizon.EncodeTo(&enc);
  if (!p.retired.empty() || !p.join_pending.empty()) {
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
    if (tail != kProgressTailMembership) return Corruption("unknown progress tail " + std::to_string(tail));
    GEOKV_RETURN_IF_ERROR(DecodeIds(&dec, &p->retired));
    GEOKV_RETURN_IF_ERROR(DecodeIds(&dec, &p->join_pending));
  }
  return dec.Finish();
}

// Calls fn(entry) for every row of `table`, page by page.
template <typename Fn>
Status ForEach(storage::Storage& store, std::string_view table, Fn&& fn) {
  std::string after;
  for (;;) {
    auto page = store.Scan(table, "", after, kPage);
    if (!page.ok()) return page.status();
    for (const auto& e : *page) GEOKV_RETURN_IF_ERROR(fn(e));
    if (page->size() < kPage) return Status::Ok();
    after = page->back().key;
  }
}

}  // namespace

StatusOr<crdt::DurableImage> CrdtStore::Load() {
  crdt::DurableImage image;
  GEOKV_RETURN_IF_ERROR(ForEach(store_, kStateTable, [&](const storage::Entry& e) {
    image.states.emplace(e.key, e.value);
    return Status::Ok();
  }));
  GEOKV_RETURN_IF_ERROR(ForEach(store_, kLogTable, [&](const storage::Entry& e) {
    crdt::DeltaBatch b;
    Status s = DecodeBatch(e.value, &b);
    if (!s.ok()) return Corruption("crdt delta log: " + s.message());
    image.log.push_back(std::move(b));
    return Status::Ok();
  }));
  auto open = store_.Get(kMetaTable, "open");
  if (open.ok()) {
    crdt::Decoder dec(*open);
    Status s = DecodePairs(&dec, &image.open_batch);
    if (s.ok()) s = dec.Finish();
    if (!s.ok()) return Corruption("crdt open batch: " + s.message());
  } else if (!open.status().IsNotFound()) {
    return open.status();
  }
  auto progress = store_.Get(kMetaTable, "progress");
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
  // Collected tombstones first: a key may be erased and re-created in the same Ready.
  for (const auto& key : ready.erased_keys) batch->Delete(kStateTable, key);
  for (const auto& [key, state] : ready.states) batch->Put(kStateTable, key, state);
  for (const auto& b : ready.log_append) batch->Put(kLogTable, SeqKey(b.seq), EncodeBatch(b));
  if (ready.log_first_seq > log_first_seq_) {
    // Delete the stored batches below the new start (only rows that exist are visited).
    const std::string first = SeqKey(ready.log_first_seq);
    std::string after;
    bool done = false;
    while (!done) {
      auto page = store_.Scan(kLogTable, "", after, kPage);
      if (!page.ok()) break;  // left for the next truncation; stale batches are harmless
      for (const auto& e : *page) {
        if (e.key >= first) { done = true; break; }
        batch->Delete(kLogTable, e.key);
      }
      if (page->size() < kPage) done = true;
      if (!page->empty()) after = page->back().key;
    }
    for (const auto& b : ready.log_append) {
      if (b.seq < ready.log_first_seq) batch->Delete(kLogTable, SeqKey(b.seq));
    }
    log_first_seq_ = ready.log_first_seq;
  }
  if (ready.open_batch) {
    crdt::Encoder enc;
    EncodePairs(&enc, *ready.open_batch);
    batch->Put(kMetaTable, "open", enc.bytes());
  }
  if (ready.progress) batch->Put(kMetaTable, "progress", EncodeProgress(*ready.progress));
}

}  // namespace geokv
