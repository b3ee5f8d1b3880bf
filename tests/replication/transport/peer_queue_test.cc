#include "replication/transport/peer_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace geokv::transport {
namespace {

std::vector<std::string> DrainAll(PeerQueue* q) {
  std::vector<std::string> out;
  while (!q->empty()) {
    out.push_back(q->Front().frame);
    q->PopFront();
  }
  return out;
}

TEST(PeerQueueTest, EqualDelaysKeepSendOrder) {
  PeerQueue q(100, 1 << 20);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(q.TryPush(1000, 9999, std::to_string(i)));
  std::vector<std::string> got = DrainAll(&q);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], std::to_string(i));
}

TEST(PeerQueueTest, ReleaseTimeOrdersWhenJitterSaysSo) {
  PeerQueue q(100, 1 << 20);
  ASSERT_TRUE(q.TryPush(300, 9999, "late"));
  ASSERT_TRUE(q.TryPush(100, 9999, "early"));
  ASSERT_TRUE(q.TryPush(200, 9999, "middle"));
  EXPECT_EQ(q.NextReleaseUs(), 100);
  EXPECT_EQ(DrainAll(&q), (std::vector<std::string>{"early", "middle", "late"}));
  EXPECT_EQ(q.NextReleaseUs(), INT64_MAX);
}

TEST(PeerQueueTest, BoundsOnMessagesAndBytes) {
  PeerQueue by_count(3, 1 << 20);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(by_count.TryPush(0, 1, "x"));
  EXPECT_FALSE(by_count.TryPush(0, 1, "x"));
  EXPECT_EQ(by_count.size(), 3u);
  by_count.PopFront();
  EXPECT_TRUE(by_count.TryPush(0, 1, "x"));

  PeerQueue by_bytes(100, 10);
  ASSERT_TRUE(by_bytes.TryPush(0, 1, std::string(6, 'a')));
  EXPECT_FALSE(by_bytes.TryPush(0, 1, std::string(5, 'b')));
  EXPECT_TRUE(by_bytes.TryPush(0, 1, std::string(4, 'c')));
  EXPECT_EQ(by_bytes.bytes(), 10u);
  EXPECT_EQ(by_bytes.Clear(), 2u);
  EXPECT_EQ(by_bytes.bytes(), 0u);
  EXPECT_TRUE(by_bytes.empty());
}

}  // namespace
}  // namespace geokv::transport
