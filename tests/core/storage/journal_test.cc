// Damage inside WiredTiger's journal (issue 10): WiredTiger 3.2's recovery takes the first bad
// record for the end of the journal and opens without the writes after it. The store reads
// the journal itself first (core/storage/journal.h): damage is kCorruption naming the file,
// repair keeps every readable commit, and the torn tail of a crash still opens.
//
// Each case crashes a child process (kill -9 after it reported its acknowledged writes), so
// the writes live only in the journal, as after a real crash; checkpoints are off.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/storage/journal.h"
#include "core/storage/wiredtiger_storage.h"
#include "tests/testing/temp_dir.h"

namespace geokv::storage {
// LeakSanitizer: see storage_test.cc (a WiredTiger connection that panicked cannot be freed).
extern "C" __attribute__((visibility("default"))) const char* __lsan_default_suppressions() {
  return "leak:libwiredtiger.so\n";
}

namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr char kTable[] = "data";

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%05d", i);
  return buf;
}

WiredTigerStorage::Options EmbeddedOptions(const std::string& dir) {
  WiredTigerStorage::Options options;
  options.dir = dir;
  options.log_file_bytes_max = 2u << 20;  // as an embedded store
  options.log_prealloc = false;
  options.checkpoint_interval_s = 0;      // no checkpoint: every write lives in the journal
  return options;
}

// The newest journal file in dir.
std::string NewestLog(const std::string& dir) {
  std::string newest;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("WiredTigerLog.", 0) == 0 && name > newest) newest = name;
  }
  return newest;
}

std::vector<char> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

// One past the last non-zero byte of a file.
uint64_t DataEnd(const std::string& path) {
  const auto bytes = ReadAll(path);
  uint64_t end = bytes.size();
  while (end > 0 && bytes[end - 1] == 0) --end;
  return end;
}

void Patch(const std::string& path, uint64_t offset, const std::vector<char>& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good());
}

void FlipByte(const std::string& path, uint64_t offset) {
  const auto bytes = ReadAll(path);
  ASSERT_LT(offset, bytes.size());
  Patch(path, offset, {static_cast<char>(bytes[offset] ^ 0x5a)});
}

struct Crashed {
  uint64_t synced_end = 0;  // where the newest journal file's data ended after the synced writes
};

// A child writes `synced` keys with kSync, notes where the journal's data ends, writes
// `unsynced` more with kWrite (the OS has them, the disk may not), reports, and is killed.
Crashed CrashAfterWrites(const std::string& dir, int synced, int unsynced) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    auto opened = WiredTigerStorage::Open(EmbeddedOptions(dir));
    if (!opened.ok()) _exit(2);
    auto& store = *opened.value();
    for (int i = 0; i < synced; ++i) {
      if (!store.Put(kTable, Key(i), "value-" + std::to_string(i), Durability::kSync).ok()) _exit(3);
    }
    const uint64_t end = DataEnd(dir + "/" + NewestLog(dir));
    for (int i = synced; i < synced + unsynced; ++i) {
      if (!store.Put(kTable, Key(i), "value-" + std::to_string(i), Durability::kWrite).ok()) _exit(4);
    }
    if (write(fds[1], &end, sizeof end) != sizeof end) _exit(5);
    pause();
    _exit(0);
  }
  close(fds[1]);
  Crashed out;
  EXPECT_EQ(read(fds[0], &out.synced_end, sizeof out.synced_end), static_cast<ssize_t>(sizeof out.synced_end));
  close(fds[0]);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  return out;
}

// Keys readable through WiredTiger alone (its own recovery, no check of ours): what an
// open without the journal check would have served.
int64_t KeysWiredTigerAloneRecovers(const std::string& dir) {
  WT_CONNECTION* conn = nullptr;
  if (wiredtiger_open(dir.c_str(), nullptr, "log=(enabled=true)", &conn) != 0) return -1;
  WT_SESSION* session = nullptr;
  WT_CURSOR* c = nullptr;
  int64_t n = 0;
  if (conn->open_session(conn, nullptr, nullptr, &session) == 0 &&
      session->open_cursor(session, "table:data", nullptr, nullptr, &c) == 0) {
    while (c->next(c) == 0) ++n;
  }
  conn->close(conn, nullptr);
  return n;
}

size_t CountKeys(WiredTigerStorage& store) {
  auto all = store.Scan(kTable, "", "", 1u << 20);
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  return all.ok() ? all->size() : 0;
}

TEST(JournalTest, DamageInsideTheJournalIsCorruptionNamingTheFileAndRepairKeepsTheRest) {
  constexpr int kKeys = 2000;
  TempDir tmp;
  const std::string dir = tmp.Sub("db");
  CrashAfterWrites(dir, kKeys, 0);
  const std::string log = NewestLog(dir);
  FlipByte(dir + "/" + log, DataEnd(dir + "/" + log) / 2);

  // What WiredTiger alone does with it (on a copy): opens, and silently serves fewer keys.
  fs::copy(dir, tmp.Sub("copy"), fs::copy_options::recursive);
  const int64_t wt_alone = KeysWiredTigerAloneRecovers(tmp.Sub("copy"));
  EXPECT_GE(wt_alone, 0) << "WiredTiger refused the copy itself";
  EXPECT_LT(wt_alone, kKeys / 2 + 100) << "WiredTiger alone kept the writes after the damage";
  RecordProperty("keys_wiredtiger_alone_recovers", std::to_string(wt_alone));

  auto opened = WiredTigerStorage::Open(EmbeddedOptions(dir));
  ASSERT_FALSE(opened.ok()) << "opened a store whose journal is damaged in the middle";
  EXPECT_EQ(opened.status().code(), Code::kCorruption) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find(log), std::string::npos) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("geokv repair"), std::string::npos) << opened.status().ToString();
  // Refusing changed nothing: the same answer again.
  EXPECT_EQ(WiredTigerStorage::Open(EmbeddedOptions(dir)).status().code(), Code::kCorruption);

  auto report = WiredTigerStorage::Repair(dir);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->journal_files, std::vector<std::string>{log});
  ASSERT_EQ(report->journal_dropped.size(), 1u);
  EXPECT_NE(report->journal_dropped[0].find("checksum"), std::string::npos) << report->journal_dropped[0];
  // One commit record was damaged: its key alone is lost; every commit after it is replayed.
  EXPECT_EQ(report->keys_after, uint64_t{kKeys - 1});

  auto repaired = WiredTigerStorage::Open(EmbeddedOptions(dir));
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_EQ(CountKeys(**repaired), size_t{kKeys - 1});
  EXPECT_EQ(*(*repaired)->Get(kTable, Key(kKeys - 1)), "value-" + std::to_string(kKeys - 1));
  EXPECT_TRUE((*repaired)->Put(kTable, "after-repair", "v", Durability::kSync).ok());
}

// A changed byte in the last synced record: nothing follows it, but it is no torn write
// (no sector of it is missing), so the acknowledged write would be lost silently.
TEST(JournalTest, DamageInTheLastSyncedRecordIsCorruption) {
  TempDir tmp;
  const std::string dir = tmp.Sub("db");
  const Crashed crashed = CrashAfterWrites(dir, 50, 0);
  const std::string log = NewestLog(dir);
  FlipByte(dir + "/" + log, crashed.synced_end - 40);
  auto opened = WiredTigerStorage::Open(EmbeddedOptions(dir));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kCorruption) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find(log), std::string::npos) << opened.status().ToString();
  auto report = WiredTigerStorage::Repair(dir);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->keys_after, 49u);
}

// The torn tail of a crash: unsynced writes whose sectors did not all reach the disk (zeros
// from some sector on), or a file cut short. Opens, with every synced key.
TEST(JournalTest, TornTailOfACrashOpensWithEverySyncedKey) {
  constexpr int kSynced = 300, kUnsynced = 300;
  for (const bool cut_short : {false, true}) {
    SCOPED_TRACE(cut_short ? "file cut short" : "zeros from a sector on");
    TempDir tmp;
    const std::string dir = tmp.Sub("db");
    const Crashed crashed = CrashAfterWrites(dir, kSynced, kUnsynced);
    const std::string path = dir + "/" + NewestLog(dir);
    const uint64_t end = DataEnd(path);
    ASSERT_GT(end, crashed.synced_end + 4096);
    // Lose the unsynced bytes from a point in the middle of them (a sector boundary for
    // zeros, anywhere for a short file).
    uint64_t tear = crashed.synced_end + (end - crashed.synced_end) / 2;
    if (cut_short) {
      fs::resize_file(path, tear + 77);
    } else {
      tear = (tear + 511) / 512 * 512;
      Patch(path, tear, std::vector<char>(end - tear, 0));
    }
    auto opened = WiredTigerStorage::Open(EmbeddedOptions(dir));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    for (int i = 0; i < kSynced; ++i) {
      auto got = (*opened)->Get(kTable, Key(i));
      ASSERT_TRUE(got.ok()) << Key(i) << ": " << got.status().ToString();
    }
    const size_t keys = CountKeys(**opened);
    EXPECT_GE(keys, size_t{kSynced});
    EXPECT_LT(keys, size_t{kSynced + kUnsynced}) << "the tear lost nothing: the test tore nothing";
  }
}

// A crash with no damage: the journal check finds nothing, every key is there.
TEST(JournalTest, CrashWithoutDamageOpensWithEveryKey) {
  TempDir tmp;
  const std::string dir = tmp.Sub("db");
  CrashAfterWrites(dir, 500, 0);
  auto scan = journal::Check(dir);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_TRUE(scan->damage.empty()) << scan->damage.front().Describe();
  EXPECT_GE(scan->records, 500u);
  auto opened = WiredTigerStorage::Open(EmbeddedOptions(dir));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(CountKeys(**opened), 500u);
  // And a repair of a sound store drops nothing.
  opened->reset();
  auto report = WiredTigerStorage::Repair(dir);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->journal_dropped.empty());
  EXPECT_EQ(report->keys_after, 500u);
}

}  // namespace
}  // namespace geokv::storage
