// Pause nemesis: SIGSTOP the geokvd that leads the strong shard (and, in other rounds, a
// follower) for several seconds, far longer than the lease and the election timeout, while
// clients in every region keep doing put / get / cas with short timeouts; then SIGCONT it.
// Requests sent to a stopped node queue in its sockets and are served the moment it
// resumes. A leader that trusts the lease it held before the pause answers the reads among
// them with the value it held then, although the other regions elected a new leader and
// acknowledged newer writes meanwhile: the read was sent after those writes were
// acknowledged, so the history is not linearizable. Porcupine judges the whole history;
// a stale read is also spelled out (which read, which acknowledged write it missed, after
// which pause). Nothing acknowledged may be lost, every replica catches up, and every
// node stays up (a pause is no crash).
//
// Seed: GEOKV_INTEG_SEED (printed; it fixes the nemesis schedule and the clients' choices,
// not the processes' scheduling). Rounds: GEOKV_INTEG_PAUSE_ROUNDS (default 6: leader,
// follower, leader, leader, follower, leader), for longer soaks.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/checks.h"
#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {
namespace {

constexpr int kKeys = 3;
// Short: a client of a stopped node gives up quickly and sends its next call, so a request
// is always queued there when the node resumes.
constexpr int64_t kClientTimeoutMs = 1000;
constexpr int kMixedWorkersPerRegion = 2;  // 40% reads
constexpr int kReadersPerRegion = 1;       // 90% reads: reads queued at every SIGCONT
constexpr int64_t kPauseMinMs = 3000, kPauseMaxMs = 8000;
// Probes: gets sent to the stopped node shortly before its SIGCONT, each from its own
// client connected (and handshaken) before the pause, so that several reads sent after the
// other regions acknowledged newer writes wait at the node when it resumes.
constexpr int kProbesPerNode = 8;
constexpr int64_t kProbeTimeoutMs = 3000;
constexpr int64_t kProbeLeadMs = 300;
constexpr int kFinalReadClients = 100;  // FinalChecks reads as clients 100 + region
constexpr int kProbeClients = 1000;     // probes: 1000 + 100 * round + 10 * node + j
// Rounds stop the leader except every third one (L F L L F L ...): a stale read needs the
// resumed leader to serve a queued read before it hears of the new leader, a race it wins
// in about a third of the leader rounds on an engine that trusts a cached lease.
constexpr int kDefaultRounds = 6;

struct PauseRound {
  int round = 0;
  int node = -1;
  bool leader = false;
  int64_t pause_ms = 0;
  int64_t stop_us = 0;  // recorder time of the SIGSTOP
  int64_t cont_us = 0;  // recorder time of the SIGCONT
  size_t acked_by_others = 0;  // writes acknowledged by the other regions while it was stopped
  std::map<std::string, int> probe_answers;  // status code name -> how many probes got it
};

uint64_t SeedFromEnv() {
  const char* env = std::getenv("GEOKV_INTEG_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : static_cast<uint64_t>(std::random_device{}()) % 100000;
}

int RoundsFromEnv() {
  const char* env = std::getenv("GEOKV_INTEG_PAUSE_ROUNDS");
  const int n = env != nullptr ? std::atoi(env) : kDefaultRounds;
  return std::clamp(n, 1, 100);
}

std::string Seconds(int64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(us) / 1e6);
  return buf;
}

// The pause after which a call returned (-1: before the first SIGCONT).
int RoundBefore(const std::vector<PauseRound>& rounds, int64_t t_us) {
  int r = -1;
  for (const auto& p : rounds) {
    if (p.cont_us != 0 && p.cont_us <= t_us) r = p.round;
  }
  return r;
}

// Reads that are certainly stale, whatever the linearization: get(k) returned v although a
// write of another value w was acknowledged before the get was sent, and the write of v had
// been acknowledged before the write of w was sent (or nothing was written yet: v = 0). Values
// are unique (no add), so v names its write. A sufficient condition only; Porcupine is the
// judge. One line per stale read, with the pause it followed.
std::vector<std::string> ExplainStaleReads(const std::vector<sim::HistoryOp>& history,
                                           const std::vector<PauseRound>& rounds, const LocalCluster& cluster) {
  std::map<std::string, std::vector<const sim::HistoryOp*>> definite_writes;  // by key
  std::map<std::pair<std::string, int64_t>, const sim::HistoryOp*> writer;    // (key, value) -> write
  for (const auto& op : history) {
    const bool writes = op.op == "put" || (op.op == "cas" && (op.ok || op.unknown));
    if (!writes) continue;
    writer[{op.key, op.value}] = &op;
    if (!op.unknown) definite_writes[op.key].push_back(&op);
  }
  std::vector<std::string> out;
  for (const auto& r : history) {
    if (r.op != "get" || r.unknown) continue;
    const sim::HistoryOp* v_write = nullptr;
    if (r.out != 0) {
      auto it = writer.find({r.key, r.out});
      if (it == writer.end() || it->second->unknown) continue;  // cannot prove anything
      v_write = it->second;
    }
    const sim::HistoryOp* missed = nullptr;  // the latest acknowledged overwrite before the read
    for (const sim::HistoryOp* w : definite_writes[r.key]) {
      if (w->value == r.out || w->return_us >= r.call_us) continue;
      if (v_write != nullptr && w->call_us <= v_write->return_us) continue;
      if (missed == nullptr || w->return_us > missed->return_us) missed = w;
    }
    if (missed == nullptr) continue;
    const int round = RoundBefore(rounds, r.return_us);
    std::string line = "stale read: client " + std::to_string(r.client) + " of " + cluster.region(r.region) +
                       " (node " + std::to_string(r.region) + ") get(" + r.key + ") sent at " + Seconds(r.call_us) +
                       ", answered at " + Seconds(r.return_us) + " -> " + std::to_string(r.out);
    line += v_write != nullptr ? " (written by client " + std::to_string(v_write->client) + ", acknowledged at " +
                                     Seconds(v_write->return_us) + ")"
                               : " (absent)";
    line += "; but " + missed->op + "(" + r.key + ", " + std::to_string(missed->value) + ") by client " +
            std::to_string(missed->client) + " of " + cluster.region(missed->region) + " was acknowledged at " +
            Seconds(missed->return_us) + ", before the get was sent";
    if (round >= 0) {
      const PauseRound& p = rounds[static_cast<size_t>(round)];
      line += "; answered " + std::to_string((r.return_us - p.cont_us) / 1000) + " ms after round " +
              std::to_string(round) + "'s SIGCONT of node " + std::to_string(p.node) +
              (p.leader ? " (the leader)" : " (a follower)");
    }
    out.push_back(line);
  }
  return out;
}

// Per round: reads and writes sent to the stopped node while it was stopped that were
// answered (definitely) after its SIGCONT. They are what a stale lease would answer wrongly;
// a round without any did not exercise that path.
void PrintQueuedAnswers(const std::vector<sim::HistoryOp>& history, const std::vector<PauseRound>& rounds) {
  for (const auto& p : rounds) {
    size_t reads = 0, writes = 0;
    for (const auto& op : history) {
      if (op.region != p.node || op.unknown) continue;
      if (op.client >= kFinalReadClients && op.client < kProbeClients) continue;
      if (op.call_us < p.stop_us || op.call_us >= p.cont_us || op.return_us < p.cont_us) continue;
      (op.op == "get" ? reads : writes)++;
    }
    std::string probes;
    for (const auto& [answer, n] : p.probe_answers) probes += " " + std::to_string(n) + "x " + answer + ";";
    std::printf("[pause] round %d (node %d, %s): %zu reads and %zu writes sent while it was stopped were answered "
                "after SIGCONT; probes:%s\n",
                p.round, p.node, p.leader ? "leader" : "follower", reads, writes, probes.c_str());
  }
}

TEST(PauseNemesis, StopLeaderOrFollowerStrongKeysStayLinearizable) {
  const uint64_t seed = SeedFromEnv();
  const int rounds_n = RoundsFromEnv();
  std::printf("[pause] seed %llu, %d rounds (GEOKV_INTEG_SEED=%llu GEOKV_INTEG_PAUSE_ROUNDS=%d replays this schedule)\n",
              static_cast<unsigned long long>(seed), rounds_n, static_cast<unsigned long long>(seed), rounds_n);
  std::mt19937_64 rng(seed);
  const ReplayNote replay{"PauseNemesis.*", "GEOKV_INTEG_SEED=" + std::to_string(seed) +
                                                " GEOKV_INTEG_PAUSE_ROUNDS=" + std::to_string(rounds_n)};

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;  // 3 regions, one strong shard led from the first region when healthy
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  {
    auto c = cluster.ClientFor(0, 3000);
    ASSERT_TRUE(c);
    ASSERT_TRUE(WaitFor([&] { return c->Call(Put("warm/up", "1")).status.ok(); }, seconds(60), milliseconds(200)))
        << "no strong write committed after startup";
  }

  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back("pause/" + std::to_string(k));
  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  int id = 0;
  for (size_t region = 0; region < cluster.size(); ++region) {
    for (int w = 0; w < kMixedWorkersPerRegion + kReadersPerRegion; ++w, ++id) {
      // Bound to its region's node: a client of a stopped node waits for that node.
      clients.push_back(cluster.ClientFor(region, kClientTimeoutMs));
      ASSERT_TRUE(clients.back());
      const int read_percent = w < kMixedWorkersPerRegion ? 40 : 90;
      workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), id, static_cast<int>(region),
                                   seed * 100 + static_cast<uint64_t>(id), std::cref(keys), read_percent,
                                   std::ref(rec), std::cref(workers.stop));
    }
  }

  // Probe clients, connected before any pause (a status call completes the handshake).
  std::vector<std::vector<std::unique_ptr<Client>>> probes(cluster.size());
  for (size_t node = 0; node < cluster.size(); ++node) {
    for (int j = 0; j < kProbesPerNode; ++j) {
      probes[node].push_back(cluster.ClientFor(node, kProbeTimeoutMs));
      ASSERT_TRUE(probes[node].back());
      Request status;
      status.op = Op::kStatus;
      ASSERT_TRUE(probes[node].back()->Call(status).status.ok()) << "probe client of node " << node;
    }
  }

  // Every node stays up: a pause is no crash. Checked at every step that waits on the
  // cluster, so a node that died ends the test at once with how it ended.
  const auto all_running = [&] {
    for (size_t i = 0; i < cluster.size(); ++i) {
      if (!cluster.running(i)) return false;
    }
    return true;
  };
  const auto expect_all_running = [&](int round, const std::string& when) {
    bool ok = true;
    for (size_t i = 0; i < cluster.size(); ++i) {
      if (cluster.running(i)) continue;
      ok = false;
      ADD_FAILURE() << "round " << round << ": node " << i << " (" << cluster.region(i) << ") "
                    << cluster.DescribeExit(i) << " " << when << "; seed " << seed;
    }
    return ok;
  };

  std::vector<PauseRound> rounds;
  for (int round = 0; round < rounds_n; ++round) {
    // The cluster serves (and a resumed node has settled) before the next pause.
    const int64_t before = rec.NowUs();
    WaitFor([&] { return !all_running() || rec.AckedWritesSince(before) >= 20; }, seconds(60));
    if (!expect_all_running(round, "before the pause")) return;
    ASSERT_GE(rec.AckedWritesSince(before), 20u)
        << "round " << round << ": the cluster acknowledged only " << rec.AckedWritesSince(before)
        << " writes; seed " << seed;
    int leader = -1;
    ASSERT_TRUE(WaitFor([&] { return (leader = cluster.FindLeader(0)) >= 0; }, seconds(30)))
        << "round " << round << ": no node leads shard 0; seed " << seed;

    PauseRound p;
    p.round = round;
    p.leader = round % 3 != 1;
    p.node = leader;
    if (!p.leader) p.node = (leader + 1 + static_cast<int>(rng() % (cluster.size() - 1))) % static_cast<int>(cluster.size());
    p.pause_ms = kPauseMinMs + static_cast<int64_t>(rng() % static_cast<uint64_t>(kPauseMaxMs - kPauseMinMs + 1));
    const size_t node = static_cast<size_t>(p.node);

    cluster.PauseNode(node);
    p.stop_us = rec.NowUs();
    std::printf("[pause] %s: round %d: SIGSTOP node %d (%s, %s) for %lld ms\n", Seconds(p.stop_us).c_str(), round,
                p.node, cluster.region(node).c_str(), p.leader ? "leader of shard 0" : "follower",
                static_cast<long long>(p.pause_ms));
    std::this_thread::sleep_for(milliseconds(p.pause_ms - kProbeLeadMs));
    // The two other regions are a majority: they keep acknowledging writes (when the leader
    // stopped, under a new leader). Keep the node stopped until they have, so that the reads
    // queued at it have something newer to miss.
    const auto others = [&] { return rec.AckedWritesSince(p.stop_us) - rec.AckedWritesSince(p.stop_us, p.node); };
    const bool progressed = WaitFor([&] { return !all_running() || others() >= 10; }, seconds(30)) && all_running();
    p.acked_by_others = others();
    {
      std::vector<Response> answers(kProbesPerNode);
      Workers probe_threads;  // joined on every exit path (each call ends by its timeout)
      for (int j = 0; j < kProbesPerNode; ++j) {
        const int client_id = kProbeClients + 100 * round + 10 * p.node + j;
        Client& c = *probes[node][static_cast<size_t>(j)];
        const std::string& key = keys[static_cast<size_t>(j) % keys.size()];
        Response* answer = &answers[static_cast<size_t>(j)];
        probe_threads.threads.emplace_back(
            [&rec, &c, client_id, node = p.node, key, answer] { rec.Do(c, client_id, node, Get(key), nullptr, answer); });
      }
      std::this_thread::sleep_for(milliseconds(kProbeLeadMs));
      cluster.ResumeNode(node);
      p.cont_us = rec.NowUs();
      probe_threads.Join();
      for (const auto& a : answers) p.probe_answers[a.status.ok() ? "OK" : a.status.ToString().substr(0, 60)]++;
    }
    rounds.push_back(p);
    std::printf("[pause] %s: round %d: SIGCONT node %d; the other regions acknowledged %zu writes meanwhile\n",
                Seconds(p.cont_us).c_str(), round, p.node, p.acked_by_others);
    EXPECT_TRUE(progressed || !all_running()) << "round " << round << ": with node " << p.node
                            << " stopped the other two regions acknowledged only " << p.acked_by_others
                            << " writes; seed " << seed;

    // The resumed node serves its region again.
    WaitFor([&] { return !all_running() || rec.AckedWritesSince(p.cont_us, p.node) >= 3; }, seconds(60));
    if (!expect_all_running(round, "during the pause or after the SIGCONT of node " + std::to_string(p.node))) return;
    ASSERT_GE(rec.AckedWritesSince(p.cont_us, p.node), 3u)
        << "round " << round << ": after SIGCONT node " << p.node << " acknowledged only "
        << rec.AckedWritesSince(p.cont_us, p.node) << " writes of its region; seed " << seed;
  }
  const int64_t calm = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(calm) >= 20; }, seconds(60)))
      << "after the pauses the cluster acknowledged only " << rec.AckedWritesSince(calm) << " writes; seed " << seed;
  workers.Join();

  std::string verdict;
  FinalChecks(cluster, rec, keys, 1, "pause", &verdict);
  PrintQueuedAnswers(rec.Snapshot(), rounds);
  const auto stale = ExplainStaleReads(rec.Snapshot(), rounds, cluster);
  for (const auto& line : stale) std::printf("[pause] %s\n", line.c_str());
  std::printf("[pause] %zu certainly stale reads; Porcupine: %s\n", stale.size(),
              verdict.empty() ? "linearizable" : verdict.c_str());
  EXPECT_TRUE(stale.empty()) << stale.size() << " stale reads (first: " << stale.front() << ")";
}

}  // namespace
}  // namespace geokv::integration
