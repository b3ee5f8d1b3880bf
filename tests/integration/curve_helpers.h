// CURVE key files and client options for the integration tests that run a CURVE cluster
// (curve_test, security_test).
#ifndef GEOKV_TESTS_INTEGRATION_CURVE_HELPERS_H_
#define GEOKV_TESTS_INTEGRATION_CURVE_HELPERS_H_

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/server/client.h"
#include "replication/transport/curve_keys.h"
#include "tests/integration/harness.h"

namespace geokv::integration {

struct KeyFiles {
  transport::CurveKeyPair pair;
  std::string secret_file;
  std::string public_file;
};

// A new key pair, written to dir/name.key and dir/name.pub.
inline KeyFiles MakeKeys(const std::string& dir, const std::string& name) {
  KeyFiles k;
  auto pair = transport::GenerateCurveKeyPair();
  EXPECT_TRUE(pair.ok()) << pair.status().ToString();
  if (!pair.ok()) return k;
  k.pair = *pair;
  k.secret_file = dir + "/" + name + ".key";
  k.public_file = dir + "/" + name + ".pub";
  const Status s = transport::WriteCurveKeyPairFiles(k.pair, k.secret_file, k.public_file);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return k;
}

// Client options that talk CURVE to a server with `server_public`, as `mine`.
inline ClientOptions CurveClient(const std::string& server_public, const transport::CurveKeyPair& mine) {
  ClientOptions o;
  o.server_public_keys_z85 = {server_public};
  o.public_key_z85 = mine.public_z85;
  o.secret_key_z85 = mine.secret_z85;
  return o;
}

// The [curve] options of a cluster whose node i runs with keys[i] and the allowlist file
// allowed[i] (allowed may hold one file for every node).
inline ClusterOptions::Curve NodeCurve(const std::vector<KeyFiles>& keys, const std::vector<std::string>& allowed) {
  ClusterOptions::Curve curve;
  for (size_t i = 0; i < keys.size(); ++i) {
    curve.secret_key_files.push_back(keys[i].secret_file);
    curve.public_key_files.push_back(keys[i].public_file);
    curve.public_keys.push_back(keys[i].pair.public_z85);
    curve.allowed_keys_files.push_back(allowed.size() == 1 ? allowed[0] : allowed[i]);
  }
  return curve;
}

}  // namespace geokv::integration

#endif  // GEOKV_TESTS_INTEGRATION_CURVE_HELPERS_H_
