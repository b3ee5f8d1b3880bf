// Nodes whose clocks disagree by seconds (0, +7 s, -5 s), as machines in different regions
// do. LWW keys: a chain of writes from every region in turn, each written by a region that
// has already read the previous one (so it happened after it, causally and in real time),
// covering every ordered pair of regions; after each write every region must read exactly
// that write (the last acknowledged one), never an older one that carries a stamp from a
// clock running ahead. Meanwhile clients in every region do put / get / cas on strong keys,
// and their history must stay linearizable (leases use each node's monotonic clock, which
// an offset must not disturb).
//
// Two ways to shift the clocks:
//   - WallOffsetConfig: [wan] clock_offset_ms (TEST ONLY) shifts each geokvd's wall clock;
//   - Libfaketime: libfaketime (Debian's `faketime` package) shifts each process's wall
//     and monotonic clocks, as on machines that booted at different times; skipped when
//     the library is not installed.
// Seed: GEOKV_INTEG_SEED (the strong clients' choices).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "tests/integration/checks.h"
#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {
namespace {

constexpr int kStrongKeys = 2;
constexpr int kStrongWorkersPerRegion = 1;
// Writers of the LWW chain, by region index: every ordered pair of the three regions
// (1->2, 2->0, 0->2, 2->1, 1->0, 0->1), so the region whose clock is ahead writes both
// before and after the one whose clock is behind.
const std::vector<size_t> kWriterChain = {1, 2, 0, 2, 1, 0, 1};
constexpr auto kStepDeadline = seconds(10);

std::string Describe(const std::map<size_t, std::string>& reads, const LocalCluster& cluster) {
  std::string out;
  for (const auto& [region, value] : reads) {
    out += (out.empty() ? "" : ", ") + cluster.region(region) + " reads " + value;
  }
  return out;
}

// What every region reads for `key` ("<absent>", "<error: ...>").
std::map<size_t, std::string> ReadEverywhere(LocalCluster& cluster, const std::string& key) {
  std::map<size_t, std::string> out;
  for (size_t i = 0; i < cluster.size(); ++i) {
    auto c = cluster.ClientFor(i, 2000);
    if (!c) continue;
    Response r = c->Call(Get(key));
    out[i] = r.status.ok() ? r.value : r.status.IsNotFound() ? "<absent>" : "<error: " + r.status.ToString() + ">";
  }
  return out;
}

bool AllRead(const std::map<size_t, std::string>& reads, const std::string& value) {
  for (const auto& [region, v] : reads) {
    if (v != value) return false;
  }
  return true;
}

bool AllAgree(const std::map<size_t, std::string>& reads) {
  return !reads.empty() && AllRead(reads, reads.begin()->second) && reads.begin()->second.rfind("<error", 0) != 0;
}

// Runs the LWW chain on `key`; returns one line per step that went wrong.
std::vector<std::string> LwwChain(LocalCluster& cluster, const std::vector<int64_t>& offsets_ms,
                                  const std::string& key, const std::string& tag) {
  std::vector<std::string> failures;
  std::string previous;  // the last write every region read ("" before the first)
  for (size_t step = 0; step < kWriterChain.size(); ++step) {
    const size_t writer = kWriterChain[step];
    auto c = cluster.ClientFor(writer, 3000);
    if (!c) {
      failures.push_back("step " + std::to_string(step) + ": no client");
      continue;
    }
    // The writer has read the previous write: its own write comes after it causally.
    if (!previous.empty() && !WaitFor([&] {
          Response r = c->Call(Get(key));
          return r.status.ok() && r.value == previous;
        }, kStepDeadline)) {
      failures.push_back("step " + std::to_string(step) + ": " + cluster.region(writer) + " never read " + previous);
    }
    const std::string value = "v" + std::to_string(step) + "-" + cluster.region(writer);
    const Response put = CallUntilAccepted(*c, Put(key, value), seconds(20));
    const std::string who = cluster.region(writer) + " (clock " + (offsets_ms[writer] >= 0 ? "+" : "") +
                            std::to_string(offsets_ms[writer]) + " ms)";
    if (!put.status.ok()) {
      failures.push_back("step " + std::to_string(step) + ": put " + key + "=" + value + " from " + who + " -> " +
                         put.status.ToString());
      continue;
    }
    std::map<size_t, std::string> reads;
    const bool converged = WaitFor([&] { return AllRead(reads = ReadEverywhere(cluster, key), value); },
                                   kStepDeadline, milliseconds(50));
    std::printf("[clock/%s] step %zu: put %s=%s from %s acknowledged; %s\n", tag.c_str(), step, key.c_str(),
                value.c_str(), who.c_str(), converged ? "every region reads it" : Describe(reads, cluster).c_str());
    if (converged) {
      previous = value;
      continue;
    }
    failures.push_back("step " + std::to_string(step) + ": put " + key + "=" + value + " from " + who +
                       " was acknowledged after every region had read " +
                       (previous.empty() ? std::string("nothing") : previous) + ", yet " +
                       std::to_string(kStepDeadline.count()) + " s later: " + Describe(reads, cluster));
    // Go on from whatever the regions agree on (if they do), to see the other pairs too.
    WaitFor([&] { return AllAgree(reads = ReadEverywhere(cluster, key)); }, kStepDeadline, milliseconds(100));
    if (!AllAgree(reads)) {
      failures.push_back("step " + std::to_string(step) + ": the regions do not converge: " + Describe(reads, cluster));
    }
    const std::string agreed = reads.empty() ? "" : reads.begin()->second;
    previous = AllAgree(reads) && agreed != "<absent>" ? agreed : "";
  }
  return failures;
}

void RunClockSkew(ClusterOptions options, const std::vector<int64_t>& offsets_ms, const std::string& tag) {
  const char* seed_env = std::getenv("GEOKV_INTEG_SEED");
  const uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                            : static_cast<uint64_t>(std::random_device{}()) % 100000;
  std::printf("[clock/%s] seed %llu; clock offsets", tag.c_str(), static_cast<unsigned long long>(seed));
  for (size_t i = 0; i < offsets_ms.size(); ++i) {
    std::printf(" %s=%+lld ms", options.regions[i].c_str(), static_cast<long long>(offsets_ms[i]));
  }
  std::printf("\n");
  const ReplayNote replay{"ClockSkew.*", "GEOKV_INTEG_SEED=" + std::to_string(seed)};

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  {
    auto c = cluster.ClientFor(0, 3000);
    ASSERT_TRUE(c);
    ASSERT_TRUE(WaitFor([&] { return c->Call(Put("warm/up", "1")).status.ok(); }, seconds(60), milliseconds(200)))
        << "no strong write committed after startup";
  }

  std::vector<std::string> strong_keys;
  for (int k = 0; k < kStrongKeys; ++k) strong_keys.push_back("skew/" + std::to_string(k));
  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  int id = 0;
  for (size_t region = 0; region < cluster.size(); ++region) {
    for (int w = 0; w < kStrongWorkersPerRegion; ++w, ++id) {
      clients.push_back(cluster.ClientFor(region, 1000));
      ASSERT_TRUE(clients.back());
      workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), id, static_cast<int>(region),
                                   seed * 100 + static_cast<uint64_t>(id), std::cref(strong_keys), 50, std::ref(rec),
                                   std::cref(workers.stop));
    }
  }

  const auto failures = LwwChain(cluster, offsets_ms, "lww/chain", tag);
  for (const auto& f : failures) ADD_FAILURE() << "LWW: " << f;

  const int64_t calm = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(calm) >= 20; }, seconds(60)))
      << "the cluster acknowledged only " << rec.AckedWritesSince(calm) << " strong writes";
  workers.Join();
  FinalChecks(cluster, rec, strong_keys, 1, "clock-" + tag);
}

TEST(ClockSkew, WallOffsetConfigLwwLastWriteWinsStrongLinearizable) {
  ClusterOptions options;
  options.clock_offset_ms = {0, 7000, -5000};
  RunClockSkew(options, options.clock_offset_ms, "config");
}

TEST(ClockSkew, LibfaketimeLwwLastWriteWinsStrongLinearizable) {
  if (FaketimeLibrary().empty()) {
    GTEST_SKIP() << "libfaketime not installed (Debian package faketime; or set GEOKV_INTEG_LIBFAKETIME)";
  }
  ClusterOptions options;
  options.faketime = {"+0s", "+7s", "-5s"};
  RunClockSkew(options, {0, 7000, -5000}, "faketime");
}

}  // namespace
}  // namespace geokv::integration
