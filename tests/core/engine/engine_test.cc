// The engine's round, one node at a time, under an Env whose clock, storage and failures
// the test controls: durability of what Paxos writes, fail-stop, answers held until what
// they saw is durable, refusals at the edges (overflow, modes of held data).
#include "core/engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/engine/memory_storage.h"

namespace geokv {
namespace {

// An Env with a hand-driven clock over MemoryStorage that records every write's durability
// and can fail writes.
class TestEnv final : public Env, public storage::Storage {
 public:
  int64_t NowUs() override { return now_us; }
  int64_t WallUs() override { return 1'800'000'000'000'000 + now_us; }
  void Send(uint32_t, std::string) override { sent++; }
  void ConnectPeer(uint32_t, const std::string&, const std::string&) override {}
  storage::Storage& Store() override { return *this; }
  uint64_t Random() override { return ++random; }

  Status Write(const storage::WriteBatch& batch, storage::Durability durability) override {
    if (fail_writes) return Status(Code::kIOError, "No space left on device");
    writes.push_back(durability);
    return memory.Write(batch, durability);
  }
  StatusOr<std::string> Get(std::string_view table, std::string_view key) override { return memory.Get(table, key); }
  StatusOr<std::vector<storage::Entry>> Scan(std::string_view table, std::string_view prefix, std::string_view after,
                                             size_t limit) override {
    return memory.Scan(table, prefix, after, limit);
  }
  Status Close() override { return memory.Close(); }

  int64_t now_us = 1'000'000;
  uint64_t random = 0;
  int sent = 0;
  bool fail_writes = false;
  std::vector<storage::Durability> writes;
  storage::MemoryStorage memory;
};

class EngineTest : public ::testing::Test {
 protected:
  void Open(storage::Durability durability = storage::Durability::kSync) {
    EngineOptions o;
    o.regions = 1;  // a lone replica commits by itself
    o.shards = 2;
    o.durability = durability;
    o.policy = Policy(Mode::kStrong);
    ASSERT_TRUE(o.policy.Set("c/", Mode::kCounter).ok());
    ASSERT_TRUE(o.policy.Set("lww/", Mode::kLww).ok());
    auto e = Engine::Open(o, env_);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
    // Elect the lone replica of every group (the shards and the metadata group).
    auto all_lead = [&] {
      for (uint32_t g = 0; g < engine_->groups(); ++g) {
        if (!engine_->IsLeader(g)) return false;
      }
      return true;
    };
    for (int i = 0; i < 200 && !all_lead(); ++i) Advance(10'000);
    ASSERT_TRUE(all_lead());
  }

  void Advance(int64_t us) {
    env_.now_us += us;
    engine_->Round({});
  }

  // Runs `r` to its answer (rounds until it comes, with time moving on).
  Response Call(Request r) {
    std::optional<Response> out;
    Engine::RoundInputs in;
    in.calls.push_back(Engine::Call{std::move(r), [&out](Response resp) { out = std::move(resp); }});
    engine_->Round(std::move(in));
    for (int i = 0; i < 100 && !out; ++i) Advance(10'000);
    EXPECT_TRUE(out.has_value()) << "no answer";
    return out.value_or(Response{});
  }

  static Request Op(geokv::Op op, std::string key, std::string value = "", int64_t delta = 0) {
    Request r;
    r.op = op;
    r.key = std::move(key);
    r.value = std::move(value);
    r.delta = delta;
    return r;
  }

  TestEnv env_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, PaxosStateIsSyncedWhateverTheDataDurability) {
  Open(storage::Durability::kNone);
  env_.writes.clear();
  ASSERT_TRUE(Call(Op(Op::kPut, "k", "v")).status.ok());
  bool synced = false;
  for (auto d : env_.writes) synced |= d == storage::Durability::kSync;
  EXPECT_TRUE(synced) << "an accepted Paxos entry was acknowledged without an fsync";
}

TEST_F(EngineTest, OneRoundPersistsEveryCallInOneWrite) {
  Open();
  env_.writes.clear();
  Engine::RoundInputs in;
  int answered = 0;
  for (int i = 0; i < 50; ++i) {
    in.calls.push_back(Engine::Call{Op(Op::kAdd, "c/n", "", 1), [&answered](Response r) {
                                      EXPECT_TRUE(r.status.ok()) << r.status.ToString();
                                      answered++;
                                    }});
  }
  engine_->Round(std::move(in));
  EXPECT_EQ(answered, 50);
  EXPECT_EQ(env_.writes.size(), 1u) << "50 eventual updates of one round took several commits";
}

// An idle node wakes for its timers once per heartbeat interval, not every tick; pending
// work (a local delta to seal) brings the tick back; the ticks skipped run on the next wake,
// so a lone leader still beats once per heartbeat interval and keeps leading.
TEST_F(EngineTest, IdleNodeWakesOncePerHeartbeatAndBusyOneEveryTick) {
  Open();
  const EngineOptions defaults;
  const int64_t tick = defaults.tick_us, beat = defaults.heartbeat_ticks * defaults.tick_us;
  int wakes = 0;
  const int64_t start = env_.now_us;
  while (env_.now_us - start < 100 * beat) {
    env_.now_us = std::max(env_.now_us, engine_->NextTimerUs());
    engine_->Round({});
    ++wakes;
  }
  EXPECT_LE(wakes, 101) << "an idle node woke " << wakes << " times in 100 heartbeat intervals";
  for (uint32_t g = 0; g < engine_->groups(); ++g) EXPECT_TRUE(engine_->IsLeader(g));

  Engine::RoundInputs in;
  in.calls.push_back(Engine::Call{Op(Op::kPut, "lww/k", "v"), [](Response) {}});
  engine_->Round(std::move(in));
  ASSERT_NE(engine_->EventualReplica(engine_->ShardOf("lww/k")), nullptr);
  ASSERT_TRUE(engine_->EventualReplica(engine_->ShardOf("lww/k"))->HasOpenBatch());
  EXPECT_LE(engine_->NextTimerUs() - env_.now_us, tick) << "a delta waits to be sealed: the next tick is due";
}

TEST_F(EngineTest, EventualReadIsAnsweredOnlyOnceWhatItSawIsDurable) {
  Open();
  env_.writes.clear();
  std::vector<std::string> events;
  Engine::RoundInputs in;
  in.calls.push_back(Engine::Call{Op(Op::kPut, "lww/a", "new"), [&](Response) { events.push_back("put"); }});
  in.calls.push_back(Engine::Call{Op(Op::kGet, "lww/a"), [&](Response r) {
                                    events.push_back("get:" + r.value + ":" + std::to_string(env_.writes.size()));
                                  }});
  engine_->Round(std::move(in));
  ASSERT_EQ(events.size(), 2u);
  // The read saw the put of its own round: it is answered after the write that made it durable.
  EXPECT_EQ(events[1], "get:new:1");
}

TEST_F(EngineTest, StorageFailureStopsTheNode) {
  Open();
  env_.fail_writes = true;
  int answered = 0;
  Engine::RoundInputs in;
  in.calls.push_back(Engine::Call{Op(Op::kAdd, "c/n", "", 1), [&answered](Response) { answered++; }});
  engine_->Round(std::move(in));
  EXPECT_EQ(engine_->failure().code(), Code::kIOError);
  EXPECT_NE(engine_->failure().message().find("No space left"), std::string::npos) << engine_->failure().ToString();
  EXPECT_EQ(answered, 0) << "a write that never reached the disk was acknowledged";
  env_.fail_writes = false;
  const int sent = env_.sent;
  in = {};
  in.calls.push_back(Engine::Call{Op(Op::kGet, "c/n"), [&answered](Response) { answered++; }});
  engine_->Round(std::move(in));
  EXPECT_EQ(answered, 0) << "a stopped node keeps serving";
  EXPECT_EQ(env_.sent, sent) << "a stopped node keeps sending";
}

TEST_F(EngineTest, ShardBytesSurviveARestart) {
  Open();
  uint64_t total = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "k" + std::to_string(i), value(50 + i, 'x');
    ASSERT_TRUE(Call(Op(Op::kPut, key, value)).status.ok());
    total += key.size() + value.size();
  }
  ASSERT_TRUE(Call(Op(Op::kPut, "k0", "short")).status.ok());  // replaces 50 bytes by 5
  total -= 45;
  auto sum = [&] { return engine_->shard_bytes(0) + engine_->shard_bytes(1); };
  EXPECT_EQ(sum(), total);
  EXPECT_TRUE(engine_->CheckShardBytes().ok());
  engine_.reset();
  Open();
  EXPECT_EQ(sum(), total);
  EXPECT_TRUE(engine_->CheckShardBytes().ok()) << engine_->CheckShardBytes().ToString();
}

TEST_F(EngineTest, StrongAddRefusesOverflowAndKeepsTheValue) {
  Open();
  ASSERT_TRUE(Call(Op(Op::kAdd, "n", "", std::numeric_limits<int64_t>::max() - 1)).status.ok());
  Response r = Call(Op(Op::kAdd, "n", "", 2));
  EXPECT_EQ(r.status.code(), Code::kInvalidArgument) << r.status.ToString();
  Response v = Call(Op(Op::kGet, "n"));
  EXPECT_EQ(v.value, std::to_string(std::numeric_limits<int64_t>::max() - 1));
  r = Call(Op(Op::kAdd, "n", "", 1));
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.number, std::numeric_limits<int64_t>::max());
}

TEST_F(EngineTest, DataOfAnotherModeIsRefusedNotHidden) {
  Open();
  // Strong data under c/ (the policy says counter): as if written before the rule came in,
  // on a replica the metadata leader could not see.
  ASSERT_TRUE(Call(Op(Op::kPut, "held", "41")).status.ok());
  ASSERT_TRUE(Call(Op(Op::kAdd, "c/seen", "", 1)).status.ok());
  Request rule;
  rule.op = Op::kPolicySet;
  rule.key = "h";
  rule.mode = Mode::kCounter;
  // The proposal check sees the strong row and refuses.
  EXPECT_EQ(Call(rule).status.code(), Code::kInvalidArgument);
  // Data the check missed is refused where it is served.
  storage::WriteBatch b;
  b.Put("strong", std::string("\0\0\0", 3) + static_cast<char>(engine_->ShardOf("c/hidden")) + "c/hidden", "7");
  ASSERT_TRUE(env_.memory.Write(b, storage::Durability::kSync).ok());
  Response r = Call(Op(Op::kAdd, "c/hidden", "", 1));
  EXPECT_EQ(r.status.code(), Code::kWrongMode) << r.status.ToString();
  EXPECT_NE(r.status.message().find("strong"), std::string::npos) << r.status.message();
  r = Call(Op(Op::kGet, "c/hidden"));
  EXPECT_EQ(r.status.code(), Code::kWrongMode) << "a strong value was hidden behind an empty counter";
  // A counter key with counter data is served as before.
  EXPECT_TRUE(Call(Op(Op::kAdd, "c/seen", "", 1)).status.ok());
}

}  // namespace
}  // namespace geokv
