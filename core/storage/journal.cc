#include "core/storage/journal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace geokv::storage::journal {

namespace {

constexpr char kPrefix[] = "WiredTigerLog.";
constexpr size_t kDigits = 10;          // WiredTigerLog.%010u
constexpr uint64_t kHeaderBytes = 16;   // WT_LOG_RECORD before its body
constexpr uint64_t kAlignDefault = 128; // WT_LOG_ALIGN
constexpr uint64_t kSectorBytes = 512;  // the unit a crash writes or loses
constexpr uint8_t kCommitType = 0x81;   // WT_LOGREC_COMMIT (1), packed
constexpr uint8_t kMessageType = 0x83;  // WT_LOGREC_MESSAGE (3), packed: recovery skips it

uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void StoreU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t Crc32c(const void* data, size_t size) {
  static const auto fn = wiredtiger_crc32c_func();
  return fn(data, size);
}

struct LogFile {
  uint32_t number = 0;
  std::string name;
};

// WiredTigerLog.<10 digits> files in dir, oldest first.
StatusOr<std::vector<LogFile>> ListLogFiles(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<LogFile> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kPrefix, 0) != 0 || name.size() != sizeof kPrefix - 1 + kDigits) continue;
    const std::string digits = name.substr(sizeof kPrefix - 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    files.push_back(LogFile{static_cast<uint32_t>(std::stoul(digits)), name});
  }
  if (ec) return IOError("cannot list the journal files in " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end(), [](const LogFile& a, const LogFile& b) { return a.number < b.number; });
  return files;
}

// Where recovery starts reading: the checkpoint LSN WiredTiger keeps in its turtle file
// ("checkpoint_lsn=(file,offset)"); (0, 0) when it cannot be read, so that everything is read.
std::pair<uint32_t, uint64_t> CheckpointLsn(const std::string& dir) {
  std::ifstream in(dir + "/WiredTiger.turtle");
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  const size_t at = s.find("checkpoint_lsn=(");
  if (at == std::string::npos) return {0, 0};
  unsigned long file = 0, offset = 0;
  if (std::sscanf(s.c_str() + at, "checkpoint_lsn=(%lu,%lu)", &file, &offset) != 2) return {0, 0};
  return {static_cast<uint32_t>(file), offset};
}

// A journal file mapped read-only.
class Mapped {
 public:
  static StatusOr<std::unique_ptr<Mapped>> Open(const std::string& path) {
    auto m = std::unique_ptr<Mapped>(new Mapped());
    m->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m->fd_ < 0) return IOError("cannot read journal file " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(m->fd_, &st) != 0) return IOError("cannot stat journal file " + path + ": " + std::strerror(errno));
    m->size_ = static_cast<uint64_t>(st.st_size);
    if (m->size_ == 0) return m;
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, m->fd_, 0);
    if (p == MAP_FAILED) return IOError("cannot map journal file " + path + ": " + std::strerror(errno));
    m->data_ = static_cast<const uint8_t*>(p);
    ::madvise(p, m->size_, MADV_SEQUENTIAL);
    return m;
  }
  ~Mapped() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  Mapped() = default;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

class FileScanner {
 public:
  FileScanner(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}

  // The allocation size from the file's descriptor record (offset 0), else the default.
  uint64_t Align() const {
    if (size_ < kHeaderBytes) return kAlignDefault;
    const uint64_t len = LoadU32(data_);
    const bool power_of_two = len != 0 && (len & (len - 1)) == 0;
    if (power_of_two && len >= kAlignDefault && len <= (1u << 20) && len <= size_ && ChecksumOk(0, len)) return len;
    return kAlignDefault;
  }

  bool ChecksumOk(uint64_t off, uint64_t len) const {
    scratch_.assign(data_ + off, data_ + off + len);
    std::memset(scratch_.data() + 4, 0, 4);
    return Crc32c(scratch_.data(), scratch_.size()) == LoadU32(data_ + off + 4);
  }

  // A readable record starts at off (its length is sane and its checksum matches).
  bool Readable(uint64_t off, uint64_t align) const {
    if (off + kHeaderBytes > size_) return false;
    const uint64_t len = LoadU32(data_ + off);
    return len >= align && len % align == 0 && off + len <= size_ && ChecksumOk(off, len);
  }

  bool AllZero(uint64_t from, uint64_t to) const {
    static constexpr uint8_t kZeros[4096] = {};
    to = std::min(to, size_);
    for (uint64_t i = from; i < to; i += sizeof kZeros) {
      if (std::memcmp(data_ + i, kZeros, std::min<uint64_t>(sizeof kZeros, to - i)) != 0) return false;
    }
    return true;
  }

  // Some 512-byte sector overlapping [from, to) is all zeros (bytes past the end of the
  // file count as zeros): what an unfinished write leaves.
  bool HasZeroSector(uint64_t from, uint64_t to) const {
    for (uint64_t s = from / kSectorBytes * kSectorBytes; s < to; s += kSectorBytes) {
      if (s >= size_ || AllZero(s, s + kSectorBytes)) return true;
    }
    return false;
  }

  // The next readable record at or after `from` (on the alignment grid), or the file size.
  uint64_t NextReadable(uint64_t from, uint64_t align) const {
    for (uint64_t q = from; q + kHeaderBytes <= size_; q += align) {
      if (Readable(q, align)) return q;
    }
    return size_;
  }

  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  mutable std::vector<uint8_t> scratch_;
};

std::string Range(uint64_t a, uint64_t b) { return std::to_string(a) + ".." + std::to_string(b); }

}  // namespace

std::string Damage::Describe() const {
  std::string s = "journal file " + file + ", bytes " + Range(offset, end) + ": " + why;
  if (commits_after > 0) {
    s += "; " + std::to_string(commits_after) + " committed transaction" + (commits_after == 1 ? "" : "s") +
         " after it";
  }
  return s;
}

StatusOr<Scan> Check(const std::string& dir) {
  auto files = ListLogFiles(dir);
  if (!files.ok()) return files.status();
  const auto [ckpt_file, ckpt_offset] = CheckpointLsn(dir);
  Scan scan;
  std::vector<Damage> found;
  std::vector<uint64_t> commits_before;  // per entry of `found`: commits seen before it
  uint64_t commits = 0;
  for (const LogFile& f : *files) {
    if (f.number < ckpt_file) continue;  // recovery does not read it
    auto mapped = Mapped::Open(dir + "/" + f.name);
    if (!mapped.ok()) return mapped.status();
    const uint64_t size = (*mapped)->size();
    ++scan.files;
    scan.bytes += size;
    if (size == 0) continue;
    FileScanner file((*mapped)->data(), size);
    const uint64_t align = file.Align();
    uint64_t off = 0;
    if (f.number == ckpt_file && ckpt_offset % align == 0 && ckpt_offset <= size) off = ckpt_offset;
    while (off < size) {
      Damage d;
      if (off + kHeaderBytes > size) {
        if (file.AllZero(off, size)) break;
        d.why = "a record header cut short by the end of the file";
      } else {
        const uint64_t len = LoadU32(file.data() + off);
        if (len == 0) {
          if (file.AllZero(off, size)) break;  // the end of this file's data
          d.why = "a stretch of zeros inside the journal";
        } else if (len < align || len % align != 0) {
          d.why = "a record with an impossible length (" + std::to_string(len) + ")";
          d.garbage = !file.HasZeroSector(off, off + align);
        } else if (off + len > size) {
          d.why = "a record cut short by the end of the file";
        } else if (!file.ChecksumOk(off, len)) {
          d.why = "a record that fails its checksum";
          d.garbage = !file.HasZeroSector(off, off + len);
        } else {
          ++scan.records;
          const uint16_t flags = static_cast<uint16_t>(file.data()[off + 8] | file.data()[off + 9] << 8);
          // Compressed or encrypted bodies hide their type: count them as commits.
          if (len > kHeaderBytes && (flags != 0 || file.data()[off + kHeaderBytes] == kCommitType)) ++commits;
          off += len;
          continue;
        }
      }
      d.file = f.name;
      d.offset = off;
      d.end = file.NextReadable(off + align, align);
      d.next_in_file = d.end < size;
      if (d.garbage) d.why += " (its bytes were changed, not left unwritten by a crash)";
      found.push_back(std::move(d));
      commits_before.push_back(commits);
      off = found.back().end;
    }
  }
  for (size_t i = 0; i < found.size(); ++i) {
    found[i].commits_after = commits - commits_before[i];
    if (found[i].garbage || found[i].commits_after > 0) scan.damage.push_back(std::move(found[i]));
  }
  return scan;
}

Status DropDamage(const std::string& dir, const std::vector<Damage>& damage) {
  for (const Damage& d : damage) {
    const std::string path = dir + "/" + d.file;
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return IOError("cannot open journal file " + path + ": " + std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    if (d.next_in_file) {
      // One record of a type recovery skips, exactly as long as the damaged stretch.
      const uint64_t len = d.end - d.offset;
      if (len < kAlignDefault || len > UINT32_MAX) return Internal("journal stretch of impossible size " + std::to_string(len));
      std::vector<uint8_t> rec(len, 0);
      StoreU32(rec.data(), static_cast<uint32_t>(len));
      rec[kHeaderBytes] = kMessageType;
      static constexpr char kText[] = "geokv repair: damaged journal records dropped here";
      std::memcpy(rec.data() + kHeaderBytes + 1, kText, sizeof kText);  // NUL included; the rest is padding
      StoreU32(rec.data() + 4, Crc32c(rec.data(), rec.size()));
      if (::pwrite(fd, rec.data(), rec.size(), static_cast<off_t>(d.offset)) != static_cast<ssize_t>(rec.size())) {
        return IOError("cannot write journal file " + path + ": " + std::strerror(errno));
      }
    } else if (::ftruncate(fd, static_cast<off_t>(d.offset)) != 0) {
      // The file's data ends where the damage starts; recovery goes on with the next file.
      return IOError("cannot truncate journal file " + path + ": " + std::strerror(errno));
    }
    if (::fsync(fd) != 0) return IOError("cannot sync journal file " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace geokv::storage::journal
