// `geokv demo`: shows a strong key and CRDT keys side by side on a running cluster —
// operation latency from each region, and how long eventual updates take to converge.
#ifndef GEOKV_TOOLS_GEOKV_DEMO_H_
#define GEOKV_TOOLS_GEOKV_DEMO_H_

#include <string>
#include <vector>

namespace geokv::tools {

// `endpoints[i]` is region i's client endpoint; `regions` names them (same length).
// Returns the process exit code (non-zero when the cluster misbehaved).
int RunDemo(const std::vector<std::string>& endpoints, const std::vector<std::string>& regions, int rounds);

}  // namespace geokv::tools

#endif  // GEOKV_TOOLS_GEOKV_DEMO_H_
