// Simulated Multi-Paxos figures on the AWS 2017 latency matrix (core/sim):
//   1. replica-to-replica messages and bytes per committed command in steady state;
//   2. commit latency per client region with the leader in VA, divided by the physical
//      lower bound (client<->leader RTT + leader<->nearest-majority RTT), p50 and p99;
//   3. failover: leader crash -> new leader, and -> first new commit, vs the election
//      timeout.
// Virtual time, so the figures do not depend on the machine; the run takes seconds.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/sim/paxos_cluster.h"

namespace {

using geokv::sim::PaxosSimOptions;
using geokv::sim::PaxosSimResult;
using geokv::sim::Time;

PaxosSimOptions Base(int replicas, uint64_t seed) {
  PaxosSimOptions o;
  o.seed = seed;
  o.replicas = replicas;
  o.faults = false;
  o.crashes = false;
  o.writes_only = true;
  o.clients_know_leader = true;
  o.fault_phase_us = 1'000'000;
  o.config.tick_us = 10'000;
  o.config.heartbeat_ticks = 5;
  o.config.election_ticks = 30;
  o.config.resend_ticks = 30;
  o.config.lease_us = 250'000;
  o.config.preferred_leader = 0;  // VA
  return o;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

void MessagesPerCommand() {
  std::printf("\n== Messages and bytes per committed command (steady state, leader VA) ==\n");
  std::printf("%-9s %-8s %10s %10s %12s %22s\n", "replicas", "clients", "commands", "msgs/cmd",
              "bytes/cmd", "msgs/cmd w/o heartbeat");
  for (int replicas : {3, 5}) {
    for (int clients : {1, 50}) {
      PaxosSimOptions o = Base(replicas, 1);
      o.clients = clients;
      o.ops_per_client = clients == 1 ? 150 : 60;
      o.think_us_max = 0;
      o.measure_from_us = 3'000'000;
      o.measure_to_us = 8'000'000;
      PaxosSimResult r = geokv::sim::RunPaxosSim(o);
      if (!r.ok || r.window_commands == 0) {
        std::printf("run failed: %s\n", r.failure.c_str());
        continue;
      }
      const auto cmds = static_cast<double>(r.window_commands);
      std::printf("%-9d %-8d %10llu %10.2f %12.1f %22.2f\n", replicas, clients,
                  static_cast<unsigned long long>(r.window_commands),
                  static_cast<double>(r.window_messages) / cmds,
                  static_cast<double>(r.window_bytes) / cmds,
                  static_cast<double>(r.window_messages - r.window_heartbeat_messages) / cmds);
    }
  }
}

void CommitLatency(Time jitter_us) {
  std::printf("\n== Commit latency / (client<->leader RTT + leader<->nearest majority RTT), "
              "leader VA, jitter 0..%lld ms per message ==\n",
              static_cast<long long>(jitter_us / 1000));
  std::printf("%-9s %-7s %9s %9s %9s %9s %7s\n", "replicas", "client", "bound_ms", "p50_ms", "p99_ms",
              "p50/bnd", "p99/bnd");
  for (int replicas : {3, 5}) {
    PaxosSimOptions o = Base(replicas, 2);
    o.calm_jitter_us = jitter_us;
    o.clients = 4 * replicas;  // four per region
    o.ops_per_client = 60;
    o.think_us_max = 50'000;
    PaxosSimResult r = geokv::sim::RunPaxosSim(o);
    if (!r.ok) {
      std::printf("run failed: %s\n", r.failure.c_str());
      continue;
    }
    if (r.leader_at_end != 0) std::printf("(warning: leader at end is %d, not VA)\n", r.leader_at_end);
    geokv::sim::Network aws = geokv::sim::Network::Aws(1, replicas);
    std::vector<double> to_others;
    for (int j = 1; j < replicas; ++j) to_others.push_back(aws.rtt_ms(0, j));
    std::sort(to_others.begin(), to_others.end());
    const double majority_rtt = to_others[replicas / 2 - 1];  // leader + replicas/2 others
    for (int region = 0; region < replicas; ++region) {
      std::vector<double> lat;
      for (const auto& op : r.history) {
        if (op.region != region || op.unknown || op.call_us < 3'000'000) continue;
        lat.push_back(static_cast<double>(op.return_us - op.call_us) / 1000.0);
      }
      const double client_rtt = region == 0 ? 0.5 : aws.rtt_ms(0, region);
      const double bound = client_rtt + majority_rtt;
      const double p50 = Percentile(lat, 0.5), p99 = Percentile(lat, 0.99);
      std::printf("%-9d %-7s %9.1f %9.1f %9.1f %9.3f %7.3f\n", replicas, aws.region(region).c_str(),
                  bound, p50, p99, p50 / bound, p99 / bound);
    }
  }
}

void Failover() {
  std::printf("\n== Failover after a leader crash (20 seeds each; election timeout drawn from "
              "[300, 600) ms, lease 250 ms) ==\n");
  std::printf("%-9s %16s %16s %16s %16s\n", "replicas", "elect_p50_ms", "elect_max_ms",
              "commit_p50_ms", "commit_max_ms");
  for (int replicas : {3, 5}) {
    std::vector<double> elect, commit;
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      PaxosSimOptions o = Base(replicas, 100 + seed);
      o.config.preferred_leader.reset();
      o.clients = 2 * replicas;
      o.ops_per_client = 80;
      o.think_us_max = 20'000;
      o.client_timeout_us = 300'000;
      o.client_attempts_max = 100;
      o.crash_leader_at_us = 4'000'000;
      PaxosSimResult r = geokv::sim::RunPaxosSim(o);
      if (r.new_leader_us) elect.push_back(static_cast<double>(*r.new_leader_us) / 1000.0);
      if (r.failover_us) commit.push_back(static_cast<double>(*r.failover_us) / 1000.0);
    }
    std::printf("%-9d %16.1f %16.1f %16.1f %16.1f\n", replicas, Percentile(elect, 0.5),
                elect.empty() ? 0 : *std::max_element(elect.begin(), elect.end()),
                Percentile(commit, 0.5),
                commit.empty() ? 0 : *std::max_element(commit.begin(), commit.end()));
  }
}

}  // namespace

int main() {
  MessagesPerCommand();
  CommitLatency(0);
  CommitLatency(5'000);
  Failover();
  return 0;
}
