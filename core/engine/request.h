// Request and Response: one client operation on the node and its answer, as the engine
// sees them, and their FlatBuffers encoding (replication/wire/node.fbs) used by the client
// protocol and by nodes forwarding strong operations to a shard's leader.
//
// Value types. Decoding never trusts its input (size bound + Verifier + range checks).
#ifndef GEOKV_CORE_ENGINE_REQUEST_H_
#define GEOKV_CORE_ENGINE_REQUEST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "core/engine/policy.h"

namespace geokv {

// Operation codes. Stored and sent (node.fbs Op); never renumber.
enum class Op : uint8_t {
  kGet = 0, kPut = 1, kDelete = 2, kCas = 3, kAdd = 4,
  kSetAdd = 5, kSetRemove = 6, kSetMembers = 7, kSetContains = 8,
  kMvGet = 9, kMvPut = 10, kMvDelete = 11,
  kPolicySet = 12, kPolicyRemove = 13, kPolicyList = 14,
  kStatus = 15,
  kPartition = 16,  // admin (WAN emulation): key = region, value "1" cut / "0" reconnect
  kHeal = 17,       // admin: remove every emulated partition
  kReloadKeys = 18, // admin: re-read the CURVE allowlists and peer keys (as SIGHUP does)
  kNodeState = 19,  // admin: key = node id (decimal), value = "draining", "up", "down" or
                    // "removed" (committed in the metadata group; see ClusterMap)
  kPlacement = 20,  // between nodes only: value = a cluster_map.fbs Command (a node's
                    // ReportLoad, the metadata leader's SetLeader)
  kClusterMap = 21, // the cluster map as the answering node applied it: value = its
                    // FlatBuffers encoding (placement::ClusterMap::Decode), number = version
  kNodeAdd = 22,    // admin: adds a node to the running cluster (committed in the metadata
                    // group): key = its id (decimal; the next unused one), value =
                    // "<region name> <peer address> <client address>" (single spaces)
  kPolicyCheck = 23,  // between nodes only: the metadata leader asks shard `delta`'s leader
                      // (a linearizable read) whether a policy change would change the mode
                      // of a key holding data there: key = prefix, context = the
                      // metadata leader's rules deciding keys under it before and after
                      // (Policy::Under, each encoded as bytes); OK or kInvalidArgument
                      // naming the key
  kShardSnapshot = 24,  // admin (backups): strong shard `delta` as of a read index at its
                        // leader, read in chunks: key = token ("" takes a new snapshot), value
                        // = byte offset (decimal); answer: value = the chunk, number = the
                        // snapshot's total bytes, context = the token (Engine::SnapshotOf's
                        // format). kNotFound once the token expired (or the leader changed)
  kCrdtDump = 25,       // admin (backups): the eventual keys of shard `delta`, as a node
                        // serving it holds them (proxied there), after key `key` ("" from
                        // the first): values = key, encoded CrdtValue, key, ...; found = true
                        // when more keys may follow
};
inline constexpr uint8_t kOpMax = 25;
std::string_view OpName(Op op);

struct Request {
  uint64_t id = 0;
  Op op = Op::kGet;
  std::string key;            // key, or policy prefix
  std::string value;          // put value, set element, cas new value
  std::string expected;       // cas: expected current value
  bool has_expected = false;  // cas: false means "expect the key to be absent"
  int64_t delta = 0;          // add
  std::string context;        // mvreg: causal context the writer read
  Mode mode = Mode::kStrong;  // policy set
  uint32_t timeout_ms = 0;    // 0: the node's default
  // Set by a node that forwards a strong write to the shard leader: the Paxos session the
  // leader proposes it under, so a duplicated or retried forward is applied once.
  uint64_t client_id = 0;
  uint64_t seq = 0;
};

// Response::redirect_node when there is no redirect (as placement::kNoNode).
inline constexpr uint32_t kNoRedirect = UINT32_MAX;

struct Response {
  uint64_t id = 0;
  Status status;
  bool found = false;
  std::string value;
  std::vector<std::string> values;  // siblings, members, policy rules, status lines
  int64_t number = 0;
  std::string context;
  // Redirect hint (docs/placement.md, "Routing"): set by a node that served a client's
  // keyed request by proxy because it holds no replica of the key's shard. The request was
  // served all the same; a client routing by the cluster map learns that its map may be
  // stale. map_version: the version of the map the node went by (0: no hint);
  // redirect_node: the node holding the shard in that node's region (kNoRedirect: none).
  uint64_t map_version = 0;
  uint32_t redirect_node = kNoRedirect;
  // The node whose CRDT replica of the key's shard served an eventual operation (its write
  // is durable there when acknowledged); kNoRedirect for any other operation.
  uint32_t served_by = kNoRedirect;
};

// Bound of every message between nodes and clients: room for the largest single-key CRDT
// state (the disseminator's own bound) plus an envelope.
inline constexpr size_t kMessageBytesMax = 24u << 20;

std::string EncodeRequest(const Request& r);
StatusOr<Request> DecodeRequest(std::string_view bytes);
std::string EncodeResponse(const Response& r);
StatusOr<Response> DecodeResponse(std::string_view bytes);

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_REQUEST_H_
