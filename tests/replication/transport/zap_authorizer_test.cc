#include "replication/transport/zap_authorizer.h"

#include <gtest/gtest.h>
#include <zmq.h>

#include <string>
#include <vector>

namespace geokv::transport {
namespace {

struct Key {
  std::string z85;
  std::string binary;
};

Key NewKey() {
  char pub[41], sec[41];
  EXPECT_EQ(zmq_curve_keypair(pub, sec), 0);
  uint8_t bin[32];
  EXPECT_NE(zmq_z85_decode(bin, pub), nullptr);
  return Key{pub, std::string(reinterpret_cast<char*>(bin), 32)};
}

std::vector<std::string> CurveRequest(const std::string& key_binary) {
  return {"1.0", "req-7", "geokv", "127.0.0.1", "", "CURVE", key_binary};
}

TEST(ZapAuthorizerTest, AllowlistedKeyGets200WithTheKeyAsUserId) {
  Key k = NewKey();
  ZapAuthorizer zap({k.z85});
  std::vector<std::string> reply = zap.Handle(CurveRequest(k.binary));
  ASSERT_EQ(reply.size(), 6u);
  EXPECT_EQ(reply[0], "1.0");
  EXPECT_EQ(reply[1], "req-7");
  EXPECT_EQ(reply[2], "200");
  EXPECT_EQ(reply[4], k.z85);
  EXPECT_TRUE(ZapAuthorizer::Accepted(reply));
}

TEST(ZapAuthorizerTest, UnknownKeyGets400) {
  Key allowed = NewKey(), other = NewKey();
  ZapAuthorizer zap({allowed.z85});
  std::vector<std::string> reply = zap.Handle(CurveRequest(other.binary));
  ASSERT_EQ(reply.size(), 6u);
  EXPECT_EQ(reply[1], "req-7");
  EXPECT_EQ(reply[2], "400");
  EXPECT_EQ(reply[4], "");
  EXPECT_FALSE(ZapAuthorizer::Accepted(reply));
}

TEST(ZapAuthorizerTest, MalformedAndOtherMechanismsAreDenied) {
  Key k = NewKey();
  ZapAuthorizer zap({k.z85});
  std::vector<std::string> plain = {"1.0", "r", "geokv", "addr", "", "PLAIN", "user", "pass"};
  EXPECT_EQ(zap.Handle(plain)[2], "400");
  std::vector<std::string> null_mech = {"1.0", "r", "geokv", "addr", "", "NULL"};
  EXPECT_EQ(zap.Handle(null_mech)[2], "400");
  std::vector<std::string> bad_version = CurveRequest(k.binary);
  bad_version[0] = "2.0";
  EXPECT_EQ(zap.Handle(bad_version)[2], "500");
  EXPECT_EQ(zap.Handle({})[2], "500");
  EXPECT_EQ(zap.Handle({"1.0"})[2], "500");
  std::vector<std::string> short_key = CurveRequest(k.binary.substr(0, 31));
  EXPECT_EQ(zap.Handle(short_key)[2], "500");
  for (const auto& reply : {zap.Handle({}), zap.Handle(plain)}) {
    EXPECT_EQ(reply.size(), 6u);  // a REP socket must always answer in full
  }
}

TEST(ZapAuthorizerTest, EmptyAllowlistAcceptsNobody) {
  ZapAuthorizer zap({});
  EXPECT_EQ(zap.Handle(CurveRequest(NewKey().binary))[2], "400");
}

}  // namespace
}  // namespace geokv::transport
