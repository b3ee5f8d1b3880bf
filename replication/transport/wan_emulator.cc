#include "replication/transport/wan_emulator.h"

#include <cassert>
#include <cmath>
#include <utility>

namespace geokv::transport {
namespace {

Status CheckLink(const std::string& name, const LinkProfile& link) {
  auto bad = [&name](const std::string& what) {
    return Status(Code::kConfig, "wan." + name + ": " + what);
  };
  if (link.delay_ms < 0 || link.delay_ms > WanEmulator::kDelayMsMax) {
    return bad("delay_ms must be in [0, " + std::to_string(WanEmulator::kDelayMsMax) + "]");
  }
  if (link.jitter_ms < 0 || link.jitter_ms > WanEmulator::kDelayMsMax) {
    return bad("jitter_ms must be in [0, " + std::to_string(WanEmulator::kDelayMsMax) + "]");
  }
  if (!(link.loss >= 0 && link.loss <= 1)) return bad("loss must be in [0, 1]");
  return Status::Ok();
}

}  // namespace

Status WanEmulator::Validate(const WanOptions& options) {
  if (!options.enabled) return Status::Ok();
  if (options.local_region.empty()) {
    return Status(Code::kConfig, "wan.local_region must be set when WAN emulation is on");
  }
  GEOKV_RETURN_IF_ERROR(CheckLink("default_link", options.default_link));
  for (const auto& [region, link] : options.links) {
    if (region.empty()) return Status(Code::kConfig, "wan.links: empty region name");
    GEOKV_RETURN_IF_ERROR(CheckLink("links." + region, link));
  }
  return Status::Ok();
}

WanEmulator::WanEmulator(WanOptions options)
    : options_(std::move(options)), rng_(options_.seed) {
  assert(Validate(options_).ok());
}

const LinkProfile& WanEmulator::LinkTo(std::string_view region) const {
  auto it = options_.links.find(region);
  if (it != options_.links.end()) return it->second;
  if (region == options_.local_region) {
    static const LinkProfile kLocal;  // inside a region: no emulated WAN unless listed
    return kLocal;
  }
  return options_.default_link;
}

bool WanEmulator::IsCut(std::string_view region) const {
  if (partitioned_.empty() || region == options_.local_region) return false;
  return partitioned_.count(region) > 0 || partitioned_.count(options_.local_region) > 0;
}

WanEmulator::Decision WanEmulator::OnSend(std::string_view region) {
  Decision d;
  if (IsCut(region)) {
    d.verdict = Verdict::kDropPartition;
    return d;
  }
  if (!options_.enabled) return d;
  const LinkProfile& link = LinkTo(region);
  if (link.loss > 0) {
    std::bernoulli_distribution lose(link.loss);
    if (lose(rng_)) {
      d.verdict = Verdict::kDropLoss;
      return d;
    }
  }
  d.delay_us = link.delay_ms * 1000;
  if (link.jitter_ms > 0) {
    std::uniform_int_distribution<int64_t> jitter(0, link.jitter_ms * 1000);
    d.delay_us += jitter(rng_);
  }
  return d;
}

void WanEmulator::Partition(std::string_view region, bool cut) {
  if (cut) {
    partitioned_.emplace(region);
  } else {
    auto it = partitioned_.find(region);
    if (it != partitioned_.end()) partitioned_.erase(it);
  }
}

Status WanEmulator::SetLink(std::string_view region, const LinkProfile& link) {
  GEOKV_RETURN_IF_ERROR(CheckLink("links." + std::string(region), link));
  options_.links[std::string(region)] = link;
  return Status::Ok();
}

}  // namespace geokv::transport
