// Recording client histories of strong keys for Porcupine (tests/porcupine), from real
// clients talking to real geokvd processes.
//
// Conventions (the checker's model: int64 registers, absent = 0):
//   - values are positive decimal integers (never 0, so "absent" and 0 never mix);
//   - a write answered kTimeout, or not answered, has an unknown outcome: it is recorded
//     with unknown = true and no return time (it may take effect at any later point);
//   - kUnavailable / kBusy are refusals before anything took effect: not recorded;
//   - cas answered kConflict is a definite "not swapped";
//   - a read that failed is not recorded.
//
// Thread-safety: Recorder methods may be called from several threads.
#ifndef GEOKV_TESTS_INTEGRATION_HISTORY_H_
#define GEOKV_TESTS_INTEGRATION_HISTORY_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/server/client.h"
#include "core/sim/paxos_cluster.h"

namespace geokv::integration {

// What became of one call.
enum class Outcome { kOk, kRefused, kUnknown, kFailedRead, kUnexpected };

class Recorder {
 public:
  Recorder() : start_(std::chrono::steady_clock::now()) {}

  int64_t NowUs() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count();
  }

  // Performs `request` (kPut, kGet, kCas, kAdd on a strong key) through `client` and
  // records it as client `client_id` (from `region`). *read gets the value the call
  // observed when it has one (get: the value; add: the sum; put/cas: the value written);
  // *response (when given) gets the answer as it came.
  Outcome Do(Client& client, int client_id, int region, const Request& request, int64_t* read = nullptr,
             Response* response = nullptr);

  std::vector<sim::HistoryOp> Snapshot() const;
  std::vector<std::string> Unexpected() const;
  // Acknowledged (definite) writes whose call came at or after `from_us`, optionally only
  // from `region`.
  size_t AckedWritesSince(int64_t from_us, std::optional<int> region = std::nullopt) const;

 private:
  const std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  std::vector<sim::HistoryOp> ops_;        // guarded by mu_
  std::vector<std::string> unexpected_;    // guarded by mu_
};

// Writes `ops` as one history and runs the Porcupine checker: "" when it says
// linearizable, else why not. *illegal (when given) says whether the checker proved a
// violation, rather than giving up at its time limit or not running.
std::string CheckLinearizable(const std::vector<sim::HistoryOp>& ops, const std::string& path, uint64_t id,
                              bool* illegal = nullptr);

int64_t ParseValue(const std::string& s);

}  // namespace geokv::integration

#endif  // GEOKV_TESTS_INTEGRATION_HISTORY_H_
