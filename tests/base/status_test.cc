#include "base/status.h"

#include <gtest/gtest.h>

namespace geokv {
namespace {

TEST(StatusTest, OkIsCheapAndEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(sizeof(Status), sizeof(void*));
}

TEST(StatusTest, CarriesCodeAndMessageThroughCopies) {
  Status s = NotFound("no such key");
  Status copy = s;
  EXPECT_FALSE(copy.ok());
  EXPECT_TRUE(copy.IsNotFound());
  EXPECT_EQ(copy.ToString(), "NOT_FOUND: no such key");
  copy = Status::Ok();
  EXPECT_TRUE(copy.ok());
  EXPECT_FALSE(s.ok());
}

Status FailsThenReturns() {
  GEOKV_RETURN_IF_ERROR(IOError("disk"));
  return Status::Ok();
}

TEST(StatusTest, ReturnIfErrorPropagates) {
  EXPECT_EQ(FailsThenReturns().code(), Code::kIOError);
}

TEST(StatusOrTest, HoldsValueOrError) {
  StatusOr<std::string> v(std::string("x"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "x");
  StatusOr<std::string> e(Corruption("bad"));
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kCorruption);
}

TEST(StatusTest, EveryCodeHasAName) {
  for (int c = 0; c <= static_cast<int>(kCodeMax); ++c) {
    EXPECT_NE(CodeName(static_cast<Code>(c)), "UNKNOWN") << c;
  }
}

}  // namespace
}  // namespace geokv
