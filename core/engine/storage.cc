#include "core/engine/storage.h"

namespace geokv::storage {

StatusOr<Durability> ParseDurability(std::string_view text) {
  if (text == "sync") return Durability::kSync;
  if (text == "write") return Durability::kWrite;
  if (text == "none") return Durability::kNone;
  return Status(Code::kInvalidArgument,
                "durability must be \"sync\", \"write\" or \"none\", not \"" + std::string(text) + "\"");
}

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kSync: return "sync";
    case Durability::kWrite: return "write";
    case Durability::kNone: return "none";
  }
  return "?";
}

void WriteBatch::Put(std::string_view table, std::string_view key, std::string_view value) {
  ops_.push_back(Op{false, std::string(table), std::string(key), std::string(value)});
  bytes_ += key.size() + value.size();
}

void WriteBatch::Delete(std::string_view table, std::string_view key) {
  ops_.push_back(Op{true, std::string(table), std::string(key), {}});
  bytes_ += key.size();
}

Status Storage::Put(std::string_view table, std::string_view key, std::string_view value,
                    Durability durability) {
  WriteBatch batch;
  batch.Put(table, key, value);
  return Write(batch, durability);
}

Status Storage::Delete(std::string_view table, std::string_view key, Durability durability) {
  WriteBatch batch;
  batch.Delete(table, key);
  return Write(batch, durability);
}

}  // namespace geokv::storage
