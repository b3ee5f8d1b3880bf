#include "core/sim/network.h"

#include <algorithm>

#include <cassert>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "replication/transport/rtt_table.h"

namespace geokv::sim {
namespace {

// FNV-1a over raw bytes: cheap, stable across platforms and runs.
uint64_t Mix(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

Network::Network(uint64_t seed, std::vector<std::string> regions,
                 std::vector<std::vector<double>> rtt_ms)
    : regions_(std::move(regions)), rtt_ms_(std::move(rtt_ms)), rng_(seed) {
  const size_t n = regions_.size();
  if (rtt_ms_.size() != n) throw std::invalid_argument("rtt matrix does not match regions");
  for (const auto& row : rtt_ms_) {
    if (row.size() != n) throw std::invalid_argument("rtt matrix is not square");
  }
  handlers_.resize(n);
  blocked_.assign(n, std::vector<bool>(n, false));
  up_.assign(n, true);
  epoch_.assign(n, 0);
  held_.resize(n);
}

Network Network::Aws(uint64_t seed, int regions, int per_region) {
  if (regions < 1 || regions > transport::kKnownRegions) throw std::invalid_argument("Aws: 1..5 regions");
  if (per_region < 1) throw std::invalid_argument("Aws: at least one node per region");
  const int nodes = regions * per_region;
  std::vector<std::string> names;
  std::vector<std::vector<double>> rtt(nodes, std::vector<double>(nodes));
  for (int i = 0; i < nodes; ++i) {
    names.emplace_back(transport::kKnownRegionNames[i % regions].label);
    for (int j = 0; j < nodes; ++j) {
      rtt[i][j] = i != j && i % regions == j % regions ? kIntraRegionRttMs : transport::kKnownRttMs[i % regions][j % regions];
    }
  }
  return Network(seed, std::move(names), std::move(rtt));
}

void Network::Attach(int node, Handler deliver) {
  assert(node >= 0 && node < size());
  handlers_[node] = std::move(deliver);
}

Time Network::one_way_us(int from, int to) const {
  return static_cast<Time>(rtt_ms_[from][to] * 1000.0 / 2.0);
}

void Network::Send(int from, int to, std::string bytes, Time after_us) {
  assert(from >= 0 && from < size() && to >= 0 && to < size());
  ++stats_.sent;
  stats_.sent_bytes += bytes.size();
  // Draw every random number unconditionally so that the sequence of draws does not depend
  // on partition state (keeps traces comparable when only a fault toggles).
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const bool lost = unit(rng_) < faults_.loss;
  const bool dup = unit(rng_) < faults_.duplicate;
  if (redelivery_ && !up_[to] && up_[from] && !lost && !blocked_[from][to]) {
    if (held_[to].size() < kHeldPerNodeMax) {
      held_[to].push_back(Held{from, std::move(bytes)});
    } else {
      ++stats_.dropped;  // the sender's queue is full (ZeroMQ's high-water mark)
    }
    return;
  }
  if (lost || blocked_[from][to] || !up_[to] || !up_[from]) {
    ++stats_.dropped;
    return;
  }
  const int copies = dup ? 2 : 1;
  if (dup) ++stats_.duplicated;
  const uint64_t epoch = epoch_[to];
  for (int c = 0; c < copies; ++c) {
    Time delay = after_us + (from == to ? 0 : one_way_us(from, to));
    if (faults_.jitter_us > 0) {
      delay += std::uniform_int_distribution<Time>(0, faults_.jitter_us)(rng_);
    }
    if (c + 1 < copies) {
      At(now_ + delay, [this, from, to, epoch, b = bytes] { Deliver(from, to, epoch, b); });
    } else {
      At(now_ + delay, [this, from, to, epoch, b = std::move(bytes)] {
        Deliver(from, to, epoch, b);
      });
    }
  }
}

void Network::Deliver(int from, int to, uint64_t epoch, const std::string& bytes) {
  if (redelivery_ && !up_[to] && !blocked_[from][to]) {
    if (held_[to].size() < kHeldPerNodeMax) {
      held_[to].push_back(Held{from, bytes});
    } else {
      ++stats_.dropped;
    }
    return;
  }
  if (!up_[to] || (!redelivery_ && epoch_[to] != epoch) || blocked_[from][to] || !handlers_[to]) {
    ++stats_.dropped;
    return;
  }
  ++stats_.delivered;
  uint64_t h = trace_hash_;
  h = Mix(h, &now_, sizeof now_);
  h = Mix(h, &from, sizeof from);
  h = Mix(h, &to, sizeof to);
  h = Mix(h, bytes.data(), bytes.size());
  trace_hash_ = h;
  handlers_[to](from, bytes);
}

void Network::At(Time when, std::function<void()> fn) {
  if (when < now_) when = now_;
  queue_.push(Event{when, next_seq_++, std::move(fn)});
}

bool Network::Step() {
  if (queue_.empty()) return false;
  // Move out of the queue before running: the event may schedule new ones.
  Event ev = std::move(const_cast<Event&>(queue_.top()));
  queue_.pop();
  now_ = ev.when;
  ev.fn();
  return true;
}

void Network::RunUntil(Time t) {
  while (!queue_.empty() && queue_.top().when <= t) Step();
  if (now_ < t) now_ = t;
}

void Network::Block(int from, int to, bool blocked) { blocked_[from][to] = blocked; }

void Network::HealAll() {
  for (auto& row : blocked_) row.assign(row.size(), false);
}

void Network::SetUp(int node, bool up) {
  const bool coming_up = up && !up_[node];
  if (coming_up) ++epoch_[node];
  if (!up) ++epoch_[node];
  up_[node] = up;
  if (coming_up && redelivery_) {
    // The peers reconnect and flush what they queued, in order, over the usual delay.
    std::vector<Held> held;
    held.swap(held_[node]);
    for (auto& h : held) {
      ++stats_.redelivered;
      // Reconnection takes the peers a while (ZeroMQ's reconnect interval and backoff, a
      // peer that was itself busy or paused when it flushed).
      const Time delay = (h.from == node ? 0 : one_way_us(h.from, node)) +
                         std::uniform_int_distribution<Time>(0, 3'000'000)(rng_);
      const uint64_t epoch = epoch_[node];
      At(now_ + delay, [this, from = h.from, node, epoch, b = std::move(h.bytes)] { Deliver(from, node, epoch, b); });
    }
  }
}

int SeedFromEnvOr(int fallback) {
  const char* s = std::getenv("GEOKV_SEED");
  if (s == nullptr || *s == '\0') return fallback;
  return std::atoi(s);
}

bool SeedFromEnvSet() {
  const char* s = std::getenv("GEOKV_SEED");
  return s != nullptr && *s != '\0';
}

namespace {
int EnvIntOr(const char* name, int fallback) {
  const char* s = std::getenv(name);
  return s != nullptr && *s != '\0' ? std::atoi(s) : fallback;
}
}  // namespace

int SuiteShard() { return EnvIntOr("GEOKV_SIM_SHARD", 0); }

std::vector<uint64_t> SuiteSeeds(int fallback) {
  const int shard = SuiteShard();
  const int shards = std::max(1, EnvIntOr("GEOKV_SIM_SHARDS", 1));
  std::vector<uint64_t> seeds;
  if (SeedFromEnvSet()) {
    if (shard == 0) seeds.push_back(static_cast<uint64_t>(SeedFromEnvOr(1)));
    return seeds;
  }
  const int n = SeedCountFromEnvOr(fallback);
  const int first = std::max(1, EnvIntOr("GEOKV_SIM_FIRST_SEED", 1));
  for (int s = first; s < first + n; ++s) {
    if (s % shards == shard) seeds.push_back(static_cast<uint64_t>(s));
  }
  return seeds;
}

int SeedCountFromEnvOr(int fallback) {
  const char* s = std::getenv("GEOKV_SIM_SEEDS");
  if (s == nullptr || *s == '\0') return fallback;
  const int n = std::atoi(s);
  return n > 0 ? n : fallback;
}

}  // namespace geokv::sim
