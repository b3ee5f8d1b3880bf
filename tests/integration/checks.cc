#include "tests/integration/checks.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace geokv::integration {

ReplayNote::~ReplayNote() {
  if (!::testing::Test::HasFailure()) return;
  std::string self = "integration_test";
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) self.assign(buf, static_cast<size_t>(n));
  std::printf("[replay] %s %s --gtest_filter='%s'\n", env.c_str(), self.c_str(), filter.c_str());
  std::fflush(stdout);
}

void RegisterWorker(Client& client, int id, int region, uint64_t seed, const std::vector<std::string>& keys,
                    int read_percent, Recorder& rec, const std::atomic<bool>& stop) {
  std::mt19937_64 rng(seed);
  int64_t next_value = 0;
  std::map<size_t, int64_t> seen;  // last value this client observed per key (0: absent)
  while (!stop.load()) {
    const size_t k = static_cast<size_t>(rng() % keys.size());
    const int dice = static_cast<int>(rng() % 100);
    const int64_t value = (static_cast<int64_t>(id) + 1) * 1'000'000'000 + ++next_value;
    Request req;
    if (dice < read_percent) {
      req = Get(keys[k]);
    } else if (dice < read_percent + (100 - read_percent) / 2) {
      req = Put(keys[k], std::to_string(value));
    } else {
      const int64_t expected = seen[k];
      req = Cas(keys[k], expected == 0 ? std::nullopt : std::optional<std::string>(std::to_string(expected)),
                std::to_string(value));
    }
    int64_t observed = 0;
    const Outcome o = rec.Do(client, id, region, req, &observed);
    if (o == Outcome::kOk) {
      seen[k] = observed;
    } else if (o == Outcome::kRefused || o == Outcome::kUnexpected) {
      std::this_thread::sleep_for(milliseconds(50));  // electing: nothing to gain by hammering
    } else if (o == Outcome::kFailedRead) {
      std::this_thread::sleep_for(milliseconds(20));  // refused or timed out: a short pause
    }
    std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(rng() % 5)));
  }
}

std::optional<std::pair<uint64_t, uint64_t>> ShardProgress(const std::vector<std::string>& lines, int shard) {
  const std::string prefix = "shard " + std::to_string(shard) + ": ";
  for (const auto& line : lines) {
    if (line.rfind(prefix, 0) != 0) continue;
    const auto c = line.find("commit="), a = line.find("applied=");
    if (c == std::string::npos || a == std::string::npos) return std::nullopt;
    return std::make_pair(std::stoull(line.substr(c + 7)), std::stoull(line.substr(a + 8)));
  }
  return std::nullopt;
}

// The copy of a history that the non-vacuity check corrupts. A write of unknown outcome may
// take effect at any time after its call, and before Porcupine can call a history illegal it
// must try every order of such writes: minutes for a few dozen on one key (PauseNemesis went
// past its ctest timeout so). Here a write of unknown outcome whose value (written once, on a
// key without add) a definite operation observed took effect before that operation returned,
// and gets the earliest such return as its own; one that nobody observed is left out (as if
// it had not taken effect). Neither changes whether the copy is linearizable, short of a
// failed cas that needs a write nobody observed; the verdict takes milliseconds.
static std::vector<sim::HistoryOp> BoundUnknownWrites(const std::vector<sim::HistoryOp>& history) {
  using KeyValue = std::pair<std::string, int64_t>;
  std::set<std::string> added;        // keys with add: values repeat there
  std::map<KeyValue, int> writes;     // how many operations may have written each value
  std::map<KeyValue, int64_t> seen;   // the earliest return of a definite op that observed it
  for (const auto& op : history) {
    if (op.op == "add") added.insert(op.key);
    if (op.op == "put" || (op.op == "cas" && (op.ok || op.unknown))) writes[{op.key, op.value}]++;
    if (op.unknown) continue;
    std::optional<KeyValue> observed;
    if (op.op == "get") observed = KeyValue{op.key, op.out};
    if (op.op == "cas" && op.ok) observed = KeyValue{op.key, op.arg};
    if (!observed) continue;
    auto [it, fresh] = seen.emplace(*observed, op.return_us);
    if (!fresh) it->second = std::min(it->second, op.return_us);
  }
  std::vector<sim::HistoryOp> out;
  for (const auto& op : history) {
    const bool writes_once = (op.op == "put" || op.op == "cas") && !added.count(op.key) &&
                             writes[{op.key, op.value}] == 1;
    if (!op.unknown || !writes_once) {
      out.push_back(op);
      continue;
    }
    auto it = seen.find({op.key, op.value});
    if (it == seen.end()) continue;
    out.push_back(op);
    out.back().return_us = std::max(op.call_us + 1, it->second);
  }
  return out;
}

void FinalChecks(LocalCluster& cluster, Recorder& rec, const std::vector<std::string>& keys, int shards,
                 const std::string& name, std::string* porcupine_verdict, const std::vector<size_t>& outside) {
  auto is_outside = [&](size_t i) { return std::find(outside.begin(), outside.end(), i) != outside.end(); };
  // Final reads of every key from every region, recorded too: all regions agree.
  std::map<std::string, int64_t> finals;
  for (const std::string& key : keys) {
    std::optional<int64_t> agreed;
    for (size_t region = 0; region < cluster.size(); ++region) {
      if (is_outside(region)) continue;
      auto c = cluster.ClientFor(region, 3000);
      ASSERT_TRUE(c);
      int64_t v = 0;
      Response last;
      if (!WaitFor([&] { return rec.Do(*c, 100 + static_cast<int>(region), static_cast<int>(region), Get(key), &v,
                                       &last) == Outcome::kOk; },
                   seconds(30))) {
        std::string status;
        for (const auto& line : cluster.Status(region)) status += "\n  " + line;
        FAIL() << "region " << region << " could not read " << key << " within 30 s; last answer: "
               << last.status.ToString() << "; node " << region << "'s status:" << status;
      }
      if (!agreed) agreed = v;
      EXPECT_EQ(v, *agreed) << key << " read from region " << region;
    }
    finals[key] = *agreed;
  }
  // A key with an acknowledged write never reads as absent again.
  const auto history = rec.Snapshot();
  for (const auto& op : history) {
    if (op.op != "get" && !op.unknown && (op.op != "cas" || op.ok)) {
      EXPECT_NE(finals[op.key], 0) << op.key << " lost its acknowledged writes";
    }
  }
  for (const auto& u : rec.Unexpected()) ADD_FAILURE() << "unexpected answer: " << u;

  // Linearizable, final reads included (so an acknowledged write that was lost shows up).
  size_t unknown = 0, definite = 0;
  for (const auto& op : history) (op.unknown ? unknown : definite)++;
  std::printf("[%s] %zu definite ops, %zu unknown; finals:", name.c_str(), definite, unknown);
  for (const auto& [k, v] : finals) std::printf(" %s=%lld", k.c_str(), static_cast<long long>(v));
  std::printf("\n");
  std::fflush(stdout);  // on a ctest timeout, what ran before the check shows
  const std::string path = std::string(GEOKV_INTEG_HISTORY_DIR) + "/" + name + "-" + std::to_string(getpid()) + ".json";
  const auto check_start = std::chrono::steady_clock::now();
  const std::string verdict = CheckLinearizable(history, path, 1);
  std::printf("[%s] Porcupine took %lld ms\n", name.c_str(),
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                                              check_start).count()));
  EXPECT_EQ(verdict, "");
  if (porcupine_verdict != nullptr) *porcupine_verdict = verdict;

  // The checker is not vacuous: the history with one final read changed to a value nobody
  // wrote is rejected (in the copy BoundUnknownWrites makes, decided in milliseconds).
  std::vector<sim::HistoryOp> broken = BoundUnknownWrites(history);
  for (auto it = broken.rbegin(); it != broken.rend(); ++it) {
    if (it->op == "get" && it->client >= 100) {
      it->out = -7;  // never written: values and deltas are all positive
      break;
    }
  }
  bool illegal = false;
  const std::string broken_verdict = CheckLinearizable(broken, path + ".broken", 2, &illegal);
  EXPECT_TRUE(illegal) << "Porcupine did not reject a corrupted history: "
                       << (broken_verdict.empty() ? "accepted" : broken_verdict);
  std::remove((path + ".broken").c_str());
  if (verdict.empty()) std::remove(path.c_str());  // a rejected history stays for inspection

  // The restarted replica catches up: every node applies the same prefix of the log.
  std::string last;
  EXPECT_TRUE(WaitFor(
      [&] {
        last.clear();
        bool same = true;
        for (int shard = 0; shard < shards; ++shard) {
          std::optional<std::pair<uint64_t, uint64_t>> first;
          for (size_t i = 0; i < cluster.size(); ++i) {
            if (is_outside(i)) continue;
            auto p = ShardProgress(cluster.Status(i), shard);
            if (!p) return false;
            last += " shard" + std::to_string(shard) + "/node" + std::to_string(i) + ":commit=" +
                    std::to_string(p->first) + ",applied=" + std::to_string(p->second);
            if (!first) first = p;
            if (p->second != first->second || p->second != p->first) same = false;
          }
        }
        return same;
      },
      seconds(30), milliseconds(200)))
      << "replicas did not converge:" << last;
}

void EventualWorker(Client& client, int node, const EventualKeys& keys, EventualTally& tally,
                    const std::atomic<bool>& stop) {
  // Whether `r` may have taken effect; an answer that is neither is reported.
  auto note = [&](const Response& r, const char* what, const std::function<void(bool acked)>& took_effect) {
    if (r.status.ok()) {
      took_effect(true);
      tally.acked_by_node[node]++;
    } else if (r.status.code() == Code::kTimeout) {
      took_effect(false);
    } else if (r.status.code() != Code::kUnavailable && r.status.code() != Code::kBusy) {
      tally.unexpected.push_back(std::string(what) + " at node " + std::to_string(node) + ": " + r.status.ToString());
    }
  };
  for (int i = 0; !stop.load(); ++i) {
    const int64_t delta = 1 + i % 5;
    const std::string element = "n" + std::to_string(node) + "-" + std::to_string(i);
    const Response add = client.Call(Add(keys.counter, delta));
    const Response sadd = client.Call(SetAdd(keys.set, element));
    std::optional<Response> put;
    std::string lww_key;
    if (!keys.lww.empty()) {
      lww_key = keys.lww[static_cast<size_t>(i) % keys.lww.size()];
      put = client.Call(Put(lww_key, element));
    }
    {
      std::lock_guard lock(tally.mu);
      note(add, "counter add", [&](bool acked) {
        (acked ? tally.acked : tally.unknown) += delta;
        if (acked && add.served_by != kNoRedirect) tally.acked_served_by[add.served_by] += delta;
      });
      note(sadd, "set add", [&](bool acked) {
        (acked ? tally.acked_elements : tally.unknown_elements).insert(element);
        if (acked && sadd.served_by != kNoRedirect) tally.elements_served_by[sadd.served_by].insert(element);
      });
      if (put) note(*put, "lww put", [&](bool) { tally.lww_sent[lww_key].insert(element); });
    }
    std::this_thread::sleep_for(milliseconds(25));
  }
}

void ServedByALostNode(EventualTally& tally, uint32_t node) {
  std::lock_guard lock(tally.mu);
  const int64_t delta = tally.acked_served_by[node];
  tally.acked -= delta;
  tally.unknown += delta;
  for (const auto& e : tally.elements_served_by[node]) {
    if (tally.acked_elements.erase(e) != 0) tally.unknown_elements.insert(e);
  }
  tally.acked_served_by.erase(node);
  tally.elements_served_by.erase(node);
}

void ExpectEventualConverged(LocalCluster& cluster, const EventualKeys& keys, EventualTally& tally,
                             const std::string& name, const std::vector<size_t>& outside) {
  std::lock_guard lock(tally.mu);
  for (const auto& u : tally.unexpected) ADD_FAILURE() << "unexpected eventual answer: " << u;
  size_t lww_values = 0;
  for (const auto& [key, values] : tally.lww_sent) lww_values += values.size();
  std::printf("[%s] counter: %lld acknowledged, %lld unknown; set: %zu acknowledged, %zu unknown; lww: %zu values\n",
              name.c_str(), static_cast<long long>(tally.acked), static_cast<long long>(tally.unknown),
              tally.acked_elements.size(), tally.unknown_elements.size(), lww_values);
  std::optional<int64_t> counter0;
  std::optional<std::set<std::string>> set0;
  std::map<std::string, std::string> lww0;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (std::find(outside.begin(), outside.end(), i) != outside.end()) continue;
    auto c = cluster.ClientFor(i, 3000);
    ASSERT_TRUE(c);
    std::optional<int64_t> counter;
    std::optional<std::set<std::string>> set;
    std::map<std::string, std::string> lww;
    const bool converged = WaitFor(
        [&] {
          counter = ReadCounter(*c, keys.counter);
          set = ReadSet(*c, keys.set);
          if (!counter || !set) return false;
          lww.clear();
          for (const auto& key : keys.lww) {
            const Response r = c->Call(Get(key));
            if (!r.status.ok()) return false;
            if (tally.lww_sent[key].count(r.value) == 0) return false;
            lww[key] = r.value;
          }
          if (counter0 && (counter != counter0 || set != set0 || lww != lww0)) return false;
          if (*counter < tally.acked || *counter > tally.acked + tally.unknown) return false;
          for (const auto& e : tally.acked_elements) {
            if (set->count(e) == 0) return false;
          }
          for (const auto& e : *set) {
            if (tally.acked_elements.count(e) == 0 && tally.unknown_elements.count(e) == 0) return false;
          }
          return true;
        },
        seconds(60), milliseconds(200));
    EXPECT_TRUE(converged) << "node " << i << ": counter " << counter.value_or(-1) << " (acknowledged " << tally.acked
                           << ", unknown " << tally.unknown << "), set of "
                           << (set ? static_cast<int64_t>(set->size()) : -1) << " elements ("
                           << tally.acked_elements.size() << " acknowledged)";
    if (!counter0) {
      counter0 = counter;
      set0 = set;
      lww0 = lww;
    }
  }
}

}  // namespace geokv::integration
