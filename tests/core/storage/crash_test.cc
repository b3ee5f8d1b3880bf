// Durability under kill -9: a child process writes keys and reports each one once Write has
// acknowledged it; the parent kills the child with SIGKILL at a random moment, reopens the
// store and checks that every acknowledged key is there with its value.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/storage/wiredtiger_storage.h"
#include "tests/testing/temp_dir.h"

namespace geokv::storage {
namespace {

std::string ValueFor(int round, uint32_t i) {
  return "value-" + std::to_string(round) + "-" + std::to_string(i) + std::string(i % 97, 'x');
}

// Runs in the child: writes until killed, reporting each acknowledged index on `fd`.
[[noreturn]] void Writer(const std::string& dir, int round, Durability durability, int fd) {
  auto opened = WiredTigerStorage::Open({.dir = dir});
  if (!opened.ok()) _exit(2);
  auto& store = *opened.value();
  for (uint32_t i = 0;; ++i) {
    // Several writers would group-commit; one writer per process keeps the order simple.
    Status s = store.Put("crash", std::to_string(round) + "/" + std::to_string(i), ValueFor(round, i),
                         durability);
    if (!s.ok()) _exit(3);
    if (write(fd, &i, sizeof i) != sizeof i) _exit(4);
  }
}

uint64_t Seed() {
  if (const char* env = std::getenv("GEOKV_SEED")) return std::strtoull(env, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

void RunRounds(Durability durability, int rounds) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("GEOKV_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  testing::TempDir dir;
  uint64_t acknowledged_total = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Writer(dir.path(), round, durability, fds[1]);
    }
    close(fds[1]);
    // Wait for the first acknowledgement, then kill at a random moment after it.
    uint32_t index = 0;
    std::vector<uint32_t> acked;
    ASSERT_EQ(read(fds[0], &index, sizeof index), static_cast<ssize_t>(sizeof index))
        << "child wrote nothing (round " << round << ")";
    acked.push_back(index);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 150000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    while (read(fds[0], &index, sizeof index) == static_cast<ssize_t>(sizeof index)) acked.push_back(index);
    close(fds[0]);

    auto reopened = WiredTigerStorage::Open({.dir = dir.path()});
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    for (uint32_t i : acked) {
      auto got = reopened.value()->Get("crash", std::to_string(round) + "/" + std::to_string(i));
      ASSERT_TRUE(got.ok()) << "acknowledged key " << round << "/" << i << " lost: " << got.status().ToString();
      ASSERT_EQ(*got, ValueFor(round, i));
    }
    acknowledged_total += acked.size();
  }
  std::printf("%s: %d rounds, %llu acknowledged writes, all present after kill -9\n",
              std::string(DurabilityName(durability)).c_str(), rounds,
              static_cast<unsigned long long>(acknowledged_total));
}

TEST(CrashTest, SyncWritesSurviveKill9) { RunRounds(Durability::kSync, 20); }

TEST(CrashTest, WriteDurabilitySurvivesKill9) { RunRounds(Durability::kWrite, 10); }

}  // namespace
}  // namespace geokv::storage
