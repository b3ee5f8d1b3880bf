#include "core/server/node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "core/engine/memory_storage.h"
#include "tests/testing/temp_dir.h"

namespace geokv {
namespace {

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config;
    config.data_dir = dir_.Sub("node");
    config.limits.key_bytes_max = 16;
    config.limits.value_bytes_max = 32;
    auto node = Node::Open(config);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    node_ = std::move(node).value();
  }
  testing::TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(NodeTest, PutGetDeleteScan) {
  ASSERT_TRUE(node_->Put("a/1", "x").ok());
  ASSERT_TRUE(node_->Put("a/2", "y").ok());
  ASSERT_TRUE(node_->Put("b", "z").ok());
  EXPECT_EQ(*node_->Get("a/1"), "x");
  auto scan = node_->Scan("a/", "", 10);
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->size(), 2u);
  ASSERT_TRUE(node_->Delete("a/1").ok());
  EXPECT_EQ(node_->Get("a/1").status().code(), Code::kNotFound);
}

TEST_F(NodeTest, LimitsAreEnforcedAndNothingIsLost) {
  ASSERT_TRUE(node_->Put("k", "kept").ok());
  EXPECT_EQ(node_->Put("", "v").code(), Code::kInvalidArgument);
  EXPECT_EQ(node_->Put(std::string(17, 'k'), "v").code(), Code::kKeyTooLarge);
  EXPECT_TRUE(node_->Put(std::string(16, 'k'), "v").ok());
  EXPECT_EQ(node_->Put("k", std::string(33, 'v')).code(), Code::kValueTooLarge);
  EXPECT_TRUE(node_->Put("k2", std::string(32, 'v')).ok());
  EXPECT_EQ(node_->Get("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(node_->Delete(std::string(17, 'k')).code(), Code::kKeyTooLarge);
  EXPECT_EQ(node_->Scan("", "", 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(*node_->Get("k"), "kept");
}

TEST_F(NodeTest, ClosedNodeRefusesWork) {
  ASSERT_TRUE(node_->Close().ok());
  EXPECT_TRUE(node_->Close().ok());
  EXPECT_EQ(node_->Put("k", "v").code(), Code::kClosed);
  EXPECT_EQ(node_->Get("k").status().code(), Code::kClosed);
  EXPECT_EQ(node_->Scan("", "", 1).status().code(), Code::kClosed);
}

// Issue 10 item 2: Close while other threads are inside calls. Every call either completes
// or fails with kClosed; none touches the closed storage (the sanitizer presets run this).
TEST_F(NodeTest, CloseWhileCallsAreInFlight) {
  std::atomic<bool> go{false};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0;; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i % 32);
        Status s = i % 3 == 0   ? node_->Put(key, "v")
                   : i % 3 == 1 ? node_->Get(key).status()
                                : node_->Scan("t", "", 16).status();
        if (s.code() == Code::kClosed) return;
        if (!s.ok() && s.code() != Code::kNotFound) {
          ++unexpected;
          return;
        }
      }
    });
  }
  go = true;
  ASSERT_TRUE(node_->Put("before", "close").ok());
  ASSERT_TRUE(node_->Close().ok());
  for (auto& th : threads) th.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_TRUE(node_->closed());
}

TEST(NodeOpenTest, EmbeddedStoreIsSmallOnDisk) {
  testing::TempDir dir;
  Config config;
  config.data_dir = dir.Sub("small");
  {
    auto node = Node::Open(config);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE((*node)->Put("key" + std::to_string(i), "value").ok());
  }
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(config.data_dir)) {
    if (e.is_regular_file()) bytes += e.file_size();
  }
  EXPECT_LE(bytes, 8u << 20) << "an embedded store of 10 keys takes " << bytes << " bytes";
}

TEST(NodeOpenTest, InvalidConfigIsRefused) {
  Config config;
  config.data_dir = "/tmp/unused";
  config.limits.key_bytes_max = 0;
  EXPECT_EQ(Node::Open(config).status().code(), Code::kConfig);
  config.limits.key_bytes_max = 10;
  EXPECT_EQ(Node::Open(config, nullptr).status().code(), Code::kInvalidArgument);
}

TEST(NodeOpenTest, RunsOverMemoryStorage) {
  Config config;
  auto node = Node::Open(config, std::make_unique<storage::MemoryStorage>());
  ASSERT_TRUE(node.ok());
  ASSERT_TRUE((*node)->Put("k", "v").ok());
  EXPECT_EQ(*(*node)->Get("k"), "v");
}

}  // namespace
}  // namespace geokv
