// What the nemesis tests (failover, pause, clock skew) share: the worker-thread holder and
// the checks run once the workers stopped.
//
// Thread-safety: FinalChecks runs on the test thread, after Workers::Join.
#ifndef GEOKV_TESTS_INTEGRATION_CHECKS_H_
#define GEOKV_TESTS_INTEGRATION_CHECKS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {

// Stops and joins the worker threads on every exit path of the test.
struct Workers {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  ~Workers() { Join(); }
  void Join() {
    stop = true;
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

// On a failing test, prints on destruction how to rerun it: `env` (for example
// "GEOKV_INTEG_SEED=42") before this test binary with --gtest_filter=`filter`. Declare it
// before the cluster so the line comes after the nodes' log tails.
struct ReplayNote {
  std::string filter;
  std::string env;
  ~ReplayNote();
};

// One client's loop of put / cas / get on strong `keys` through `client` until `stop`, all
// recorded in `rec` as client `id` of `region`. No add: every value written is unique
// ((id + 1) * 10^9 + counter), so a read names the write it saw. `read_percent` of the
// calls are gets; a cas expects the value this client saw last. After a refusal it backs
// off a little; after a timeout it sends the next call at once (a client of a stopped node
// keeps a request queued there).
void RegisterWorker(Client& client, int id, int region, uint64_t seed, const std::vector<std::string>& keys,
                    int read_percent, Recorder& rec, const std::atomic<bool>& stop);

// "shard 0: leader=1 (this node) commit=12 applied=12" -> {commit, applied}.
std::optional<std::pair<uint64_t, uint64_t>> ShardProgress(const std::vector<std::string>& lines, int shard);

// After the workers stopped: final reads of every key from every region (recorded as
// clients 100 + region, so a lost acknowledged write shows up in the history), agreement
// between regions, no key with an acknowledged write reads absent, no unexpected answer,
// Porcupine on the whole history (and a check that it rejects a corrupted copy), and every
// replica of every shard caught up. Failures are reported through gtest; the Porcupine
// verdict ("" = linearizable) goes to *porcupine_verdict when given. A rejected history
// is kept under GEOKV_INTEG_HISTORY_DIR as <name>-<pid>.json. Nodes in `outside` (e.g. one
// whose data directory was lost, which its peers ignore) are neither read nor waited for.
void FinalChecks(LocalCluster& cluster, Recorder& rec, const std::vector<std::string>& keys, int shards,
                 const std::string& name, std::string* porcupine_verdict = nullptr,
                 const std::vector<size_t>& outside = {});

// Eventual-mode traffic next to the strong one: increments of one counter, fresh elements of
// one set and values of lww keys, each acknowledged, unknown (timed out: it may still land)
// or refused (nothing happened).
struct EventualKeys {
  std::string counter;
  std::string set;
  std::vector<std::string> lww;  // may be empty
};
struct EventualTally {
  std::mutex mu;
  int64_t acked = 0, unknown = 0;
  std::set<std::string> acked_elements, unknown_elements;
  std::map<std::string, std::set<std::string>> lww_sent;  // per key: values acknowledged or unknown
  std::map<int, size_t> acked_by_node;                     // acknowledged calls per node
  std::vector<std::string> unexpected;                     // answers that are none of the three
  // Acknowledged counter deltas and set elements per node that served them
  // (Response::served_by: the node of the client's region holding the keys' shard, which
  // the client's node may have proxied them to); durable there when acknowledged.
  std::map<uint32_t, int64_t> acked_served_by;
  std::map<uint32_t, std::set<std::string>> elements_served_by;
};

// Node `node` died with its disk: what it served and acknowledged may never have left it,
// so it counts as unknown (it may have reached the others, or not).
void ServedByALostNode(EventualTally& tally, uint32_t node);

// One client's loop of counter add, set add and lww put (keys in turn) through `client`
// (node `node`) until `stop`, tallied in `tally`.
void EventualWorker(Client& client, int node, const EventualKeys& keys, EventualTally& tally,
                    const std::atomic<bool>& stop);

// After the workers stopped: no unexpected answer, and every node but those in `outside`
// converges (within 60 s) to one state: the counter between the acknowledged sum and that
// plus the unknown one, every acknowledged element and no element never sent, the same lww
// values, each one that was sent. Prints the tally as "[name] ...".
void ExpectEventualConverged(LocalCluster& cluster, const EventualKeys& keys, EventualTally& tally,
                             const std::string& name, const std::vector<size_t>& outside = {});

}  // namespace geokv::integration

#endif  // GEOKV_TESTS_INTEGRATION_CHECKS_H_
