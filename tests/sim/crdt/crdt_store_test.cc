// CrdtStore with the Disseminator: what a region holds survives a restart through its
// storage (MemoryStorage, synced writes, then a crash that keeps only durable data), in
// particular states joined from several regions above one region's caps.
#include "core/engine/crdt_store.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <tuple>
#include <string>
#include <vector>

#include "core/engine/memory_storage.h"
#include "replication/crdt/codec.h"

namespace geokv {
namespace {

using crdt::Disseminator;
using crdt::DisseminatorOptions;

struct Region {
  storage::MemoryStorage store;
  std::unique_ptr<CrdtStore> crdt_store;
  std::unique_ptr<Disseminator> machine;
};

class StoredCluster {
 public:
  StoredCluster(int n, DisseminatorOptions base) : base_(base), regions_(n) {
    for (int i = 0; i < n; ++i) Open(i);
  }

  Disseminator& node(int i) { return *regions_[i].machine; }

  // Crash (keeping what was synced) and reopen from storage, as the engine does.
  void Restart(int i) {
    regions_[i].machine.reset();
    regions_[i].store.Crash();
    Open(i);
  }

  void Run(int64_t until_us) {
    for (; now_us_ < until_us; now_us_ += 1000) {
      for (size_t i = 0; i < regions_.size(); ++i) {
        node(static_cast<int>(i)).ObserveWallClock(kEpochUs + now_us_);
        node(static_cast<int>(i)).Tick(now_us_);
        Flush(static_cast<int>(i));
      }
      while (!wire_.empty()) {
        auto [from, to, bytes] = std::move(wire_.front());
        wire_.pop_front();
        node(to).ObserveWallClock(kEpochUs + now_us_);
        node(to).Step(from, bytes);
        Flush(to);
      }
    }
  }

 private:
  static constexpr int64_t kEpochUs = 1'700'000'000'000'000;

  void Open(int i) {
    Region& r = regions_[i];
    r.crdt_store = std::make_unique<CrdtStore>(r.store, /*shard=*/7, static_cast<uint32_t>(i));
    auto image = r.crdt_store->Load();
    ASSERT_TRUE(image.ok()) << image.status().message();
    DisseminatorOptions o = base_;
    o.self = static_cast<crdt::ReplicaId>(i);
    o.regions = static_cast<uint32_t>(regions_.size());
    r.machine = std::make_unique<Disseminator>(o, std::move(image).value());
    ASSERT_TRUE(r.machine->open_status().ok()) << r.machine->open_status().message();
  }

  void Flush(int i) {
    Region& r = regions_[i];
    while (r.machine->HasReady()) {
      crdt::Ready ready = r.machine->GetReady();
      storage::WriteBatch batch;
      r.crdt_store->Persist(ready, &batch);
      ASSERT_TRUE(r.store.Write(batch, storage::Durability::kSync).ok());
      for (auto& m : ready.messages) wire_.push_back({static_cast<crdt::ReplicaId>(i), static_cast<int>(m.to), std::move(m.bytes)});
      r.machine->Advance();
    }
  }

  struct Envelope {
    crdt::ReplicaId from;
    int to;
    std::string bytes;
  };
  DisseminatorOptions base_;
  std::vector<Region> regions_;
  std::deque<Envelope> wire_;
  int64_t now_us_ = 1000;
};

// Three regions add to one set concurrently, each up to the per-region element cap, and to
// a second set elements of the largest size up to the per-region byte cap. The joined
// sets (three times a region's cap) converge, and every region reloads them from its
// storage after a crash, byte for byte. (Before the limits were unified the decoder
// applied the per-region cap, so the reload refused the joined set.)
TEST(CrdtStoreReload, SetsJoinedFromThreeRegionsAtTheCapsSurviveARestart) {
  DisseminatorOptions o;
  o.limits.set_elements_max = 5000;
  StoredCluster c(3, o);
  c.Run(2000);
  const size_t big_per_region =
      c.node(0).limits().state_bytes_max / (crdt::kValueBytesMax + crdt::kEntryOverheadBytes);
  ASSERT_GE(big_per_region, 2u);
  for (int r = 0; r < 3; ++r) {
    for (size_t i = 0; i < o.limits.set_elements_max; ++i) {
      ASSERT_TRUE(c.node(r).SetAdd("many", std::to_string(r) + "/" + std::to_string(i)).ok());
    }
    EXPECT_EQ(c.node(r).SetAdd("many", "over").code(), Code::kInvalidArgument);
    for (size_t i = 0; i < big_per_region; ++i) {
      std::string e(crdt::kValueBytesMax, static_cast<char>('a' + r));
      e.replace(0, 2, std::to_string(10 + i));
      ASSERT_TRUE(c.node(r).SetAdd("big", e).ok());
    }
    EXPECT_EQ(c.node(r).SetAdd("big", std::string(crdt::kValueBytesMax, 'z')).code(), Code::kValueTooLarge);
  }
  c.Run(300000);
  std::vector<std::string> converged;
  for (const char* key : {"many", "big"}) {
    ASSERT_NE(c.node(0).Get(key), nullptr);
    converged.push_back(c.node(0).Get(key)->Encode());
  }
  EXPECT_EQ(c.node(0).Get("many")->As<crdt::OrSet>()->size(), 3 * o.limits.set_elements_max);
  EXPECT_EQ(c.node(0).Get("big")->As<crdt::OrSet>()->size(), 3 * big_per_region);
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(c.node(r).Get("many")->Encode() == converged[0]) << "region " << r;
    EXPECT_TRUE(c.node(r).Get("big")->Encode() == converged[1]) << "region " << r;
    EXPECT_EQ(c.node(r).stats().messages_bad, 0u);
  }
  for (int r = 0; r < 3; ++r) {
    c.Restart(r);
    ASSERT_NE(c.node(r).Get("many"), nullptr) << "region " << r << " lost the joined set on reload";
    ASSERT_NE(c.node(r).Get("big"), nullptr) << "region " << r << " lost the joined set on reload";
    EXPECT_TRUE(c.node(r).Get("many")->Encode() == converged[0]) << "region " << r;
    EXPECT_TRUE(c.node(r).Get("big")->Encode() == converged[1]) << "region " << r;
  }
  // And they keep working: a removal anywhere reaches everyone after the restarts.
  ASSERT_TRUE(c.node(1).SetRemove("many", "2/7").ok());
  c.Run(600000);
  for (int r = 0; r < 3; ++r) EXPECT_FALSE(c.node(r).Get("many")->As<crdt::OrSet>()->Contains("2/7"));
}


// The membership part of Progress (retired replicas, a join in progress) survives a crash;
// an encoding from before it existed reads as nothing retired and not joining.
TEST(CrdtStoreReload, ProgressKeepsMembershipAndReadsTheOldEncoding) {
  storage::MemoryStorage store;
  auto persist = [&](const crdt::Ready& ready) {
    CrdtStore s(store, /*shard=*/3, /*replica_id=*/2);
    storage::WriteBatch batch;
    s.Persist(ready, &batch);
    ASSERT_TRUE(store.Write(batch, storage::Durability::kSync).ok());
  };
  auto load = [&]() {
    store.Crash();
    CrdtStore s(store, /*shard=*/3, /*replica_id=*/2);
    auto image = s.Load();
    EXPECT_TRUE(image.ok()) << image.status().message();
    return image.ok() ? std::move(image).value() : crdt::DurableImage{};
  };
  // A node added to the cluster: its first Ready persists the join before anything else.
  DisseminatorOptions o;
  o.self = 2;
  o.regions = 4;
  o.join = true;
  {
    Disseminator d(o, load());
    ASSERT_TRUE(d.joining());
    d.RetireReplica(1);
    persist(d.GetReady());
  }
  crdt::DurableImage image = load();
  ASSERT_TRUE(image.progress.has_value());
  EXPECT_EQ(image.progress->retired, std::vector<crdt::ReplicaId>{1});
  EXPECT_EQ(image.progress->join_pending, (std::vector<crdt::ReplicaId>{0, 3}));
  o.join = false;  // the persisted join rules
  {
    Disseminator d(o, image);
    EXPECT_TRUE(d.joining());
    EXPECT_TRUE(d.retired(1));
    EXPECT_EQ(d.PutLww("k", "v").code(), Code::kUnavailable);
  }
  // Progress as written before retired replicas and joins existed.
  crdt::Encoder enc;
  enc.PutVarint(9);  // next_seq
  for (int vec = 0; vec < 2; ++vec) {  // applied, acked
    enc.PutVarint(4);
    for (uint64_t x : {1, 2, 3, 4}) enc.PutVarint(x);
  }
  enc.PutSigned(1'700'000'000'000);
  crdt::HlcTimestamp{1'700'000'000'000, 3, 1}.EncodeTo(&enc);
  storage::WriteBatch old;
  old.Put("crdt_meta", std::string("\0\0\0\3\0\0\0\2", 8) + "progress", enc.bytes());
  ASSERT_TRUE(store.Write(old, storage::Durability::kSync).ok());
  image = load();
  ASSERT_TRUE(image.progress.has_value());
  EXPECT_EQ(image.progress->next_seq, 9u);
  EXPECT_EQ(image.progress->gc_horizon, (crdt::HlcTimestamp{1'700'000'000'000, 3, 1}));
  EXPECT_TRUE(image.progress->retired.empty());
  EXPECT_TRUE(image.progress->join_pending.empty());
  o.join = true;  // ignored: the image is not fresh
  Disseminator d(o, image);
  EXPECT_FALSE(d.joining());
  EXPECT_TRUE(d.PutLww("k", "v").ok());
}

// Each CRDT replica of a node (one shard, one replica id) keeps its rows under its own
// prefix: List finds every replica with rows, Erase takes one replica's rows and no other's,
// and a directory written by an earlier version (one replica per node) is refused by name.
TEST(CrdtStoreReload, ReplicasKeepApartAndEraseAlone) {
  storage::MemoryStorage store;
  auto write = [&](uint32_t shard, uint32_t id, const std::string& key) {
    DisseminatorOptions o;
    o.self = id;
    o.regions = id + 1;
    CrdtStore s(store, shard, id);
    auto image = s.Load();
    ASSERT_TRUE(image.ok());
    Disseminator d(o, std::move(image).value());
    ASSERT_TRUE(d.PutLww(key, "v").ok());
    storage::WriteBatch batch;
    s.Persist(d.GetReady(), &batch);
    d.Advance();
    ASSERT_TRUE(store.Write(batch, storage::Durability::kSync).ok());
  };
  write(1, 0, "a");
  write(1, 3, "b");
  write(256, 0, "c");
  auto listed = CrdtStore::List(store);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(*listed, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 0}, {1, 3}, {256, 0}}));
  {
    CrdtStore s(store, 1, 3);
    storage::WriteBatch erase;
    ASSERT_TRUE(s.Erase(&erase).ok());
    ASSERT_TRUE(store.Write(erase, storage::Durability::kSync).ok());
  }
  listed = CrdtStore::List(store);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 0}, {256, 0}}));
  for (auto [shard, id, key] : {std::tuple<uint32_t, uint32_t, std::string>{1, 0, "a"}, {256, 0, "c"}, {1, 3, ""}}) {
    auto image = CrdtStore(store, shard, id).Load();
    ASSERT_TRUE(image.ok());
    EXPECT_EQ(image->states.size(), key.empty() ? 0u : 1u) << shard << "/" << id;
    if (!key.empty()) {
      EXPECT_EQ(image->states.count(key), 1u) << shard << "/" << id;
    }
  }
  storage::WriteBatch old;
  old.Put("crdt_meta", "progress", "x");
  ASSERT_TRUE(store.Write(old, storage::Durability::kSync).ok());
  EXPECT_EQ(CrdtStore::List(store).status().code(), Code::kVersion);
}

}  // namespace
}  // namespace geokv
