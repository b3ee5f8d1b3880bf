// Encoding of Paxos messages as FlatBuffers (replication/wire/paxos.fbs) and verified
// decoding. Decode never trusts its input: the size bound, the FlatBuffers Verifier and
// semantic limits (entries, commands, slots per message) are checked before anything is
// read, and a bad buffer yields kCorruption.
//
// Thread-safety: free functions without shared state.
#ifndef GEOKV_REPLICATION_PAXOS_MESSAGE_H_
#define GEOKV_REPLICATION_PAXOS_MESSAGE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"
#include "replication/paxos/types.h"

namespace geokv::paxos {

// Limits applied on decode besides the byte bound (a hostile peer cannot make us allocate
// more than this per message).
inline constexpr size_t kEntriesPerMessageMax = 4096;
inline constexpr size_t kSlotsPerMessageMax = 4096;
inline constexpr size_t kCommandsPerEntryMax = 65536;
// Bytes a message adds around its payload: a message carrying one entry of one command of
// P payload bytes (or one snapshot chunk of P bytes) encodes to at most P + this. Tested
// at the edge in message_test.cc.
inline constexpr size_t kMessageOverheadBytes = 1024;
// FlatBuffers addresses a buffer with 32-bit offsets: no encoded snapshot may reach this.
inline constexpr uint64_t kSnapshotBytesMax = (uint64_t{1} << 31) - 1;

// 64-bit FNV-1a: names a snapshot in flight and checks its assembled bytes (an integrity
// check against bugs and mixed-up chunks, not against an adversary).
uint64_t HashBytes(std::string_view bytes);

std::string EncodeMessage(const Message& m);
StatusOr<Message> DecodeMessage(std::string_view bytes, size_t message_bytes_max);

}  // namespace geokv::paxos

#endif  // GEOKV_REPLICATION_PAXOS_MESSAGE_H_
