// `geokv local`: a whole multi-region cluster on this machine — one geokvd per region on
// loopback, with the WAN between regions emulated inside the transport.
#ifndef GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_
#define GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_

#include <string>
#include <vector>

namespace geokv::tools {

struct LocalClusterOptions {
  std::vector<std::string> regions;  // e.g. us-east, eu-west, ap-northeast
  double rtt_ms = -1;                // <0: the built-in matrix for known region names, else 100
  double jitter_ms = 1;
  int base_port = 7100;              // peers: base+i, clients: base+100+i, metrics: base+200+i
  int shards = 4;
  std::string dir;                   // data and configs; empty: a fresh temporary directory
  std::string ready_file;            // written (client endpoints, one per line) once serving
  std::string log_level = "warn";
  std::string geokvd;                // path of geokvd; empty: next to this program
};

// Starts the cluster, waits until every node answers, prints the endpoints, then runs
// until SIGINT/SIGTERM and stops every node. Returns the process exit code.
int RunLocalCluster(const LocalClusterOptions& options);

// The round-trip time between two named regions used by `geokv local` (ms), or -1.
double KnownRttMs(const std::string& a, const std::string& b);

}  // namespace geokv::tools

#endif  // GEOKV_TOOLS_GEOKV_LOCAL_CLUSTER_H_
