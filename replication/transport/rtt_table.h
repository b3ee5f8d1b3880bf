// The round-trip times between regions that every emulation of a WAN in geokv uses: the
// simulator's network, `geokv local`'s WAN emulation and the benchmarks' physical bounds.
// One table, so that a figure measured on one of them means the same on the others.
//
// Figures: AWS inter-region round trips measured in 2017, in milliseconds. Header only
// (constant data), so that the simulator can use it without linking the transport.
#ifndef GEOKV_REPLICATION_TRANSPORT_RTT_TABLE_H_
#define GEOKV_REPLICATION_TRANSPORT_RTT_TABLE_H_

#include <string_view>

namespace geokv::transport {

struct KnownRegion {
  std::string_view name;   // as in configs: "us-east"
  std::string_view label;  // short, for simulator traces: "VA"
};

inline constexpr int kKnownRegions = 5;
inline constexpr KnownRegion kKnownRegionNames[kKnownRegions] = {
    {"us-east", "VA"}, {"us-west", "CA"}, {"us-west-2", "OR"}, {"eu-west", "EU"}, {"ap-northeast", "JP"}};
inline constexpr double kKnownRttMs[kKnownRegions][kKnownRegions] = {
    {0.0, 72.7, 87.0, 80.6, 145.3},
    {72.7, 0.0, 19.5, 153.2, 102.5},
    {87.0, 19.5, 0.0, 137.0, 89.1},
    {80.6, 153.2, 137.0, 0.0, 212.4},
    {145.3, 102.5, 89.1, 212.4, 0.0},
};

// The index of a known region by name or label; -1 when unknown.
constexpr int KnownRegionIndex(std::string_view name) {
  for (int i = 0; i < kKnownRegions; ++i) {
    if (kKnownRegionNames[i].name == name || kKnownRegionNames[i].label == name) return i;
  }
  return -1;
}

// The round trip between two known regions in milliseconds; -1 when either is unknown.
constexpr double KnownRttMs(std::string_view a, std::string_view b) {
  const int ia = KnownRegionIndex(a), ib = KnownRegionIndex(b);
  return ia < 0 || ib < 0 ? -1 : kKnownRttMs[ia][ib];
}

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_RTT_TABLE_H_
