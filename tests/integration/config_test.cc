// geokvd with a bad config: it exits with a non-zero code and a message that names the
// problem (the field, or the place of a syntax error); it never crashes and never starts
// serving.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

struct BadConfig {
  std::string name;
  std::string toml;      // "$DIR", "$P0", "$C0", "$P1", "$C1" are replaced
  std::string expected;  // the message must contain this
};

// gtest prints parameters in test names and failures: the case name, not its bytes.
void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }

// A valid two-node config, then the broken variants.
std::string Valid() {
  return "data_dir = \"$DIR/data\"\n"
         "[node]\nid = 0\n"
         "[cluster]\nshards = 2\n"
         "[[cluster.nodes]]\nid = 0\nregion = \"us-east\"\npeer_endpoint = \"tcp://127.0.0.1:$P0\"\n"
         "client_endpoint = \"tcp://127.0.0.1:$C0\"\n"
         "[[cluster.nodes]]\nid = 1\nregion = \"eu-west\"\npeer_endpoint = \"tcp://127.0.0.1:$P1\"\n"
         "client_endpoint = \"tcp://127.0.0.1:$C1\"\n";
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string WithoutLine(std::string s, const std::string& line, int occurrence) {
  size_t at = std::string::npos;
  for (int i = 0; i <= occurrence; ++i) at = s.find(line, at == std::string::npos ? 0 : at + 1);
  if (at == std::string::npos) return s;
  return s.erase(at, line.size() + 1);
}

std::vector<BadConfig> Cases() {
  const std::string v = Valid();
  return {
      {"broken_toml", "data_dir = \"$DIR/data\n[node\nid = 0\n", "geokvd.toml:"},
      {"missing_peer_endpoint", WithoutLine(v, "peer_endpoint = \"tcp://127.0.0.1:$P1\"", 0),
       "cluster.nodes[1].peer_endpoint"},
      {"missing_region", WithoutLine(v, "region = \"eu-west\"", 0), "cluster.nodes[1].region"},
      {"missing_nodes", "data_dir = \"$DIR/data\"\n[node]\nid = 0\n[cluster]\nshards = 2\n", "cluster.nodes"},
      {"missing_node_id", Replace(v, "[node]\nid = 0\n", "[node]\n"), "node.id"},
      {"unknown_node_field", Replace(v, "[node]\nid = 0\n", "[node]\nid = 0\nidd = 1\n"), "node.idd"},
      {"unknown_cluster_nodes_field", Replace(v, "region = \"eu-west\"", "region = \"eu-west\"\nregoin = \"x\""),
       "cluster.nodes[1].regoin"},
      {"unknown_top_level_field", "bogus = 1\n" + v, "bogus"},
      {"shards_wrong_type", Replace(v, "shards = 2", "shards = \"two\""), "cluster.shards"},
      {"shards_out_of_range", Replace(v, "shards = 2", "shards = 0"), "cluster.shards"},
      {"duplicate_node_id", Replace(v, "[[cluster.nodes]]\nid = 1\n", "[[cluster.nodes]]\nid = 0\n"), "cluster.nodes"},
      {"self_not_a_node", Replace(v, "[node]\nid = 0\n", "[node]\nid = 5\n"), "node.id"},
      {"bad_policy_mode", v + "[policy]\nrules = { \"x/\" = \"eventual\" }\n", "policy.rules"},
      {"wan_unknown_region", v + "[wan]\nenabled = true\nlinks = { \"mars\" = { delay_ms = 5 } }\n", "wan.links.mars"},
      {"bad_log_level", v + "[log]\nlevel = \"loud\"\n", "log.level"},
      {"no_cluster_section", "data_dir = \"$DIR/data\"\n", "[cluster]"},
      {"added_not_a_bool", Replace(v, "region = \"eu-west\"", "region = \"eu-west\"\nadded = \"yes\""),
       "cluster.nodes[1].added: must be true or false"},
      {"first_of_region_added", Replace(v, "region = \"eu-west\"", "region = \"eu-west\"\nadded = true"),
       "cluster.nodes[1].added"},
      {"self_removed", Replace(v, "region = \"us-east\"", "region = \"us-east\"\nremoved = true"),
       "cluster.nodes[0].removed"},
  };
}

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, ExitsNonZeroNamingTheField) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string toml = GetParam().toml;
  toml = Replace(toml, "$DIR", dir.path());
  for (const char* p : {"$P0", "$C0", "$P1", "$C1"}) toml = Replace(toml, p, std::to_string(PickPort()));
  const std::string config = dir.path() + "/geokvd.toml";
  WriteFile(config, toml);
  std::string out;
  auto st = RunProgram({GeokvdPath(), "--config", config}, seconds(20), &out);
  ASSERT_TRUE(st.has_value()) << "geokvd did not exit with the bad config; output:\n" << out;
  ASSERT_TRUE(WIFEXITED(*st)) << "geokvd was killed by signal " << (WIFSIGNALED(*st) ? WTERMSIG(*st) : 0)
                              << "; output:\n" << out;
  EXPECT_NE(WEXITSTATUS(*st), 0) << out;
  EXPECT_NE(out.find(GetParam().expected), std::string::npos)
      << "the message does not name \"" << GetParam().expected << "\":\n" << out;
}

INSTANTIATE_TEST_SUITE_P(Geokvd, BadConfigTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<BadConfig>& info) { return info.param.name; });

TEST(BadConfig, MissingFileExitsNonZero) {
  TempDir dir;
  std::string out;
  auto st = RunProgram({GeokvdPath(), "--config", dir.path() + "/nope.toml"}, seconds(20), &out);
  ASSERT_TRUE(st.has_value()) << out;
  ASSERT_TRUE(WIFEXITED(*st)) << out;
  EXPECT_NE(WEXITSTATUS(*st), 0) << out;
  EXPECT_NE(out.find("nope.toml"), std::string::npos) << out;
}

TEST(BadConfig, ClientEndpointInUseExitsNonZeroNamingIt) {
  TempDir dir;
  // Hold a listening socket on the client port.
  const int port = PickPort();
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(s, 4), 0);
  std::string toml = Replace(Valid(), "$DIR", dir.path());
  toml = Replace(toml, "$C0", std::to_string(port));
  for (const char* p : {"$P0", "$P1", "$C1"}) toml = Replace(toml, p, std::to_string(PickPort()));
  const std::string config = dir.path() + "/geokvd.toml";
  WriteFile(config, toml);
  std::string out;
  auto st = RunProgram({GeokvdPath(), "--config", config}, seconds(30), &out);
  ::close(s);
  ASSERT_TRUE(st.has_value()) << "geokvd kept running on a busy client endpoint; output:\n" << out;
  ASSERT_TRUE(WIFEXITED(*st)) << out;
  EXPECT_NE(WEXITSTATUS(*st), 0) << out;
  EXPECT_NE(out.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << out;
}

}  // namespace
}  // namespace geokv::integration
