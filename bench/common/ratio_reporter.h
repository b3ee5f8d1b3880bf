// A Google Benchmark reporter that, besides the usual console table, prints each run's
// throughput as a ratio against a baseline run of the same binary:
//   ratio <name>  vs <baseline>: 0.93x items/s
// Pairs are given up front as (name, baseline) prefixes of benchmark names.
#ifndef GEOKV_BENCH_COMMON_RATIO_REPORTER_H_
#define GEOKV_BENCH_COMMON_RATIO_REPORTER_H_

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace geokv::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(std::vector<std::pair<std::string, std::string>> pairs)
      : pairs_(std::move(pairs)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) rate_[run.benchmark_name()] = it->second.value;
    }
  }

  // Prints the ratio lines; call after RunSpecifiedBenchmarks.
  void PrintRatios() const {
    std::printf("\nRatios (items/s of the run divided by items/s of its baseline, same binary):\n");
    for (const auto& [name, baseline] : pairs_) {
      auto a = rate_.find(name), b = rate_.find(baseline);
      if (a == rate_.end() || b == rate_.end() || b->second <= 0) continue;
      std::printf("  ratio %-44s vs %-44s %6.3fx\n", name.c_str(), baseline.c_str(), a->second / b->second);
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
  std::map<std::string, double> rate_;
};

// main() body shared by the benchmarks: runs them with the ratio reporter.
inline int RunWithRatios(int argc, char** argv, std::vector<std::pair<std::string, std::string>> pairs) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter(std::move(pairs));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}

}  // namespace geokv::bench

#endif  // GEOKV_BENCH_COMMON_RATIO_REPORTER_H_
