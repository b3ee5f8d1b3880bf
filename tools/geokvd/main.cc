// geokvd: one geokv node. Reads a TOML config (see README, "Running a cluster"), serves
// until SIGTERM or SIGINT, then stops gracefully. SIGHUP re-reads the config file's CURVE
// allowlists and peer keys (key rotation, docs/security.md).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "core/server/config.h"
#include "core/server/server.h"

int main(int argc, char** argv) {
  CLI::App app{"geokvd: a geokv node (one region of a geo-replicated cluster)"};
  std::string config_path;
  std::string log_level;
  app.add_option("-c,--config", config_path, "TOML config file")->required()->check(CLI::ExistingFile);
  app.add_option("--log-level", log_level, "overrides log.level: trace|debug|info|warn|error");
  bool new_cluster = false;
  app.add_flag("--new-cluster", new_cluster,
               "this node is being created with a new cluster: its new data directory takes part at once, without "
               "waiting for every other node (never for a node of a running cluster whose directory was lost)");
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals before any thread starts, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto config = geokv::Config::LoadFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "geokvd: %s\n", config.status().ToString().c_str());
    return 2;
  }
  if (!log_level.empty()) config->log_level = log_level;
  config->new_cluster = new_cluster;
  if (!config->cluster) {
    std::fprintf(stderr, "geokvd: %s: a node needs [node] and [cluster] sections\n", config_path.c_str());
    return 2;
  }
  // Fail-stop: a node whose storage failed must not linger as a zombie. Exit non-zero so
  // that the supervisor restarts it; recovery at start replays the journal.
  auto server = geokv::Server::Start(*config, [](const geokv::Status& why) {
    std::fprintf(stderr, "geokvd: stopping: %s\n", why.ToString().c_str());
    std::fflush(stderr);
    std::_Exit(3);
  });
  if (!server.ok()) {
    std::fprintf(stderr, "geokvd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (config->cluster->insecure && !config->cluster->curve) {
    std::fprintf(stderr,
                 "geokvd: WARNING: insecure = true and CURVE is off: anyone who reaches %s can act as a peer\n",
                 config->cluster->me().peer_endpoint.c_str());
  }
  std::printf("geokvd: node %u (%s) ready; clients: %s\n", config->cluster->self,
              config->cluster->me().region.c_str(), (*server)->client_endpoint().c_str());
  std::fflush(stdout);
  int sig = 0;
  for (;;) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGHUP) break;
    auto fresh = geokv::Config::LoadFile(config_path);
    const geokv::Status s = fresh.ok() ? (*server)->ReloadKeys(*fresh) : fresh.status();
    if (s.ok()) {
      spdlog::info("geokvd: SIGHUP: keys reloaded from {}", config_path);
    } else {
      spdlog::error("geokvd: SIGHUP: keys not reloaded: {}", s.ToString());
    }
  }
  spdlog::info("geokvd: signal {}, stopping", sig);
  (*server)->Stop();
  return 0;
}
