// `geokv local`: a whole multi-region cluster on this machine — one geokvd per region, or
// several, on loopback, with the WAN between regions emulated inside the transport (nodes of
// the same region have no emulated delay between them).
#ifndef GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_
#define GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_

#include <string>
#include <vector>

namespace geokv::tools {

struct LocalClusterOptions {
  std::vector<std::string> regions;  // e.g. us-east, eu-west, ap-northeast
  // geokvd processes per region. Node ids: one node per region in region order (0..R-1),
  // then the second node of each region, and so on: node i is in region i % R.
  int nodes_per_region = 1;
  double rtt_ms = -1;                // <0: the built-in matrix for known region names, else 100
  double jitter_ms = 1;
  int base_port = 7100;              // node i: peers base+i, clients base+100+i, metrics base+200+i
  int shards = 4;
  std::string dir;                   // data and configs; empty: a fresh temporary directory
  std::string ready_file;            // written once serving: client endpoints, one per line, by node id
  std::string log_level = "warn";
  std::string geokvd;                // path of geokvd; empty: next to this program
};

// Starts the cluster, waits until every node answers and every shard is led by its
// preferred region, prints the endpoints, then runs until SIGINT/SIGTERM and stops every
// node. Returns the process exit code: 2 for options it refuses (at most 16 regions and 64
// nodes, the engine's limit; the port scheme has room for 100), 1 when the cluster did not
// come up.
int RunLocalCluster(const LocalClusterOptions& options);

// The round-trip time between two named regions used by `geokv local` (ms), or -1.
double KnownRttMs(const std::string& a, const std::string& b);

}  // namespace geokv::tools

#endif  // GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_
