// WanEmulator: the decisions that make one machine behave like a geo cluster, since the
// kernel here has no netem. Pure logic: no sockets, no clock, no threads; the caller passes
// the time and applies the verdicts (ZmqTransport does, in its I/O thread).
//
// Model, per message, decided when it is sent:
//   - partitions: the link between this node's region and the destination region is cut
//     when the two differ and either one is partitioned; a cut link drops the message;
//   - loss: dropped with the destination region's probability;
//   - delay: held for delay_ms plus a jitter drawn uniformly from [0, jitter_ms]
//     (microsecond resolution). Without jitter every message on a link waits the same
//     time, so per-link FIFO order is kept (ties keep send order); with jitter two messages
//     may overtake each other, exactly as they can on a real WAN path.
// A partition switched on later also cuts messages already delayed in flight: the caller
// checks IsCut again when the delay expires (and on receipt, for the inbound direction).
//
// Randomness comes only from the seeded generator in the options, so a given seed and
// send sequence give the same verdicts.
//
// Ownership: a value type; it owns its generator and tables.
// Thread-safety: none; ZmqTransport guards it with its mutex.
#ifndef GEOKV_REPLICATION_TRANSPORT_WAN_EMULATOR_H_
#define GEOKV_REPLICATION_TRANSPORT_WAN_EMULATOR_H_

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geokv::transport {

// One direction of a link, from this node to a destination region.
struct LinkProfile {
  int64_t delay_ms = 0;   // one-way delay, 0..kDelayMsMax
  int64_t jitter_ms = 0;  // extra delay drawn uniformly from [0, jitter_ms], 0..kDelayMsMax
  double loss = 0;        // probability in [0, 1]
};

struct WanOptions {
  // Off: no delay and no loss. Partitions work either way (they need only local_region).
  bool enabled = false;
  uint64_t seed = 1;           // the generator's seed
  std::string local_region;    // the region of this node
  // Per destination region; regions not listed use default_link. The local region is
  // normally absent (no delay inside a region) but may be listed.
  std::map<std::string, LinkProfile, std::less<>> links;
  LinkProfile default_link;
};

class WanEmulator {
 public:
  static constexpr int64_t kDelayMsMax = 60'000;  // a minute is already no WAN

  enum class Verdict { kDeliver, kDropLoss, kDropPartition };
  struct Decision {
    Verdict verdict = Verdict::kDeliver;
    int64_t delay_us = 0;  // when kDeliver: how long to hold the message
  };

  // kConfig naming the bad field (negative or too large delay, loss outside [0, 1],
  // empty local region while enabled).
  static Status Validate(const WanOptions& options);

  // `options` must have passed Validate (asserted).
  explicit WanEmulator(WanOptions options);

  // The verdict for one message to a peer in `region`. Draws from the generator only for
  // links with loss or jitter, so enabling them on one link does not shift the others.
  Decision OnSend(std::string_view region);

  // True while messages between this node's region and `region` must be dropped.
  bool IsCut(std::string_view region) const;

  void Partition(std::string_view region, bool cut);
  void Heal() { partitioned_.clear(); }
  // Replaces a link profile at run time (kConfig when invalid; the old one stays).
  Status SetLink(std::string_view region, const LinkProfile& link);

  bool enabled() const { return options_.enabled; }
  const WanOptions& options() const { return options_; }

 private:
  const LinkProfile& LinkTo(std::string_view region) const;

  WanOptions options_;
  std::mt19937_64 rng_;
  std::set<std::string, std::less<>> partitioned_;
};

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_WAN_EMULATOR_H_
