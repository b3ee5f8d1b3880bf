#include "replication/transport/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace geokv::transport {
namespace {

class CurveKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/geokv-keys-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& data) {
    std::ofstream(Path(name)) << data;
  }
  std::string dir_;
};

TEST_F(CurveKeysTest, GenerateWriteReadRoundTrip) {
  StatusOr<CurveKeyPair> pair = GenerateCurveKeyPair();
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  ASSERT_TRUE(WriteCurveKeyPairFiles(*pair, Path("n.key"), Path("n.pub")).ok());
  struct stat st;
  ASSERT_EQ(stat(Path("n.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  StatusOr<std::string> sec = ReadCurveKeyFile(Path("n.key"));
  StatusOr<std::string> pub = ReadCurveKeyFile(Path("n.pub"));
  ASSERT_TRUE(sec.ok() && pub.ok());
  EXPECT_EQ(*sec, pair->secret_z85);
  EXPECT_EQ(*pub, pair->public_z85);
  StatusOr<std::string> derived = CurvePublicFromSecret(*sec);
  ASSERT_TRUE(derived.ok());
  EXPECT_EQ(*derived, *pub);
}

TEST_F(CurveKeysTest, NeverOverwrites) {
  StatusOr<CurveKeyPair> pair = GenerateCurveKeyPair();
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(WriteCurveKeyPairFiles(*pair, Path("a.key"), Path("a.pub")).ok());
  EXPECT_EQ(WriteCurveKeyPairFiles(*pair, Path("a.key"), Path("b.pub")).code(),
            Code::kInvalidArgument);
}

TEST_F(CurveKeysTest, BadFilesAreConfigErrorsNamingThePath) {
  Write("short.pub", "abc\n");
  StatusOr<std::string> k = ReadCurveKeyFile(Path("short.pub"));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kConfig);
  EXPECT_NE(k.status().message().find("short.pub"), std::string::npos);
  EXPECT_EQ(ReadCurveKeyFile(Path("missing")).status().code(), Code::kIOError);
  Write("huge.pub", std::string(10000, 'a'));
  EXPECT_EQ(ReadCurveKeyFile(Path("huge.pub")).status().code(), Code::kConfig);
  // 40 characters, but '~' is not in the Z85 alphabet.
  EXPECT_FALSE(CheckZ85Key(std::string(40, '~')).ok());
}

TEST_F(CurveKeysTest, KeyListSkipsCommentsAndNamesTheBadLine) {
  StatusOr<CurveKeyPair> a = GenerateCurveKeyPair();
  StatusOr<CurveKeyPair> b = GenerateCurveKeyPair();
  ASSERT_TRUE(a.ok() && b.ok());
  Write("allow", "# peers\n" + a->public_z85 + "\n\n  " + b->public_z85 + "  \n");
  StatusOr<std::vector<std::string>> keys = ReadCurveKeyListFile(Path("allow"));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(*keys, (std::vector<std::string>{a->public_z85, b->public_z85}));
  Write("bad", a->public_z85 + "\nnot-a-key\n");
  StatusOr<std::vector<std::string>> bad = ReadCurveKeyListFile(Path("bad"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":2:"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace geokv::transport
