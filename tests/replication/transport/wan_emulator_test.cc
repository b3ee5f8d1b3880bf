#include "replication/transport/wan_emulator.h"

#include <gtest/gtest.h>

#include <vector>

namespace geokv::transport {
namespace {

WanOptions ThreeRegions() {
  WanOptions o;
  o.enabled = true;
  o.seed = 7;
  o.local_region = "us-east";
  o.links["eu-west"] = LinkProfile{40, 0, 0};
  o.links["ap-south"] = LinkProfile{100, 20, 0.25};
  o.default_link = LinkProfile{5, 0, 0};
  return o;
}

TEST(WanEmulatorTest, ValidateNamesTheField) {
  WanOptions o = ThreeRegions();
  o.links["eu-west"].loss = 1.5;
  Status s = WanEmulator::Validate(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kConfig);
  EXPECT_NE(s.message().find("links.eu-west"), std::string::npos) << s.ToString();

  o = ThreeRegions();
  o.default_link.delay_ms = -1;
  EXPECT_EQ(WanEmulator::Validate(o).code(), Code::kConfig);
  o = ThreeRegions();
  o.local_region.clear();
  EXPECT_EQ(WanEmulator::Validate(o).code(), Code::kConfig);
  EXPECT_TRUE(WanEmulator::Validate(ThreeRegions()).ok());
}

TEST(WanEmulatorTest, FixedDelayPerRegionAndNoneLocally) {
  WanEmulator wan(ThreeRegions());
  for (int i = 0; i < 100; ++i) {
    auto d = wan.OnSend("eu-west");
    ASSERT_EQ(d.verdict, WanEmulator::Verdict::kDeliver);
    EXPECT_EQ(d.delay_us, 40'000);
    EXPECT_EQ(wan.OnSend("us-east").delay_us, 0);      // inside the region
    EXPECT_EQ(wan.OnSend("somewhere").delay_us, 5'000);  // default link
  }
}

TEST(WanEmulatorTest, JitterStaysInRangeAndLossIsRoughlyTheConfiguredRate) {
  WanEmulator wan(ThreeRegions());
  int lost = 0;
  int64_t lo = INT64_MAX, hi = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto d = wan.OnSend("ap-south");
    if (d.verdict == WanEmulator::Verdict::kDropLoss) {
      ++lost;
      continue;
    }
    ASSERT_EQ(d.verdict, WanEmulator::Verdict::kDeliver);
    ASSERT_GE(d.delay_us, 100'000);
    ASSERT_LE(d.delay_us, 120'000);
    lo = std::min(lo, d.delay_us);
    hi = std::max(hi, d.delay_us);
  }
  // 5000 expected; the binomial standard deviation is ~61, so +-500 never fails by chance.
  EXPECT_GT(lost, 4500);
  EXPECT_LT(lost, 5500);
  EXPECT_LT(lo, 102'000);  // the whole jitter range is used
  EXPECT_GT(hi, 118'000);
}

TEST(WanEmulatorTest, SameSeedSameVerdicts) {
  WanEmulator a(ThreeRegions()), b(ThreeRegions());
  for (int i = 0; i < 1000; ++i) {
    auto x = a.OnSend("ap-south");
    auto y = b.OnSend("ap-south");
    ASSERT_EQ(x.verdict, y.verdict);
    ASSERT_EQ(x.delay_us, y.delay_us);
  }
}

TEST(WanEmulatorTest, PartitionCutsBothWaysAndHealRestores) {
  WanEmulator wan(ThreeRegions());
  EXPECT_FALSE(wan.IsCut("eu-west"));
  wan.Partition("eu-west", true);
  EXPECT_TRUE(wan.IsCut("eu-west"));
  EXPECT_FALSE(wan.IsCut("ap-south"));
  EXPECT_FALSE(wan.IsCut("us-east"));  // never inside a region
  EXPECT_EQ(wan.OnSend("eu-west").verdict, WanEmulator::Verdict::kDropPartition);
  wan.Partition("eu-west", false);
  EXPECT_FALSE(wan.IsCut("eu-west"));

  // Cutting our own region isolates us from every other region.
  wan.Partition("us-east", true);
  EXPECT_TRUE(wan.IsCut("eu-west"));
  EXPECT_TRUE(wan.IsCut("ap-south"));
  EXPECT_FALSE(wan.IsCut("us-east"));
  wan.Heal();
  EXPECT_FALSE(wan.IsCut("eu-west"));
  EXPECT_EQ(wan.OnSend("eu-west").verdict, WanEmulator::Verdict::kDeliver);
}

TEST(WanEmulatorTest, PartitionsWorkWithDelayEmulationOff) {
  WanOptions o;
  o.local_region = "a";
  WanEmulator wan(o);
  EXPECT_EQ(wan.OnSend("b").delay_us, 0);
  wan.Partition("b", true);
  EXPECT_EQ(wan.OnSend("b").verdict, WanEmulator::Verdict::kDropPartition);
}

TEST(WanEmulatorTest, SetLinkAtRunTime) {
  WanEmulator wan(ThreeRegions());
  EXPECT_EQ(wan.SetLink("eu-west", LinkProfile{1, 0, 2.0}).code(), Code::kConfig);
  EXPECT_EQ(wan.OnSend("eu-west").delay_us, 40'000);  // unchanged after a refused update
  ASSERT_TRUE(wan.SetLink("eu-west", LinkProfile{3, 0, 0}).ok());
  EXPECT_EQ(wan.OnSend("eu-west").delay_us, 3'000);
}

}  // namespace
}  // namespace geokv::transport
