#include "core/sim/crdt_history.h"

#include <set>
#include <utility>

namespace geokv::sim {

using crdt::CrdtType;
using crdt::Dot;

void CrdtHistory::AckPending(int node) {
  for (CrdtOpRecord& op : pending_[node]) {
    ++acked_count_;
    acked_[op.key].push_back(std::move(op));
  }
  pending_[node].clear();
}

namespace {

std::string DotString(const Dot& d) {
  return "(" + std::to_string(d.replica) + "," + std::to_string(d.counter) + ")";
}

void CheckKernel(const std::string& key, const std::vector<CrdtOpRecord>& ops,
                 const crdt::DotKernel* kernel, std::vector<std::string>* errors) {
  std::set<std::pair<std::string, Dot>> expected;
  for (const CrdtOpRecord& op : ops) {
    if (!op.minted) continue;
    bool retired = false;
    for (const CrdtOpRecord& other : ops) {
      if (other.retired.Contains(*op.minted)) {
        retired = true;
        break;
      }
    }
    if (!retired) expected.emplace(op.value, *op.minted);
  }
  std::set<std::pair<std::string, Dot>> actual;
  if (kernel != nullptr) {
    for (const auto& [value, dots] : kernel->entries()) {
      for (const Dot& d : dots) actual.emplace(value, d);
    }
  }
  for (const auto& [v, d] : expected) {
    if (!actual.count({v, d})) {
      errors->push_back("key " + key + ": acknowledged '" + v + "' dot " + DotString(d) + " lost");
    }
  }
  for (const auto& [v, d] : actual) {
    if (!expected.count({v, d})) {
      errors->push_back("key " + key + ": '" + v + "' dot " + DotString(d) +
                        " present but removed/overwritten or never acknowledged");
    }
  }
}

}  // namespace

std::vector<std::string> CrdtHistory::Check(
    const std::map<std::string, crdt::CrdtValue, std::less<>>& final_states) const {
  std::vector<std::string> errors;
  for (const auto& [key, ops] : acked_) {
    auto it = final_states.find(key);
    const crdt::CrdtValue* v = it == final_states.end() ? nullptr : &it->second;
    const CrdtType type = ops.front().type;
    if (v != nullptr && v->type() != type) {
      errors.push_back("key " + key + ": wrong type in final state");
      continue;
    }
    switch (type) {
      case CrdtType::kSet:
        CheckKernel(key, ops, v ? &v->As<crdt::OrSet>()->kernel() : nullptr, &errors);
        break;
      case CrdtType::kMvReg:
        CheckKernel(key, ops, v ? &v->As<crdt::MvRegister>()->kernel() : nullptr, &errors);
        break;
      case CrdtType::kCounter: {
        int64_t sum = 0;
        for (const CrdtOpRecord& op : ops) sum += op.delta;
        int64_t got = v ? v->As<crdt::PnCounter>()->Value() : 0;
        if (got != sum) {
          errors.push_back("key " + key + ": counter " + std::to_string(got) + ", acknowledged sum " +
                           std::to_string(sum));
        }
        break;
      }
      case CrdtType::kLww: {
        const CrdtOpRecord* last = nullptr;
        for (const CrdtOpRecord& op : ops) {
          if (last == nullptr || last->ts < op.ts) last = &op;
        }
        std::optional<std::string> want;
        if (!last->lww_delete) want = last->value;
        std::optional<std::string> got = v ? v->As<crdt::LwwRegister>()->Get() : std::nullopt;
        if (got != want) {
          errors.push_back("key " + key + ": lww holds " + (got ? "'" + *got + "'" : "nothing") +
                           ", last acknowledged write is " + (want ? "'" + *want + "'" : "a delete"));
        }
        break;
      }
    }
  }
  return errors;
}

}  // namespace geokv::sim
