// PeerQueue: the bounded queue of frames waiting to go to one peer, ordered by release time.
//
// It is both the send queue (while the peer is unreachable or its socket buffer is full)
// and the WAN emulator's timer queue (a delayed message waits here until its release
// time). Entries come out by (release_us, push order): without jitter release times grow
// with push order, so the link stays FIFO; with jitter they may not, and the queue then
// reorders exactly as the emulated delays say.
//
// Bounds: at most messages_max entries and bytes_max frame bytes, checked by TryPush (the
// transport answers kBusy when it fails). Each entry carries an expiry time; an expired
// entry is dropped when it reaches the head, so a message held for a long-dead peer is not
// delivered minutes later into a protocol that has moved on.
//
// Ownership: owns its frames. Thread-safety: none; ZmqTransport guards it with its mutex.
#ifndef GEOKV_REPLICATION_TRANSPORT_PEER_QUEUE_H_
#define GEOKV_REPLICATION_TRANSPORT_PEER_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace geokv::transport {

class PeerQueue {
 public:
  struct Entry {
    int64_t release_us = 0;  // not sent before this time
    int64_t expire_us = 0;   // dropped if still queued at this time
    uint64_t seq = 0;        // push order, breaks release-time ties
    std::string frame;
  };

  PeerQueue(size_t messages_max, size_t bytes_max)
      : messages_max_(messages_max), bytes_max_(bytes_max) {}

  // False (and nothing queued) when the entry would exceed either bound.
  bool TryPush(int64_t release_us, int64_t expire_us, std::string frame);

  bool empty() const { return heap_.empty(); }
  // The entry to go next. Requires !empty().
  const Entry& Front() const { return heap_.front(); }
  void PopFront();

  // Earliest release time, or INT64_MAX when empty.
  int64_t NextReleaseUs() const;

  // Drops everything; returns how many entries were dropped.
  size_t Clear();

  size_t size() const { return heap_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  // Constant after construction.
  const size_t messages_max_;
  const size_t bytes_max_;

  std::vector<Entry> heap_;  // min-heap by (release_us, seq)
  size_t bytes_ = 0;
  uint64_t next_seq_ = 0;
};

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_PEER_QUEUE_H_
