#include "replication/transport/peer_queue.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

namespace geokv::transport {
namespace {

// std heap functions build a max-heap; "greater" puts the earliest entry on top.
bool Later(const PeerQueue::Entry& a, const PeerQueue::Entry& b) {
  return a.release_us != b.release_us ? a.release_us > b.release_us : a.seq > b.seq;
}

}  // namespace

bool PeerQueue::TryPush(int64_t release_us, int64_t expire_us, std::string frame) {
  if (heap_.size() >= messages_max_ || frame.size() > bytes_max_ - std::min(bytes_, bytes_max_)) {
    return false;
  }
  bytes_ += frame.size();
  heap_.push_back(Entry{release_us, expire_us, next_seq_++, std::move(frame)});
  std::push_heap(heap_.begin(), heap_.end(), Later);
  return true;
}

void PeerQueue::PopFront() {
  assert(!heap_.empty());
  std::pop_heap(heap_.begin(), heap_.end(), Later);
  bytes_ -= heap_.back().frame.size();
  heap_.pop_back();
}

int64_t PeerQueue::NextReleaseUs() const {
  return heap_.empty() ? std::numeric_limits<int64_t>::max() : heap_.front().release_us;
}

size_t PeerQueue::Clear() {
  size_t n = heap_.size();
  heap_.clear();
  bytes_ = 0;
  return n;
}

}  // namespace geokv::transport
