#include "replication/transport/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace geokv::transport {
namespace {

constexpr size_t kKeyFileBytesMax = 4096;
constexpr size_t kKeyListFileBytesMax = 1 << 20;

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

StatusOr<std::string> ReadSmallFile(const std::string& path, size_t bytes_max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IOError("cannot open " + path + ": " + std::strerror(errno));
  std::string data;
  data.resize(bytes_max + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return IOError("cannot read " + path);
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > bytes_max) {
    return Status(Code::kConfig, path + ": larger than " + std::to_string(bytes_max) + " bytes");
  }
  return data;
}

Status WriteNewFile(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return InvalidArgument(path + " exists; refusing to overwrite a key");
    return IOError("cannot create " + path + ": " + std::strerror(errno));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = IOError("cannot write " + path + ": " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return IOError("cannot sync " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Status CheckZ85Key(std::string_view key) {
  if (key.size() != kCurveKeyZ85Chars) {
    return InvalidArgument("a CURVE key is " + std::to_string(kCurveKeyZ85Chars) +
                           " Z85 characters, got " + std::to_string(key.size()));
  }
  std::string copy(key);
  uint8_t binary[32];
  if (zmq_z85_decode(binary, copy.c_str()) == nullptr) {
    return InvalidArgument("not a Z85 key");
  }
  return Status::Ok();
}

StatusOr<CurveKeyPair> GenerateCurveKeyPair() {
  char pub[kCurveKeyZ85Chars + 1];
  char sec[kCurveKeyZ85Chars + 1];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Internal(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{pub, sec};
}

StatusOr<std::string> CurvePublicFromSecret(std::string_view secret_z85) {
  GEOKV_RETURN_IF_ERROR(CheckZ85Key(secret_z85));
  std::string sec(secret_z85);
  char pub[kCurveKeyZ85Chars + 1];
  if (zmq_curve_public(pub, sec.c_str()) != 0) {
    return Internal(std::string("zmq_curve_public: ") + zmq_strerror(zmq_errno()));
  }
  return std::string(pub);
}

Status WriteCurveKeyPairFiles(const CurveKeyPair& pair, const std::string& secret_path,
                              const std::string& public_path) {
  GEOKV_RETURN_IF_ERROR(CheckZ85Key(pair.secret_z85));
  GEOKV_RETURN_IF_ERROR(CheckZ85Key(pair.public_z85));
  GEOKV_RETURN_IF_ERROR(WriteNewFile(secret_path, pair.secret_z85 + "\n", 0600));
  return WriteNewFile(public_path, pair.public_z85 + "\n", 0644);
}

StatusOr<std::string> ReadCurveKeyFile(const std::string& path) {
  StatusOr<std::string> data = ReadSmallFile(path, kKeyFileBytesMax);
  if (!data.ok()) return data.status();
  std::string_view key = Trim(*data);
  if (Status s = CheckZ85Key(key); !s.ok()) {
    return Status(Code::kConfig, path + ": " + s.message());
  }
  return std::string(key);
}

StatusOr<std::vector<std::string>> ReadCurveKeyListFile(const std::string& path) {
  StatusOr<std::string> data = ReadSmallFile(path, kKeyListFileBytesMax);
  if (!data.ok()) return data.status();
  std::vector<std::string> keys;
  std::istringstream lines(*data);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::string_view key = Trim(line);
    if (key.empty() || key.front() == '#') continue;
    if (Status s = CheckZ85Key(key); !s.ok()) {
      return Status(Code::kConfig, path + ":" + std::to_string(number) + ": " + s.message());
    }
    keys.emplace_back(key);
  }
  return keys;
}

}  // namespace geokv::transport
