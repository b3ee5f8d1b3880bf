// The simulator network: delays from the AWS matrix, determinism, partitions, down nodes.
#include "core/sim/network.h"

#include <gtest/gtest.h>

#include <vector>

namespace geokv::sim {
namespace {

TEST(SimNetwork, DeliversAfterHalfTheRoundTrip) {
  Network net = Network::Aws(1, 3);
  std::vector<Time> got;
  net.Attach(1, [&](int from, std::string b) {
    EXPECT_EQ(from, 0);
    EXPECT_EQ(b, "hi");
    got.push_back(net.Now());
  });
  net.Send(0, 1, "hi");
  while (net.Step()) {
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], 36'350);  // VA-CA 72.7 ms / 2
  EXPECT_EQ(net.region(3 - 1), "OR");
}

TEST(SimNetwork, SameSeedSameTrace) {
  auto run = [](uint64_t seed) {
    Network net = Network::Aws(seed, 5);
    net.SetFaults(Faults{0.1, 0.1, 30'000});
    for (int n = 0; n < 5; ++n) {
      net.Attach(n, [&net, n](int, std::string b) {
        if (b.size() < 6) net.Send(n, (n + 1) % 5, b + "x");
      });
    }
    for (int i = 0; i < 50; ++i) net.Send(i % 5, (i + 2) % 5, "m");
    while (net.Step()) {
    }
    return net.TraceHash();
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

TEST(SimNetwork, AsymmetricPartitionAndDownNode) {
  Network net = Network::Aws(1, 3);
  int at1 = 0, at0 = 0, at2 = 0;
  net.Attach(0, [&](int, std::string) { ++at0; });
  net.Attach(1, [&](int, std::string) { ++at1; });
  net.Attach(2, [&](int, std::string) { ++at2; });
  net.Block(0, 1, true);
  net.Send(0, 1, "a");  // blocked
  net.Send(1, 0, "b");  // the other direction still works
  net.Send(0, 2, "c");
  net.SetUp(2, false);  // in flight to a node that goes down: dropped
  while (net.Step()) {
  }
  EXPECT_EQ(at1, 0);
  EXPECT_EQ(at0, 1);
  EXPECT_EQ(at2, 0);
  net.HealAll();
  net.SetUp(2, true);
  net.Send(0, 1, "a");
  net.Send(0, 2, "c");
  while (net.Step()) {
  }
  EXPECT_EQ(at1, 1);
  EXPECT_EQ(at2, 1);
}

TEST(SimNetwork, TimersRunInOrderAndTiesKeepSchedulingOrder) {
  Network net = Network::Aws(1, 1);
  std::vector<int> order;
  net.At(50, [&] { order.push_back(2); });
  net.At(10, [&] { order.push_back(0); });
  net.At(50, [&] { order.push_back(3); });
  net.At(10, [&] { order.push_back(1); });
  net.RunUntil(100);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(net.Now(), 100);
}

}  // namespace
}  // namespace geokv::sim
