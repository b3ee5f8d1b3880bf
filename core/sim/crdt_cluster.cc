#include "core/sim/crdt_cluster.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace geokv::sim {

using crdt::CrdtType;

CrdtCluster::CrdtCluster(Network* net, CrdtClusterOptions options)
    : net_(net), options_(std::move(options)), history_(net->size()) {
  const int n = net_->size();
  images_.resize(n);
  dead_stats_.resize(n);
  nodes_.resize(n);
  wall_offset_us_ = options_.wall_offset_us;
  wall_offset_us_.resize(n, 0);
  for (int i = 0; i < n; ++i) {
    Restart(i);
    net_->Attach(i, [this, i](int from, std::string bytes) {
      if (!nodes_[i]) return;
      Wall(i);
      nodes_[i]->Step(static_cast<crdt::ReplicaId>(from), bytes);
      if (on_step) on_step(i);
    });
    ScheduleTick(i);
  }
}

Time CrdtCluster::LocalNow(int i) const {
  Time skew = i < static_cast<int>(options_.clock_skew_us.size()) ? options_.clock_skew_us[i] : 0;
  // Keep local time positive (HLC physical ms is meaningful only from 0 up).
  return std::max<Time>(0, net_->Now() + skew);
}

int64_t CrdtCluster::WallNow(int i) const {
  const double ppm = i < static_cast<int>(options_.wall_drift_ppm.size()) ? options_.wall_drift_ppm[i] : 0;
  const Time t = net_->Now();
  return options_.wall_epoch_us + wall_offset_us_[i] + t + static_cast<int64_t>(static_cast<double>(t) * ppm / 1e6);
}

void CrdtCluster::SetWallOffset(int i, int64_t offset_us) { wall_offset_us_[i] = offset_us; }

void CrdtCluster::Wall(int i) { nodes_[i]->ObserveWallClock(WallNow(i)); }

void CrdtCluster::ScheduleTick(int i) {
  net_->At(net_->Now() + options_.tick_us, [this, i]() {
    OnTick(i);
    ScheduleTick(i);
  });
}

void CrdtCluster::OnTick(int i) {
  if (!nodes_[i]) return;
  Wall(i);
  nodes_[i]->Tick(LocalNow(i));
  HandleReady(i);
}

void CrdtCluster::HandleReady(int i) {
  crdt::Disseminator& d = *nodes_[i];
  crdt::DurableImage& img = images_[i];
  while (d.HasReady()) {
    crdt::Ready r = d.GetReady();
    // 1. persist (synchronously: this tick is the group commit)
    for (const auto& k : r.erased_keys) img.states.erase(k);  // before states: a key may be re-created
    for (auto& [k, v] : r.states) img.states[k] = std::move(v);
    for (auto& b : r.log_append) img.log.push_back(std::move(b));
    if (r.log_first_seq != 0) {
      std::erase_if(img.log, [&](const crdt::DeltaBatch& b) { return b.seq < r.log_first_seq; });
    }
    if (r.open_batch) img.open_batch = std::move(*r.open_batch);
    if (r.progress) img.progress = std::move(r.progress);
    history_.AckPending(i);
    // 2. send
    for (auto& m : r.messages) net_->Send(i, static_cast<int>(m.to), std::move(m.bytes));
    // 3. apply: the machine already holds the state; nothing else to update here.
    d.Advance();
  }
}

void CrdtCluster::Crash(int i) {
  if (!nodes_[i]) return;
  const crdt::DisseminatorStats& s = nodes_[i]->stats();
  for (auto field : {&crdt::DisseminatorStats::bytes_sent, &crdt::DisseminatorStats::hlc_remote_ahead,
                     &crdt::DisseminatorStats::transfers_completed, &crdt::DisseminatorStats::messages_bad,
                     &crdt::DisseminatorStats::tombstones_collected, &crdt::DisseminatorStats::hlc_refused,
                     &crdt::DisseminatorStats::entries_over_limit, &crdt::DisseminatorStats::states_over_held_cap,
                     &crdt::DisseminatorStats::transfer_states_too_large,
                     &crdt::DisseminatorStats::states_unreadable}) {
    dead_stats_[i].*field += s.*field;
  }
  nodes_[i].reset();
  history_.DropPending(i);
  net_->SetUp(i, false);
}

void CrdtCluster::Restart(int i) {
  if (nodes_[i]) return;
  crdt::DisseminatorOptions o = options_.node;
  o.self = static_cast<crdt::ReplicaId>(i);
  o.regions = static_cast<uint32_t>(net_->size());
  nodes_[i] = std::make_unique<crdt::Disseminator>(o, images_[i]);
  if (!nodes_[i]->open_status().ok()) {
    errors_.push_back("region " + std::to_string(i) + " restarted without its state: " +
                      nodes_[i]->open_status().message());
  }
  Wall(i);
  nodes_[i]->Tick(LocalNow(i));
  net_->SetUp(i, true);
}

crdt::HlcTimestamp CrdtCluster::LwwStamp(int i, const std::string& key) const {
  const crdt::CrdtValue* v = nodes_[i]->Get(key);
  const crdt::LwwRegister* l = v ? v->As<crdt::LwwRegister>() : nullptr;
  return l ? l->stamp() : crdt::HlcTimestamp{};
}

crdt::HlcTimestamp CrdtCluster::CheckLwwTookEffect(int i, const std::string& key, const std::optional<std::string>& value,
                                                   const crdt::HlcTimestamp& before) {
  const crdt::CrdtValue* v = nodes_[i]->Get(key);
  const crdt::LwwRegister* l = v ? v->As<crdt::LwwRegister>() : nullptr;
  if (l != nullptr && l->written() && l->Get() == value && before < l->stamp()) return l->stamp();
  errors_.push_back("region " + std::to_string(i) + ": an acknowledged " + (value ? "put" : "delete") + " of key " +
                    key.substr(0, 16) + " did not take effect (key stamp " +
                    (l ? std::to_string(l->stamp().physical_ms) : std::string("none")) + " ms, wall clock " +
                    std::to_string(WallNow(i) / 1000) + " ms)");
  return nodes_[i]->clock().last();
}

Status CrdtCluster::SetAdd(int i, const std::string& key, const std::string& element) {
  Wall(i);
  crdt::Disseminator& d = *nodes_[i];
  CrdtOpRecord op;
  op.type = CrdtType::kSet;
  op.key = key;
  op.value = element;
  const crdt::CrdtValue* before = d.Get(key);
  const crdt::OrSet* set = before ? before->As<crdt::OrSet>() : nullptr;
  if (set) {
    op.retired = set->kernel().DotsOf(element);
    op.minted = set->kernel().context().Next(static_cast<crdt::ReplicaId>(i));
  } else {
    op.minted = crdt::Dot{static_cast<crdt::ReplicaId>(i), 1};
  }
  GEOKV_RETURN_IF_ERROR(d.SetAdd(key, element));
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::SetRemove(int i, const std::string& key, const std::string& element) {
  Wall(i);
  crdt::Disseminator& d = *nodes_[i];
  CrdtOpRecord op;
  op.type = CrdtType::kSet;
  op.key = key;
  const crdt::CrdtValue* before = d.Get(key);
  if (before && before->As<crdt::OrSet>()) op.retired = before->As<crdt::OrSet>()->kernel().DotsOf(element);
  GEOKV_RETURN_IF_ERROR(d.SetRemove(key, element));
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::AddCounter(int i, const std::string& key, int64_t delta) {
  Wall(i);
  GEOKV_RETURN_IF_ERROR(nodes_[i]->AddCounter(key, delta));
  CrdtOpRecord op;
  op.type = CrdtType::kCounter;
  op.key = key;
  op.delta = delta;
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::PutLww(int i, const std::string& key, const std::string& value) {
  Wall(i);
  const crdt::HlcTimestamp before = LwwStamp(i, key);
  GEOKV_RETURN_IF_ERROR(nodes_[i]->PutLww(key, value));
  CrdtOpRecord op;
  op.type = CrdtType::kLww;
  op.key = key;
  op.value = value;
  op.ts = CheckLwwTookEffect(i, key, value, before);
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::DeleteLww(int i, const std::string& key) {
  Wall(i);
  const crdt::HlcTimestamp before = LwwStamp(i, key);
  GEOKV_RETURN_IF_ERROR(nodes_[i]->DeleteLww(key));
  CrdtOpRecord op;
  op.type = CrdtType::kLww;
  op.key = key;
  op.lww_delete = true;
  op.ts = CheckLwwTookEffect(i, key, std::nullopt, before);
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::WriteMv(int i, const std::string& key, const std::string& value, bool blind) {
  Wall(i);
  crdt::Disseminator& d = *nodes_[i];
  CrdtOpRecord op;
  op.type = CrdtType::kMvReg;
  op.key = key;
  op.value = value;
  const crdt::CrdtValue* before = d.Get(key);
  const crdt::MvRegister* reg = before ? before->As<crdt::MvRegister>() : nullptr;
  if (reg && !blind) op.retired = reg->ReadContext();
  op.minted = reg ? reg->kernel().context().Next(static_cast<crdt::ReplicaId>(i))
                  : crdt::Dot{static_cast<crdt::ReplicaId>(i), 1};
  crdt::CausalContext read = op.retired;
  GEOKV_RETURN_IF_ERROR(d.WriteMv(key, value, read));
  history_.Record(i, std::move(op));
  return Status::Ok();
}

Status CrdtCluster::DeleteMv(int i, const std::string& key) {
  Wall(i);
  crdt::Disseminator& d = *nodes_[i];
  CrdtOpRecord op;
  op.type = CrdtType::kMvReg;
  op.key = key;
  const crdt::CrdtValue* before = d.Get(key);
  if (before && before->As<crdt::MvRegister>()) op.retired = before->As<crdt::MvRegister>()->ReadContext();
  crdt::CausalContext read = op.retired;
  GEOKV_RETURN_IF_ERROR(d.DeleteMv(key, read));
  history_.Record(i, std::move(op));
  return Status::Ok();
}

uint64_t CrdtCluster::Sum(uint64_t crdt::DisseminatorStats::*field) const {
  uint64_t n = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    n += dead_stats_[i].*field + (nodes_[i] ? nodes_[i]->stats().*field : 0);
  }
  return n;
}

uint64_t CrdtCluster::bytes_sent() const { return Sum(&crdt::DisseminatorStats::bytes_sent); }

}  // namespace geokv::sim
