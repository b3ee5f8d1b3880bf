// Unit tests of the dissemination state machine, driven by hand: messages are moved
// between machines by the test, so loss, reordering and restarts are exact.
#include "replication/crdt/disseminator.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace geokv::crdt {
namespace {

struct Envelope {
  ReplicaId from, to;
  std::string bytes;
};

class Cluster {
 public:
  explicit Cluster(uint32_t n, DisseminatorOptions base = {}) : base_(base), images_(n) {
    for (uint32_t i = 0; i < n; ++i) nodes_.push_back(Make(i));
  }

  Disseminator& node(int i) { return *nodes_[i]; }

  // Runs ready batches: persist into the image, then queue messages.
  void Flush() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Disseminator& d = *nodes_[i];
      while (d.HasReady()) {
        Ready r = d.GetReady();
        DurableImage& img = images_[i];
        for (const auto& k : r.erased_keys) img.states.erase(k);  // before states: a key may be re-created
        for (auto& [k, v] : r.states) img.states[k] = v;
        for (auto& b : r.log_append) img.log.push_back(b);
        if (r.log_first_seq != 0) {
          std::erase_if(img.log, [&](const DeltaBatch& b) { return b.seq < r.log_first_seq; });
        }
        if (r.open_batch) img.open_batch = std::move(*r.open_batch);
    if (r.progress) img.progress = r.progress;
        for (auto& m : r.messages) wire_.push_back({static_cast<ReplicaId>(i), m.to, m.bytes});
        d.Advance();
      }
    }
  }

  void Tick(int64_t now_us) {
    now_ = now_us;
    for (auto& n : nodes_) n->Tick(now_us);
    Flush();
  }

  // Delivers queued messages until none remain; `drop` may discard some.
  void Deliver(const std::function<bool(const Envelope&)>& drop = nullptr) {
    for (int rounds = 0; rounds < 1000 && !wire_.empty(); ++rounds) {
      std::deque<Envelope> batch;
      batch.swap(wire_);
      for (auto& e : batch) {
        if (drop && drop(e)) continue;
        nodes_[e.to]->Step(e.from, e.bytes);
      }
      Flush();
    }
  }

  // Ticks forward in steps, delivering everything each step.
  void RunFor(int64_t us, const std::function<bool(const Envelope&)>& drop = nullptr) {
    const int64_t end = now_ + us;
    for (int64_t t = now_ + 1000; t <= end; t += 1000) {
      Tick(t);
      Deliver(drop);
    }
  }

  void Restart(int i) {
    nodes_[i].reset();
    nodes_[i] = Make(i);
  }

  std::deque<Envelope>& wire() { return wire_; }

  std::string Encoded(int i, const std::string& key) {
    const CrdtValue* v = nodes_[i]->Get(key);
    return v ? v->Encode() : "";
  }

 private:
  std::unique_ptr<Disseminator> Make(uint32_t i) {
    DisseminatorOptions o = base_;
    o.self = i;
    o.regions = static_cast<uint32_t>(images_.size());
    return std::make_unique<Disseminator>(o, images_[i]);
  }

  DisseminatorOptions base_;
  std::vector<DurableImage> images_;
  std::vector<std::unique_ptr<Disseminator>> nodes_;
  std::deque<Envelope> wire_;
  int64_t now_ = 0;
};

TEST(Disseminator, AllTypesConverge) {
  Cluster c(3);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).PutLww("l", "x").ok());
  ASSERT_TRUE(c.node(1).AddCounter("n", 5).ok());
  ASSERT_TRUE(c.node(2).AddCounter("n", -2).ok());
  ASSERT_TRUE(c.node(1).SetAdd("s", "a").ok());
  ASSERT_TRUE(c.node(2).WriteMv("m", "v2", CausalContext()).ok());
  ASSERT_TRUE(c.node(0).WriteMv("m", "v0", CausalContext()).ok());
  c.RunFor(50000);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.node(i).Get("n")->As<PnCounter>()->Value(), 3);
    EXPECT_EQ(c.node(i).Get("l")->As<LwwRegister>()->Get(), "x");
    EXPECT_TRUE(c.node(i).Get("s")->As<OrSet>()->Contains("a"));
    EXPECT_EQ(c.node(i).Get("m")->As<MvRegister>()->Values().size(), 2u);
    for (const char* k : {"l", "n", "s", "m"}) EXPECT_EQ(c.Encoded(i, k), c.Encoded(0, k));
  }
  EXPECT_EQ(c.node(0).log_size(), 0u);  // everything acknowledged, log collected
}

TEST(Disseminator, WrongModeAndBadKeysAreRefused) {
  Cluster c(2);
  ASSERT_TRUE(c.node(0).SetAdd("k", "a").ok());
  EXPECT_EQ(c.node(0).AddCounter("k", 1).code(), Code::kWrongMode);
  EXPECT_EQ(c.node(0).PutLww("", "v").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.node(0).PutLww(std::string(5000, 'k'), "v").code(), Code::kKeyTooLarge);
  EXPECT_EQ(c.node(0).PutLww("big", std::string(kValueBytesMax + 1, 'v')).code(), Code::kValueTooLarge);
  EXPECT_EQ(c.node(0).Get("big"), nullptr);  // a refused op leaves nothing behind
}

TEST(Disseminator, LostBatchesAreResentAndAppliedInOrder) {
  Cluster c(2);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).SetAdd("s", "a").ok());
  c.Tick(10000);  // seal batch 1
  c.wire().clear();  // lose it
  ASSERT_TRUE(c.node(0).SetRemove("s", "a").ok());
  ASSERT_TRUE(c.node(0).SetAdd("s", "b").ok());
  c.Tick(20000);  // seal batch 2: arrives before 1
  c.Deliver();
  // Batch 2 is buffered, not applied: b must not appear before a's history.
  EXPECT_EQ(c.node(1).Get("s"), nullptr);
  EXPECT_EQ(c.node(1).stats().batches_buffered, 1u);
  c.RunFor(2000000);  // resend timer fires
  EXPECT_EQ(c.Encoded(1, "s"), c.Encoded(0, "s"));
  EXPECT_TRUE(c.node(1).Get("s")->As<OrSet>()->Contains("b"));
  EXPECT_FALSE(c.node(1).Get("s")->As<OrSet>()->Contains("a"));
  EXPECT_GE(c.node(0).stats().batches_resent, 1u);
}

TEST(Disseminator, OutOfOrderFlagLosesUpdates) {
  DisseminatorOptions o;
  o.unsafe_deliver_out_of_order = true;
  Cluster c(2, o);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).SetAdd("s", "a").ok());
  c.Tick(10000);
  c.wire().clear();
  ASSERT_TRUE(c.node(0).SetAdd("s", "b").ok());
  c.Tick(20000);
  c.RunFor(3000000);
  EXPECT_NE(c.Encoded(1, "s"), c.Encoded(0, "s"));  // batch 1 is never applied
}

TEST(Disseminator, PeerBehindRetentionCatchesUpByStateTransferWithoutResurrection) {
  DisseminatorOptions o;
  o.retention_batches = 4;
  o.transfer_range_keys = 4;
  Cluster c(3, o);
  c.Tick(1000);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(c.node(0).SetAdd("k" + std::to_string(i), "old").ok());
  ASSERT_TRUE(c.node(0).PutLww("gone", "v").ok());
  c.RunFor(20000);
  ASSERT_TRUE(c.node(2).Get("k3")->As<OrSet>()->Contains("old"));
  // Region 2 goes away; the others remove, delete and write far past the retention.
  auto cut = [](const Envelope& e) { return e.to == 2 || e.from == 2; };
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(c.node(round % 2).SetRemove("k" + std::to_string(round), "old").ok());
    ASSERT_TRUE(c.node(round % 2).SetAdd("k" + std::to_string(round), "new").ok());
    if (round == 5) {
      ASSERT_TRUE(c.node(1).DeleteLww("gone").ok());
    }
    c.RunFor(10000, cut);
  }
  EXPECT_GT(c.node(0).stats().log_truncated_unacked, 0u);
  c.RunFor(5000000);
  EXPECT_GE(c.node(2).stats().transfers_completed, 1u);
  for (int i = 0; i < 40; ++i) {
    std::string k = "k" + std::to_string(i);
    EXPECT_EQ(c.Encoded(2, k), c.Encoded(0, k)) << k;
    EXPECT_EQ(c.Encoded(1, k), c.Encoded(0, k)) << k;
  }
  EXPECT_FALSE(c.node(2).Get("k3")->As<OrSet>()->Contains("old"));
  const CrdtValue* gone = c.node(2).Get("gone");  // tombstone, or collected already
  EXPECT_TRUE(gone == nullptr || !gone->As<LwwRegister>()->Get().has_value());
  // Digests: ranges that matched were not pulled.
  EXPECT_LT(c.node(2).stats().transfer_ranges_pulled, 40u / 4u + 2u);
}

TEST(Disseminator, RestartKeepsPersistedStateAndResumes) {
  Cluster c(2);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).AddCounter("n", 3).ok());
  c.Tick(10000);
  c.wire().clear();  // lost in flight
  c.Restart(0);      // the batch was persisted, so it survives and is resent
  ASSERT_TRUE(c.node(0).AddCounter("n", 4).ok());
  c.RunFor(2000000);
  EXPECT_EQ(c.node(1).Get("n")->As<PnCounter>()->Value(), 7);
  EXPECT_EQ(c.Encoded(1, "n"), c.Encoded(0, "n"));
}

TEST(Disseminator, TombstonesAreCollectedOnlyOnceEveryRegionHasSeenThem) {
  Cluster c(3);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).PutLww("k", "v1").ok());
  c.RunFor(50000);
  // Region 2 is cut off and writes concurrently, with an older stamp than the delete.
  auto cut = [](const Envelope& e) { return e.to == 2 || e.from == 2; };
  ASSERT_TRUE(c.node(2).PutLww("k", "concurrent-older").ok());
  c.RunFor(20000, cut);
  ASSERT_TRUE(c.node(1).DeleteLww("k").ok());
  c.RunFor(3000000, cut);
  // Region 2 has not seen the delete: nobody may forget it.
  ASSERT_NE(c.node(0).Get("k"), nullptr);
  ASSERT_NE(c.node(1).Get("k"), nullptr);
  EXPECT_EQ(c.node(0).stats().tombstones_collected, 0u);
  // Healed: the older concurrent write loses to the delete, then the tombstone goes.
  c.RunFor(5000000);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.node(i).Get("k"), nullptr) << "region " << i;
    EXPECT_EQ(c.node(i).stats().tombstones_collected, 1u) << "region " << i;
  }
  // A new write after collection is accepted everywhere.
  ASSERT_TRUE(c.node(2).PutLww("k", "fresh").ok());
  c.RunFor(100000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.node(i).Get("k")->As<LwwRegister>()->Get(), "fresh");
}

// Found by the simulator: an operation persisted (and acknowledged) before its batch was
// sealed must still be shipped after a crash.
TEST(Disseminator, UnsealedDeltasSurviveACrash) {
  Cluster c(2);
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).SetAdd("s", "x").ok());
  c.Tick(2000);  // persisted, batch still open
  c.Restart(0);
  c.RunFor(100000);
  ASSERT_NE(c.node(1).Get("s"), nullptr);
  EXPECT_TRUE(c.node(1).Get("s")->As<OrSet>()->Contains("x"));
  EXPECT_EQ(c.Encoded(1, "s"), c.Encoded(0, "s"));
}

TEST(Disseminator, MalformedMessagesAreDroppedAndCounted) {
  Cluster c(2);
  c.node(1).Step(0, "");
  c.node(1).Step(0, "garbage that is not a flatbuffer");
  c.node(1).Step(1, "from myself");
  c.node(1).Step(7, "from nowhere");
  // A valid message with one flipped byte in a CRDT payload.
  c.Tick(1000);
  ASSERT_TRUE(c.node(0).SetAdd("s", "element").ok());
  c.Tick(10000);
  ASSERT_FALSE(c.wire().empty());
  std::string good = c.wire().front().bytes;
  int dropped_before = static_cast<int>(c.node(1).stats().messages_bad);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] ^= 0x5a;
    c.node(1).Step(0, bad);  // must never crash
  }
  EXPECT_GT(static_cast<int>(c.node(1).stats().messages_bad), dropped_before);
  EXPECT_GE(c.node(1).stats().messages_bad, 4u);
}

}  // namespace
}  // namespace geokv::crdt
