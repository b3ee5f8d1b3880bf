// The header-only C++ wrapper: RAII, move-only handles, exceptions with codes, optional.
#include "geokv/geokv.hpp"

#include <type_traits>

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace {

static_assert(!std::is_copy_constructible_v<geokv::db>);
static_assert(std::is_nothrow_move_constructible_v<geokv::db>);
static_assert(!std::is_copy_constructible_v<geokv::iterator>);

TEST(HppTest, PutGetEraseScan) {
  geokv::testing::TempDir dir;
  geokv::db db(dir.Sub("db"));
  db.put("a/1", "one");
  db.put("a/2", "two");
  db.put("b/1", "three");
  EXPECT_EQ(db.get("a/1"), "one");
  EXPECT_EQ(db.get("nope"), std::nullopt);
  db.erase("a/1");
  EXPECT_EQ(db.get("a/1"), std::nullopt);

  auto it = db.scan("a/");
  auto e = it.next();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->first, "a/2");
  EXPECT_EQ(e->second, "two");
  EXPECT_FALSE(it.next().has_value());
}

TEST(HppTest, ErrorsCarryTheirCode) {
  geokv::testing::TempDir dir;
  geokv::db db(dir.Sub("db"), geokv::options().key_bytes_max(4));
  try {
    db.put("toolong", "v");
    FAIL() << "expected geokv::error";
  } catch (const geokv::error& e) {
    EXPECT_EQ(e.code(), GEOKV_EKEYSIZE);
    EXPECT_NE(std::string(e.what()).find("GEOKV_EKEYSIZE"), std::string::npos);
  }
  EXPECT_THROW(geokv::db(dir.Sub("db")), geokv::error) << "second open is EBUSY";
}

TEST(HppTest, MoveTransfersOwnershipAndCloseIsExplicit) {
  geokv::testing::TempDir dir;
  geokv::db a(dir.Sub("db"));
  a.put("k", "v");
  geokv::db b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_TRUE(b);
  EXPECT_EQ(b.get("k"), "v");
  b.close();
  EXPECT_FALSE(b);
  geokv::db reopened(dir.Sub("db"));  // the lock was released by close()
  EXPECT_EQ(reopened.get("k"), "v");
}

}  // namespace
