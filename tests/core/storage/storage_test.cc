// The Storage contract, run against every implementation (WiredTiger and in-memory), plus
// what is specific to each: WiredTiger's group commit, panics and locking; the in-memory
// store's crash model.
#include "core/engine/storage.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine/memory_storage.h"
#include "core/storage/wiredtiger_storage.h"
#include "tests/testing/temp_dir.h"

namespace geokv::storage {
// LeakSanitizer (asan preset): a WiredTiger connection that panicked on a damaged file
// cannot be freed (its close fails after the panic); only allocations made inside
// libwiredtiger are suppressed.
extern "C" __attribute__((visibility("default"))) const char* __lsan_default_suppressions() { return "leak:libwiredtiger.so\n"; }

namespace {

using testing::TempDir;

struct Impl {
  const char* name;
  std::function<std::unique_ptr<Storage>(const std::string& dir)> open;
};

std::unique_ptr<Storage> OpenWiredTiger(const std::string& dir) {
  WiredTigerStorage::Options options;
  options.dir = dir;
  auto s = WiredTigerStorage::Open(options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

class StorageContractTest : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_.Sub("db"));
    ASSERT_NE(store_, nullptr);
  }
  TempDir dir_;
  std::unique_ptr<Storage> store_;
};

TEST_P(StorageContractTest, PutGetDelete) {
  ASSERT_TRUE(store_->Put("t", "k", "v1", Durability::kSync).ok());
  auto got = store_->Get("t", "k");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "v1");
  ASSERT_TRUE(store_->Put("t", "k", "v2", Durability::kNone).ok());
  EXPECT_EQ(*store_->Get("t", "k"), "v2");
  ASSERT_TRUE(store_->Delete("t", "k", Durability::kWrite).ok());
  EXPECT_EQ(store_->Get("t", "k").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Delete("t", "k", Durability::kSync).ok()) << "deleting an absent key is OK";
}

TEST_P(StorageContractTest, BinaryKeysAndValuesAndEmptyValue) {
  const std::string key("\0a\xff\0", 4), value("\0\x01\x02", 3);
  ASSERT_TRUE(store_->Put("t", key, value, Durability::kSync).ok());
  ASSERT_TRUE(store_->Put("t", "empty", "", Durability::kSync).ok());
  EXPECT_EQ(*store_->Get("t", key), value);
  auto empty = store_->Get("t", "empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST_P(StorageContractTest, EmptyKeysAreRefused) {
  EXPECT_EQ(store_->Put("t", "", "v", Durability::kSync).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Get("t", "").status().code(), Code::kInvalidArgument);
}

TEST_P(StorageContractTest, TablesAreSeparate) {
  ASSERT_TRUE(store_->Put("a", "k", "in-a", Durability::kSync).ok());
  ASSERT_TRUE(store_->Put("b", "k", "in-b", Durability::kSync).ok());
  EXPECT_EQ(*store_->Get("a", "k"), "in-a");
  EXPECT_EQ(*store_->Get("b", "k"), "in-b");
  EXPECT_EQ(store_->Get("c", "k").status().code(), Code::kNotFound);
}

TEST_P(StorageContractTest, BatchIsAtomicAcrossTables) {
  WriteBatch batch;
  batch.Put("a", "x", "1");
  batch.Put("b", "y", "2");
  batch.Delete("a", "missing");
  ASSERT_TRUE(store_->Write(batch, Durability::kSync).ok());
  EXPECT_EQ(*store_->Get("a", "x"), "1");
  EXPECT_EQ(*store_->Get("b", "y"), "2");
}

TEST_P(StorageContractTest, ScanByPrefixInOrderWithPaging) {
  for (const char* k : {"user/3", "user/1", "user/2", "userx", "use", "zzz", "a"}) {
    ASSERT_TRUE(store_->Put("t", k, std::string("v-") + k, Durability::kNone).ok());
  }
  auto all = store_->Scan("t", "user/", "", 100);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].key, "user/1");
  EXPECT_EQ((*all)[1].key, "user/2");
  EXPECT_EQ((*all)[2].key, "user/3");
  EXPECT_EQ((*all)[2].value, "v-user/3");

  auto first = store_->Scan("t", "user/", "", 2);
  ASSERT_EQ(first->size(), 2u);
  auto rest = store_->Scan("t", "user/", first->back().key, 2);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].key, "user/3");
  EXPECT_TRUE(store_->Scan("t", "user/", "user/3", 2)->empty());

  auto everything = store_->Scan("t", "", "", 100);
  ASSERT_EQ(everything->size(), 7u);
  EXPECT_EQ(everything->front().key, "a");
  EXPECT_EQ(everything->back().key, "zzz");
  EXPECT_TRUE(store_->Scan("t", "nothing", "", 10)->empty());
  EXPECT_TRUE(store_->Scan("empty_table", "", "", 10)->empty());
  // `after` before the prefix starts at the prefix.
  EXPECT_EQ(store_->Scan("t", "user/", "a", 10)->size(), 3u);
}

TEST_P(StorageContractTest, ClosedStoreRefusesWork) {
  ASSERT_TRUE(store_->Close().ok());
  EXPECT_TRUE(store_->Close().ok()) << "Close is idempotent";
  EXPECT_EQ(store_->Put("t", "k", "v", Durability::kSync).code(), Code::kClosed);
  EXPECT_EQ(store_->Get("t", "k").status().code(), Code::kClosed);
  EXPECT_EQ(store_->Scan("t", "", "", 1).status().code(), Code::kClosed);
}

TEST_P(StorageContractTest, ConcurrentWritersAllLand) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string k = "k" + std::to_string(t) + "/" + std::to_string(i);
        if (!store_->Put("t", k, k, Durability::kSync).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->Scan("t", "k", "", 10000)->size(), size_t{kThreads * kPerThread});
}

// Readers share pooled sessions and their cached cursors: many threads reading (point gets,
// misses, scans, several tables) while writers write must each see whole, correct values.
TEST_P(StorageContractTest, ConcurrentReadersAndWritersSeeWholeValues) {
  constexpr int kKeys = 50, kReaders = 6, kRounds = 300;
  for (int i = 0; i < kKeys; ++i) {
    const std::string k = "k" + std::to_string(i);
    ASSERT_TRUE(store_->Put("a", k, "a:" + k, Durability::kNone).ok());
    ASSERT_TRUE(store_->Put("b", k, "b:" + k, Durability::kNone).ok());
  }
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); i = (i + 1) % kKeys) {
      const std::string k = "k" + std::to_string(i);
      if (!store_->Put("a", k, "a:" + k, Durability::kNone).ok()) failures++;
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string k = "k" + std::to_string((r * 7 + t) % kKeys);
        const std::string table = (r + t) % 2 == 0 ? "a" : "b";
        auto v = store_->Get(table, k);
        if (!v.ok() || *v != table + ":" + k) failures++;
        if (store_->Get(table, "missing").status().code() != Code::kNotFound) failures++;
        if (r % 50 == 0) {
          auto page = store_->Scan(table, "k", "", 1000);
          if (!page.ok() || page->size() != size_t{kKeys}) failures++;
        }
      }
    });
  }
  for (auto& th : readers) th.join();
  stop = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllStorages, StorageContractTest,
    ::testing::Values(Impl{"WiredTiger", OpenWiredTiger},
                      Impl{"Memory", [](const std::string&) -> std::unique_ptr<Storage> {
                             return std::make_unique<MemoryStorage>();
                           }}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- WiredTiger specifics -------------------------------------------------------------

TEST(WiredTigerStorageTest, DataSurvivesReopen) {
  TempDir dir;
  {
    auto s = OpenWiredTiger(dir.path());
    ASSERT_TRUE(s->Put("t", "k", "v", Durability::kSync).ok());
  }
  auto s = OpenWiredTiger(dir.path());
  EXPECT_EQ(*s->Get("t", "k"), "v");
}

TEST(WiredTigerStorageTest, SecondOpenOfSameDirIsBusy) {
  TempDir dir;
  auto first = OpenWiredTiger(dir.path());
  WiredTigerStorage::Options options;
  options.dir = dir.path();
  auto second = WiredTigerStorage::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  // The first one is untouched.
  ASSERT_TRUE(first->Put("t", "k", "v", Durability::kSync).ok());
  EXPECT_EQ(*first->Get("t", "k"), "v");
}

// Issue 10 item 1: WiredTiger's own in-process check compares path strings; every other
// spelling of an open directory must be refused too, and must leave the store intact.
TEST(WiredTigerStorageTest, OtherSpellingsOfAnOpenDirAreBusy) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto first = OpenWiredTiger(path);
  ASSERT_TRUE(first->Put("t", "k", "v", Durability::kSync).ok());
  const std::string link = dir.Sub("link");
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  for (const std::string& spelling : {path + "/", path + "/.", path + "//", link, link + "/."}) {
    WiredTigerStorage::Options options;
    options.dir = spelling;
    auto second = WiredTigerStorage::Open(options);
    ASSERT_FALSE(second.ok()) << spelling;
    EXPECT_EQ(second.status().code(), Code::kBusy) << spelling;
    EXPECT_NE(second.status().message().find("this process"), std::string::npos) << second.status().ToString();
  }
  ASSERT_TRUE(first->Close().ok());
  auto again = OpenWiredTiger(link);
  EXPECT_EQ(*again->Get("t", "k"), "v");
}

// Issue 10 item 5: a damaged file is kCorruption at open (naming it), and Repair salvages.
TEST(WiredTigerStorageTest, DamagedFileIsCorruptionAtOpenAndRepairSalvages) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto s = OpenWiredTiger(path);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(s->Put("data", "k" + std::to_string(i), "v", Durability::kSync).ok());
  }
  {
    std::fstream f(path + "/data.wt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0, std::ios::end);
    const auto size = static_cast<long>(f.tellp());
    ASSERT_GT(size, 4096);
    f.seekp(4096);
    for (long i = 4096; i < size; ++i) f.put(static_cast<char>(0x5a ^ i));
  }
  WiredTigerStorage::Options options;
  options.dir = path;
  auto damaged = WiredTigerStorage::Open(options);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), Code::kCorruption) << damaged.status().ToString();
  EXPECT_NE(damaged.status().message().find("data.wt"), std::string::npos) << damaged.status().ToString();
  auto report = WiredTigerStorage::Repair(path);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->damaged, std::vector<std::string>{"data"});
  auto repaired = WiredTigerStorage::Open(options);
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_TRUE((*repaired)->Put("data", "new", "v", Durability::kSync).ok());
}

TEST(WiredTigerStorageTest, RepairOfAnOpenStoreIsBusy) {
  TempDir dir;
  auto s = OpenWiredTiger(dir.Sub("db"));
  EXPECT_EQ(WiredTigerStorage::Repair(dir.Sub("db")).status().code(), Code::kBusy);
  EXPECT_EQ(WiredTigerStorage::Repair(dir.Sub("nothing-here")).status().code(), Code::kInvalidArgument);
}

TEST(WiredTigerStorageTest, DataDirThatIsAFileIsRefused) {
  TempDir dir;
  std::ofstream(dir.Sub("file")) << "not a directory";
  WiredTigerStorage::Options options;
  options.dir = dir.Sub("file");
  auto s = WiredTigerStorage::Open(options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("not a directory"), std::string::npos);
}

TEST(WiredTigerStorageTest, UncreatableDataDirIsAnIOError) {
  TempDir dir;
  std::ofstream(dir.Sub("file")) << "x";
  WiredTigerStorage::Options options;
  options.dir = dir.Sub("file") + "/below";  // parent is a file: cannot be created
  auto s = WiredTigerStorage::Open(options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kIOError) << s.status().ToString();
}

TEST(WiredTigerStorageTest, UnwritableDataDirIsAnIOError) {
  WiredTigerStorage::Options options;
  options.dir = "/proc/geokv-cannot-exist";  // not writable even for root
  auto s = WiredTigerStorage::Open(options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kIOError) << s.status().ToString();
}

TEST(WiredTigerStorageTest, BadTableNamesAreRefused) {
  TempDir dir;
  auto s = OpenWiredTiger(dir.path());
  EXPECT_EQ(s->Put("", "k", "v", Durability::kSync).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->Put("a:b", "k", "v", Durability::kSync).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->Get("../x", "k").status().code(), Code::kInvalidArgument);
}

TEST(WiredTigerStorageTest, PanicMakesTheStoreRefuseWorkWithoutCrashing) {
  TempDir dir;
  auto s = OpenWiredTiger(dir.path());
  ASSERT_TRUE(s->Put("t", "k", "v", Durability::kSync).ok());
  static_cast<WiredTigerStorage*>(s.get())->TestOnlyRaisePanic();
  Status put = s->Put("t", "k2", "v", Durability::kSync);
  EXPECT_EQ(put.code(), Code::kPanic);
  EXPECT_NE(put.message().find("refuses further work"), std::string::npos) << put.ToString();
  EXPECT_EQ(s->Get("t", "k").status().code(), Code::kPanic);
  EXPECT_EQ(s->Scan("t", "", "", 1).status().code(), Code::kPanic);
}

TEST(WiredTigerStorageTest, GroupCommitSharesTransactionsAmongConcurrentWriters) {
  TempDir dir;
  auto opened = WiredTigerStorage::Open({.dir = dir.path()});
  ASSERT_TRUE(opened.ok());
  auto& s = *opened.value();
  constexpr int kThreads = 16, kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(s.Put("t", std::to_string(t) + "/" + std::to_string(i), "v", Durability::kSync).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(s.writes(), uint64_t{kThreads * kPerThread});
  // Each commit is one fsync; with 16 writers waiting, commits must cover several writes.
  EXPECT_LT(s.commits(), s.writes());
}

// ---- In-memory specifics: the crash model the simulator relies on --------------------

TEST(MemoryStorageTest, CrashLosesOnlyWhatWasNotSynced) {
  MemoryStorage s;
  ASSERT_TRUE(s.Put("t", "a", "1", Durability::kNone).ok());
  ASSERT_TRUE(s.Put("t", "b", "2", Durability::kSync).ok());  // syncs "a" too, like a log fsync
  ASSERT_TRUE(s.Put("t", "c", "3", Durability::kWrite).ok());
  ASSERT_TRUE(s.Delete("t", "a", Durability::kNone).ok());
  EXPECT_EQ(s.volatile_writes(), 2u);
  s.Crash();
  EXPECT_EQ(*s.Get("t", "a"), "1") << "the unsynced delete is lost";
  EXPECT_EQ(*s.Get("t", "b"), "2");
  EXPECT_EQ(s.Get("t", "c").status().code(), Code::kNotFound);
  EXPECT_EQ(s.volatile_writes(), 0u);
}

// The durable view shows exactly what Crash(0) would keep, and cannot be written.
TEST(MemoryStorageTest, DurableViewShowsWhatACrashKeeps) {
  MemoryStorage s;
  Storage& durable = s.Durable();
  ASSERT_TRUE(s.Put("t", "a", "1", Durability::kNone).ok());
  EXPECT_EQ(*s.Get("t", "a"), "1");
  EXPECT_EQ(durable.Get("t", "a").status().code(), Code::kNotFound) << "not synced yet";
  EXPECT_TRUE(durable.Scan("t", "", "", 10)->empty());
  ASSERT_TRUE(s.Put("t", "b", "2", Durability::kSync).ok());  // syncs "a" too
  EXPECT_EQ(*durable.Get("t", "a"), "1");
  EXPECT_EQ(*durable.Get("t", "b"), "2");
  ASSERT_TRUE(s.Delete("t", "a", Durability::kWrite).ok());
  ASSERT_TRUE(s.Put("t", "c", "3", Durability::kNone).ok());
  EXPECT_EQ(*durable.Get("t", "a"), "1") << "the unsynced delete is not durable";
  EXPECT_EQ(durable.Get("t", "c").status().code(), Code::kNotFound);
  auto rows = durable.Scan("t", "", "", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].key, "a");
  EXPECT_EQ((*rows)[1].key, "b");
  EXPECT_EQ(durable.Scan("t", "", "a", 10)->size(), 1u);  // paging works as on the store

  // Read-only: writing through the view fails and changes nothing.
  WriteBatch batch;
  batch.Put("t", "d", "4");
  EXPECT_EQ(durable.Write(batch, Durability::kSync).code(), Code::kInvalidArgument);
  EXPECT_EQ(s.Get("t", "d").status().code(), Code::kNotFound);
  EXPECT_EQ(s.volatile_writes(), 2u);

  // A crash that keeps the first unsynced write: the view and the store agree again.
  s.Crash(/*keep_volatile=*/1);
  EXPECT_EQ(durable.Get("t", "a").status().code(), Code::kNotFound);
  EXPECT_EQ(s.Get("t", "a").status().code(), Code::kNotFound);
  EXPECT_EQ(durable.Get("t", "c").status().code(), Code::kNotFound);
  EXPECT_EQ(*durable.Get("t", "b"), "2");

  // The view closes with its store.
  ASSERT_TRUE(s.Close().ok());
  EXPECT_EQ(durable.Get("t", "b").status().code(), Code::kClosed);
  EXPECT_EQ(durable.Scan("t", "", "", 10).status().code(), Code::kClosed);
}

}  // namespace
}  // namespace geokv::storage
