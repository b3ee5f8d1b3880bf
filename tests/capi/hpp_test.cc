// The header-only C++ wrapper: RAII, move-only handles, exceptions with codes, optional.
#include "geokv/geokv.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/ports.h"
#include "tests/testing/temp_dir.h"

namespace {

static_assert(!std::is_copy_constructible_v<geokv::db>);
static_assert(std::is_nothrow_move_constructible_v<geokv::db>);
static_assert(!std::is_copy_constructible_v<geokv::iterator>);

TEST(HppTest, PutGetEraseScan) {
  geokv::testing::TempDir dir;
  geokv::db db(dir.Sub("db"));
  db.put("a/1", "one");
  db.put("a/2", "two");
  db.put("b/1", "three");
  EXPECT_EQ(db.get("a/1"), "one");
  EXPECT_EQ(db.get("nope"), std::nullopt);
  db.erase("a/1");
  EXPECT_EQ(db.get("a/1"), std::nullopt);

  auto it = db.scan("a/");
  auto e = it.next();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->first, "a/2");
  EXPECT_EQ(e->second, "two");
  EXPECT_FALSE(it.next().has_value());
}

TEST(HppTest, RepairAndLogLevel) {
  geokv::testing::TempDir dir;
  const std::string path = dir.Sub("db");
  {
    geokv::db db(path.c_str());
    db.put("a", "1");
    db.put("b", "2");
    try {
      geokv::repair(path);
      FAIL() << "repair of an open store must throw";
    } catch (const geokv::error& e) {
      EXPECT_EQ(e.code(), GEOKV_EBUSY);
    }
  }
  const geokv::repair_report report = geokv::repair(path);
  EXPECT_EQ(report.tables_salvaged, 0u);
  EXPECT_EQ(report.keys_kept, 2u);
  const int before = geokv::log_level();
  geokv::set_log_level(GEOKV_LOG_ERROR);
  EXPECT_EQ(geokv::log_level(), GEOKV_LOG_ERROR);
  EXPECT_THROW(geokv::set_log_level(7), geokv::error);
  geokv::set_log_level(before);
}

TEST(HppTest, ErrorsCarryTheirCode) {
  geokv::testing::TempDir dir;
  geokv::db db(dir.Sub("db"), geokv::options().key_bytes_max(4));
  try {
    db.put("toolong", "v");
    FAIL() << "expected geokv::error";
  } catch (const geokv::error& e) {
    EXPECT_EQ(e.code(), GEOKV_EKEYSIZE);
    EXPECT_NE(std::string(e.what()).find("GEOKV_EKEYSIZE"), std::string::npos);
  }
  EXPECT_THROW(geokv::db(dir.Sub("db")), geokv::error) << "second open is EBUSY";
}

TEST(HppTest, MoveTransfersOwnershipAndCloseIsExplicit) {
  geokv::testing::TempDir dir;
  geokv::db a(dir.Sub("db"));
  a.put("k", "v");
  geokv::db b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_TRUE(b);
  EXPECT_EQ(b.get("k"), "v");
  b.close();
  EXPECT_FALSE(b);
  geokv::db reopened(dir.Sub("db"));  // the lock was released by close()
  EXPECT_EQ(reopened.get("k"), "v");
}

// The code a call throws with, or 0 when it does not throw.
template <typename Fn>
int CodeOf(Fn&& fn) {
  try {
    fn();
  } catch (const geokv::error& e) {
    return e.code();
  }
  return 0;
}

// Issue 10: db::close while other threads are inside calls on the same db. Each call
// finishes or throws GEOKV_ECLOSED (never EINVAL from a reset pointer, never a crash or a
// report from ASan/TSan), and calls after close keep throwing GEOKV_ECLOSED.
TEST(HppTest, CloseWhileOtherThreadsAreInsideCalls) {
  geokv::testing::TempDir dir;
  constexpr int kRounds = 12, kThreads = 6;
  for (int round = 0; round < kRounds; ++round) {
    geokv::db db(dir.Sub("db"));
    std::atomic<int> started{0}, other_codes{0}, closed_seen{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        bool counted = false;
        for (int i = 0; !stop.load(); ++i) {
          const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i % 50);
          const int code = CodeOf([&] {
            switch (i % 4) {
              case 0: db.put(key, "value"); break;
              case 1: (void)db.get(key); break;
              case 2: db.erase(key); break;
              default: {
                auto it = db.scan("t" + std::to_string(t) + "/");
                for (int n = 0; n < 5 && it.next(); ++n) {
                }
              }
            }
          });
          if (!counted) {
            counted = true;
            started.fetch_add(1);
          }
          if (code == GEOKV_ECLOSED) {
            closed_seen.fetch_add(1);
            break;  // closed: every later call says so too (checked below)
          }
          if (code != 0) other_codes.fetch_add(1);
        }
      });
    }
    while (started.load() < kThreads) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 4));
    db.close();
    EXPECT_FALSE(db);
    stop.store(true);
    for (auto& th : threads) th.join();
    EXPECT_EQ(other_codes.load(), 0) << "round " << round << ": a call failed with another code than ECLOSED";
    EXPECT_EQ(CodeOf([&] { db.put("k", "v"); }), GEOKV_ECLOSED);
    EXPECT_EQ(CodeOf([&] { (void)db.get("k"); }), GEOKV_ECLOSED);
    EXPECT_EQ(CodeOf([&] { (void)db.scan(); }), GEOKV_ECLOSED);
    EXPECT_EQ(CodeOf([&] { db.close(); }), 0) << "a second close does nothing";
  }
  // The store was closed properly each time: it opens, with what was written.
  geokv::db again(dir.Sub("db"));
  again.put("last", "ok");
  EXPECT_EQ(again.get("last"), "ok");
}

// A default-constructed or moved-from db is no handle at all: GEOKV_EINVAL, not ECLOSED.
TEST(HppTest, EmptyDbIsInvalidNotClosed) {
  geokv::db empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(CodeOf([&] { empty.put("k", "v"); }), GEOKV_EINVAL);
  EXPECT_EQ(CodeOf([&] { empty.close(); }), 0);
  EXPECT_EQ(CodeOf([&] { empty.put("k", "v"); }), GEOKV_ECLOSED);
}

TEST(HppTest, ModeOperationsOnAnEmbeddedStoreAreWrongMode) {
  geokv::testing::TempDir dir;
  geokv::db db(dir.Sub("db"));
  EXPECT_EQ(CodeOf([&] { db.cas("k", std::nullopt, "v"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.add("k", 1); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.set_add("s", "x"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.set_remove("s", "x"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.set_contains("s", "x"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.set_members("s"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.policy_set("p/", "counter"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.policy_remove("p/"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.policy_list(); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.status(); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.node_set_state(0, "draining"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.mv_get("m"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.mv_put("m", "v"); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.mv_delete("m"); }), GEOKV_EWRONGMODE);
  try {
    db.add("k", 1);
  } catch (const geokv::error& e) {
    EXPECT_NE(std::string(e.what()).find("connect to a cluster"), std::string::npos) << e.what();
  }
  // The embedded store itself is untouched and still works.
  db.put("k", "v");
  EXPECT_EQ(db.get("k"), "v");
}

TEST(HppTest, ConnectRefusesBadInputWithTheRightCode) {
  EXPECT_EQ(CodeOf([] { geokv::db::connect(""); }), GEOKV_EINVAL);
  EXPECT_EQ(CodeOf([] { geokv::db::connect("127.0.0.1:7200"); }), GEOKV_EINVAL);  // no scheme
  EXPECT_EQ(CodeOf([] { geokv::db::connect("tcp://127.0.0.1:1,,tcp://127.0.0.1:2"); }), GEOKV_EINVAL);
  EXPECT_EQ(CodeOf([] { geokv::db::connect("tcp://127.0.0.1:1", geokv::connect_options().curve("short", "a", "b")); }),
            GEOKV_EINVAL);
  std::string many;
  for (int i = 0; i < 65; ++i) many += (i ? "," : "") + std::string("tcp://127.0.0.1:1");
  EXPECT_EQ(CodeOf([&] { geokv::db::connect(many); }), GEOKV_EINVAL);
}

TEST(HppTest, ConnectedHandleWithoutAClusterTimesOutAndRefusesIteration) {
  // Port 1 on loopback: nothing listens, so nothing ever answers within the deadline.
  geokv::db db = geokv::db::connect("tcp://127.0.0.1:1", geokv::connect_options().timeout_ms(200));
  EXPECT_TRUE(db);
  EXPECT_EQ(CodeOf([&] { db.scan(""); }), GEOKV_EWRONGMODE);
  EXPECT_EQ(CodeOf([&] { db.get(""); }), GEOKV_EINVAL);
  EXPECT_EQ(CodeOf([&] { db.get(std::string(70000, 'k')); }), GEOKV_EKEYSIZE);
  const int code = CodeOf([&] { db.get("k"); });
  EXPECT_TRUE(code == GEOKV_ETIMEOUT || code == GEOKV_EUNAVAILABLE) << geokv_strerror(code);
  db.close();
  EXPECT_FALSE(db);
}

}  // namespace

// geokv_open with a [cluster] config: this process serves a one-region cluster and the
// handle speaks to it with every mode's operations.
TEST(HppTest, EmbeddedNodeJoinsItsClusterThroughItsConfig) {
  geokv::testing::TempDir dir;
  const std::string config = dir.Sub("node.toml");
  // Two loopback ports that were free a moment ago; another test of a parallel run may take
  // them first, so a bind that fails picks two others (a few times).
  std::mt19937 rng(static_cast<uint32_t>(getpid()));
  std::optional<geokv::db> opened;
  for (int attempt = 0; attempt < 5 && !opened; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 6000) * 2;
    if (!geokv::testing::PortFree(port) || !geokv::testing::PortFree(port + 1)) continue;
    std::ofstream out(config, std::ios::trunc);
    out << "data_dir = \"" << dir.Sub("data") << "\"\n[log]\nlevel = \"warn\"\n[node]\nid = 0\n"
        << "[cluster]\nshards = 2\n[[cluster.nodes]]\nid = 0\nregion = \"here\"\n"
        << "peer_endpoint = \"tcp://127.0.0.1:" << port << "\"\n"
        << "client_endpoint = \"tcp://127.0.0.1:" << port + 1 << "\"\n"
        << "[policy]\nrules = { \"c/\" = \"counter\" }\n";
    out.close();
    try {
      opened.emplace(nullptr, geokv::options().config_path(config.c_str()));
    } catch (const geokv::error& e) {
      if (std::string(e.what()).find("Address already in use") == std::string::npos) throw;
    }
  }
  ASSERT_TRUE(opened.has_value()) << "no two free loopback ports";
  geokv::db& db = *opened;
  // The shard groups elect their (only) leader within an election timeout.
  bool written = false;
  for (int attempt = 0; attempt < 100 && !written; ++attempt) {
    try {
      db.put("account", "1");
      written = true;
    } catch (const geokv::error& e) {
      ASSERT_TRUE(e.code() == GEOKV_EUNAVAILABLE || e.code() == GEOKV_ETIMEOUT) << e.what();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ASSERT_TRUE(written) << "no leader within 10 s";
  EXPECT_EQ(db.get("account"), "1");
  EXPECT_EQ(db.add("c/likes", 2), 2);
  EXPECT_EQ(db.add("c/likes", 3), 5);
  db.close();
  // Durable: reopening the node finds the data.
  geokv::db again(nullptr, geokv::options().config_path(config.c_str()));
  std::optional<std::string> value;
  for (int attempt = 0; attempt < 100 && !value; ++attempt) {
    try {
      value = again.get("account");
    } catch (const geokv::error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_EQ(value, "1");
}
