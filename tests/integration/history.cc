#include "tests/integration/history.h"

#include <cstdlib>

#include "tests/integration/harness.h"

namespace geokv::integration {

int64_t ParseValue(const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end == nullptr || *end != '\0') return -1;  // never written by the tests
  return v;
}

Outcome Recorder::Do(Client& client, int client_id, int region, const Request& request, int64_t* read,
                     Response* response) {
  sim::HistoryOp op;
  op.client = client_id;
  op.region = region;
  op.key = request.key;
  const bool is_read = request.op == Op::kGet;
  switch (request.op) {
    case Op::kPut: op.op = "put"; op.value = ParseValue(request.value); break;
    case Op::kGet: op.op = "get"; break;
    case Op::kAdd: op.op = "add"; op.value = request.delta; break;
    case Op::kCas:
      op.op = "cas";
      op.value = ParseValue(request.value);
      op.arg = request.has_expected ? ParseValue(request.expected) : 0;
      break;
    default: {
      std::lock_guard lock(mu_);
      unexpected_.push_back("Recorder::Do: unsupported op " + std::string(OpName(request.op)));
      return Outcome::kUnexpected;
    }
  }
  op.call_us = NowUs();
  const Response r = client.Call(request);
  op.return_us = NowUs();
  if (response != nullptr) *response = r;
  const Code code = r.status.code();

  Outcome outcome = Outcome::kOk;
  if (r.status.ok() || (is_read && code == Code::kNotFound) || (request.op == Op::kCas && code == Code::kConflict)) {
    op.ok = r.status.ok() || is_read;
    switch (request.op) {
      case Op::kGet: op.out = r.status.ok() ? ParseValue(r.value) : 0; break;
      case Op::kAdd: op.out = r.number; break;
      default: break;
    }
    if (read != nullptr) {
      if (request.op == Op::kGet || request.op == Op::kAdd) *read = op.out;
      if (request.op == Op::kPut || (request.op == Op::kCas && op.ok)) *read = op.value;
      if (request.op == Op::kCas && !op.ok) *read = r.found ? ParseValue(r.value) : 0;
    }
  } else if (code == Code::kUnavailable || code == Code::kBusy) {
    return is_read ? Outcome::kFailedRead : Outcome::kRefused;
  } else if (code == Code::kTimeout) {
    if (is_read) return Outcome::kFailedRead;
    op.unknown = true;
    op.return_us = 0;  // no bound: it may take effect at any later time
    outcome = Outcome::kUnknown;
  } else {
    // Any other answer is a bug in the product (or the test): recorded as unknown so the
    // history stays sound, and reported.
    std::lock_guard lock(mu_);
    unexpected_.push_back(std::string(OpName(request.op)) + " " + request.key + " -> " + r.status.ToString());
    if (is_read) return Outcome::kUnexpected;
    op.unknown = true;
    op.return_us = 0;
    ops_.push_back(op);
    return Outcome::kUnexpected;
  }
  std::lock_guard lock(mu_);
  ops_.push_back(op);
  return outcome;
}

std::vector<sim::HistoryOp> Recorder::Snapshot() const {
  std::lock_guard lock(mu_);
  return ops_;
}

std::vector<std::string> Recorder::Unexpected() const {
  std::lock_guard lock(mu_);
  return unexpected_;
}

size_t Recorder::AckedWritesSince(int64_t from_us, std::optional<int> region) const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& op : ops_) {
    if (op.op == "get" || op.unknown || op.call_us < from_us) continue;
    if (region && op.region != *region) continue;
    n++;
  }
  return n;
}

std::string CheckLinearizable(const std::vector<sim::HistoryOp>& ops, const std::string& path, uint64_t id,
                              bool* illegal) {
  if (illegal != nullptr) *illegal = false;
  sim::PaxosSimResult run;
  run.seed = id;
  run.history = ops;
  sim::WriteHistories(path, {run});
  std::vector<uint64_t> undecided;
  auto rejected = sim::PorcupineRejects(PorcupinePath(), path, &undecided);
  if (!rejected) return "the Porcupine checker " + PorcupinePath() + " could not be run on " + path;
  if (rejected->empty()) return "";
  if (!undecided.empty()) return "Porcupine gave no verdict within its time limit on the history in " + path;
  if (illegal != nullptr) *illegal = true;
  return "Porcupine rejected the history in " + path;
}

}  // namespace geokv::integration
