#include "replication/transport/frame.h"

#include <gtest/gtest.h>

#include <string>

namespace geokv::transport {
namespace {

std::string Payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 37 + 11);
  return s;
}

std::string ValidFrame(std::string_view payload, NodeId sender = 42) {
  StatusOr<std::string> f = EncodeFrame(sender, payload);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? *f : std::string();
}

TEST(FrameTest, RoundTrip) {
  for (size_t n : {0u, 1u, 31u, 32u, 1000u, 70000u}) {
    std::string payload = Payload(n);
    std::string frame = ValidFrame(payload, 7);
    ASSERT_EQ(frame.size(), kFrameHeaderBytes + n);
    StatusOr<FrameView> v = DecodeFrame(frame);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->sender, 7u);
    EXPECT_EQ(v->payload, payload);
  }
}

TEST(FrameTest, EveryTruncationIsRejected) {
  std::string frame = ValidFrame(Payload(100));
  for (size_t len = 0; len < frame.size(); ++len) {
    StatusOr<FrameView> v = DecodeFrame(std::string_view(frame).substr(0, len));
    EXPECT_FALSE(v.ok()) << "length " << len;
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), Code::kCorruption) << len;
    }
  }
}

TEST(FrameTest, TrailingGarbageIsRejected) {
  std::string frame = ValidFrame(Payload(10)) + "x";
  EXPECT_FALSE(DecodeFrame(frame).ok());
}

// Every value of every byte, not just one bit: 255 alternatives per position.
TEST(FrameTest, EverySingleByteChangeIsRejectedAndTheChecksumAloneCatchesIt) {
  for (size_t n : {0u, 1u, 64u}) {
    const std::string frame = ValidFrame(Payload(n));
    ASSERT_TRUE(FrameChecksumMatches(frame));
    size_t tried = 0;
    for (size_t pos = 0; pos < frame.size(); ++pos) {
      for (int mask = 1; mask < 256; ++mask) {
        std::string bad = frame;
        bad[pos] = static_cast<char>(bad[pos] ^ mask);
        // The checksum by itself, whatever the magic/version/length checks would say.
        ASSERT_FALSE(FrameChecksumMatches(bad)) << "pos " << pos << " mask " << mask;
        ASSERT_FALSE(DecodeFrame(bad).ok()) << "pos " << pos << " mask " << mask;
        ++tried;
      }
    }
    EXPECT_EQ(tried, frame.size() * 255);
  }
}

TEST(FrameTest, ChecksumCoversSenderAndLength) {
  // A frame re-labelled with another sender but the old checksum must fail.
  std::string a = ValidFrame("hello", 1);
  std::string b = ValidFrame("hello", 2);
  std::string forged = b.substr(0, 16) + a.substr(16);
  EXPECT_FALSE(FrameChecksumMatches(forged));
  EXPECT_FALSE(DecodeFrame(forged).ok());
}

TEST(FrameTest, OversizeIsRejectedBothWays) {
  std::string payload = Payload(1001);
  StatusOr<std::string> e = EncodeFrame(1, payload, 1000);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
  std::string frame = ValidFrame(payload);
  StatusOr<FrameView> d = DecodeFrame(frame, 1000);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kCorruption);
  EXPECT_TRUE(DecodeFrame(frame, 1001).ok());
}

TEST(FrameTest, WrongMagicAndVersion) {
  std::string frame = ValidFrame("payload");
  std::string magic = frame;
  magic[0] = 'X';
  StatusOr<FrameView> m = DecodeFrame(magic);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kCorruption);
  EXPECT_NE(m.status().message().find("magic"), std::string::npos);

  std::string version = frame;
  version[4] = static_cast<char>(kFrameVersion + 1);
  StatusOr<FrameView> v = DecodeFrame(version);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kVersion);
}

TEST(FrameTest, LengthFieldLyingAboutSizeIsRejectedWithoutOverread) {
  std::string frame = ValidFrame("abc");
  frame[8] = static_cast<char>(0x7f);  // claims ~2 GiB
  EXPECT_FALSE(DecodeFrame(frame).ok());
}

}  // namespace
}  // namespace geokv::transport
