#include "core/server/config.h"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace geokv {
namespace {

TEST(ConfigTest, DefaultsWhenEmpty) {
  auto c = Config::FromToml("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->limits.key_bytes_max, 4096u);
  EXPECT_EQ(c->limits.value_bytes_max, 1024u * 1024u);
  EXPECT_EQ(c->durability, storage::Durability::kSync);
}

TEST(ConfigTest, ReadsEveryField) {
  auto c = Config::FromToml(R"(
    data_dir = "/tmp/x"
    [limits]
    key_bytes_max = 100
    value_bytes_max = 2000
    [storage]
    durability = "write"
    group_commit_batches_max = 64
    commit_timeout_ms = 500
    cache_mb = 16
    [log]
    level = "warn"
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_EQ(c->limits.key_bytes_max, 100u);
  EXPECT_EQ(c->limits.value_bytes_max, 2000u);
  EXPECT_EQ(c->durability, storage::Durability::kWrite);
  EXPECT_EQ(c->group_commit_batches_max, 64u);
  EXPECT_EQ(c->commit_timeout_ms, 500);
  EXPECT_EQ(c->cache_mb, 16u);
  EXPECT_EQ(c->log_level, "warn");
}

void ExpectConfigError(const std::string& text, const std::string& names) {
  auto c = Config::FromToml(text, "test.toml");
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_EQ(c.status().code(), Code::kConfig);
  EXPECT_NE(c.status().message().find(names), std::string::npos)
      << "message \"" << c.status().message() << "\" should name " << names;
}

TEST(ConfigTest, ErrorsNameTheField) {
  ExpectConfigError("[limits]\nkey_bytes_max = 0", "limits.key_bytes_max");
  ExpectConfigError("[limits]\nkey_bytes_max = \"big\"", "limits.key_bytes_max");
  ExpectConfigError("[limits]\nvalue_bytes_max = -1", "limits.value_bytes_max");
  ExpectConfigError("[storage]\ndurability = \"maybe\"", "storage.durability");
  ExpectConfigError("[storage]\nfsync = true", "storage.fsync");
  ExpectConfigError("datadir = \"/x\"", "datadir");
  ExpectConfigError("limits = 3", "limits");
  ExpectConfigError("[log]\nlevel = \"loud\"", "log.level");
}

TEST(ConfigTest, SyntaxErrorsGiveFileLineAndColumn) {
  ExpectConfigError("data_dir = \"unterminated\n", "test.toml:1");
  ExpectConfigError("[limits\nkey_bytes_max = 1", "test.toml:1");
}

TEST(ConfigTest, CorruptedFileIsAConfigErrorNotACrash) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.Sub("bad.toml"), std::ios::binary);
    out << std::string("data_dir = \"\xff\xfe\x00\x01", 16) << "\n[[[";
  }
  auto c = Config::LoadFile(dir.Sub("bad.toml"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kConfig);
  EXPECT_EQ(Config::LoadFile(dir.Sub("missing.toml")).status().code(), Code::kConfig);
}

}  // namespace
}  // namespace geokv
