// Client: talks to geokv nodes over ZeroMQ with the client protocol (node.fbs Request /
// Response), for the C ABI's geokv_connect, the CLI and tests.
//
// Any node serves any key (a node that holds no replica of a key's shard proxies the
// request to its region's holder; a follower forwards strong operations to the shard
// leader), but a request is cheapest at the node that holds the key's shard.
//
// Routing (docs/placement.md, "Routing"; ClientOptions::route_by_map, on by default): on
// its first keyed request (get, put, delete, cas, add, set and mvreg operations) the client
// fetches the cluster map (Op::kClusterMap) from its endpoints, within that request's
// timeout. Its region is ClientOptions::region, or else the region of the node whose client
// address in the map is the endpoint that answered (else the first configured endpoint the
// map lists). From then on a keyed request goes first to the client address of the node
// that holds the key's shard in that region, when the map says that node is up or
// draining; otherwise, and for every other request, to the endpoints in order as below.
// Sockets to nodes found in the map are made on demand, per lane. With CURVE and one server
// key per endpoint, only configured endpoints are routed to (the map carries no keys); with
// one key for several endpoints, that key is used for every node. A node that served a
// request by proxy answers it all the same, with a redirect hint (Response::map_version,
// redirect_node); an answer that names a newer map version than the client's makes the
// next keyed request fetch the map again first (once per version announced). A routed node
// that does not answer at all is passed over for kAvoidMs and the map fetched again. A map that
// cannot be fetched or decoded is never the caller's error: requests go to the endpoints as
// without routing, and the fetch is tried again after kMapRetryMs. counters() tells how
// much was routed.
//
// A request goes to one node at a time. Outcomes, as geokv.h documents them:
//  - kUnavailable (or kBusy): the node refused before anything took effect; the request
//    moves on to the next endpoint at once.
//  - kTimeout: no answer within timeout_ms (or the node's own deadline passed); a write
//    may or may not have been applied. The next attempt, and every later request, starts
//    at the next endpoint (a paused or dead node costs one timeout, not one per request).
//    Reads are re-sent there. A write is re-sent there only when that is safe whatever
//    the key's mode (Resendable below) and always under its session; otherwise the call
//    fails with kTimeout and the caller decides.
// Every write carries a session: a random client id and a sequence number (per write, the
// same on every re-send), which the cluster uses as the Paxos session so that a re-sent
// strong write is applied once. EINTR is retried, never reported.
//
// Concurrency: one Client carries many requests at once. Each concurrent call runs on a
// lane: its own sockets (one per endpoint, and one per routed-to node, sharing the Client's
// one ZeroMQ context and I/O thread) and its own session, so that each session has at most
// one write in flight and exactly-once holds (a session keeps only its highest applied
// sequence number). Lanes are made on demand, up to kLanesMax; beyond that a call waits for
// a free lane. A single thread always reuses the same lane (and session). The routing
// state (map, region, passed-over nodes, counters) is shared by all lanes.
//
// Thread-safety: Call and counters may be called from any number of threads at once.
// Ownership: Connect returns the only owner; destroy it only once no call is running.
#ifndef GEOKV_CORE_SERVER_CLIENT_H_
#define GEOKV_CORE_SERVER_CLIENT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/engine/cluster_map.h"
#include "core/engine/request.h"

namespace zmq {
class socket_t;
}  // namespace zmq

namespace geokv {

struct ClientOptions {
  std::vector<std::string> endpoints;  // "tcp://host:port", tried in order
  int64_t timeout_ms = 5000;           // per request, unless the request sets its own
  // CURVE: the servers' public key(s) (Z85, one per endpoint or one for all) and this
  // client's key pair. Empty: plain TCP.
  std::vector<std::string> server_public_keys_z85;
  std::string public_key_z85;
  std::string secret_key_z85;
  // Routing by the cluster map (see above). false: every request goes to the endpoints in
  // order, as before routing existed.
  bool route_by_map = true;
  // This client's region by name (as the map names regions); empty: the region of the node
  // behind the endpoint that answered the map request. A name the map does not have turns
  // routing off for that map (requests go to the endpoints).
  std::string region;
};

// What routing did so far (Client::counters). Monotonic except map_version.
struct ClientCounters {
  uint64_t routed = 0;         // keyed requests sent first to the node the map names
  uint64_t map_fetches = 0;    // cluster maps received and decoded (the first included)
  uint64_t map_refreshes = 0;  // of those, fetched again after the first: a newer version was
                               // announced, or a routed node did not answer
  uint64_t redirects = 0;      // answers with a redirect hint (served by proxy: see above)
  uint64_t map_version = 0;    // version of the map in use (0: none yet)
};

class Client {
 public:
  // Validates options (kInvalidArgument naming the problem) and creates the sockets; does
  // not wait for a connection (ZeroMQ connects in the background).
  static StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` and waits for its response (request.id, and for a write client_id and
  // seq, are assigned here). A non-OK transport outcome is returned as the Response's
  // status (kTimeout, kUnavailable).
  Response Call(Request request);

  // Whether a write of this op may be re-sent to another node after an unknown outcome:
  // applied once under its session when the key is strong, and idempotent in every
  // eventual mode too. add (a CRDT counter is not idempotent), mv_put (a second sibling)
  // and policy_remove (a second one reports "no rule") are not.
  static bool Resendable(Op op);

  // The session of the lane a single-threaded caller uses.
  uint64_t client_id() const;

  // Routing counters so far (a consistent-enough snapshot: each field is read atomically).
  ClientCounters counters() const;

  // Concurrent calls beyond this many wait for a free lane.
  static constexpr size_t kLanesMax = 256;
  // Sockets a lane keeps to routed-to nodes that are not configured endpoints; past this
  // many it closes them all and starts again.
  static constexpr size_t kRoutedSocketsMax = 64;
  // A routed-to node that did not answer is passed over this long.
  static constexpr int64_t kAvoidMs = 5000;
  // After a map fetch that failed, the next keyed request fetches again once this passed.
  static constexpr int64_t kMapRetryMs = 2000;

 private:
  struct Lane;
  struct Context;
  explicit Client(ClientOptions options);
  StatusOr<std::unique_ptr<Lane>> NewLane();
  // Takes an idle lane (the most recently used first) or makes one.
  StatusOr<std::unique_ptr<Lane>> Acquire();
  void Release(std::unique_ptr<Lane> lane);
  // Where an attempt goes: a configured endpoint (its index), or a node of the map.
  struct Target {
    size_t endpoint = SIZE_MAX;                   // SIZE_MAX: a routed-to node
    placement::NodeId node = placement::kNoNode;  // the map's node (routed attempts)
    std::string address;
  };
  // The map in use and this client's region in it; immutable once installed.
  struct Route {
    placement::ClusterMap map;
    std::optional<placement::RegionId> region;  // none: the map cannot tell; no routing
  };
  using SteadyTime = std::chrono::steady_clock::time_point;

  // Sends `request` to `routed` (if any) and then the endpoints from preferred_, as the
  // header comment says, until `deadline` (if any) ends the attempts. *answered (if
  // given) is the target whose answer is returned.
  Response CallOn(Lane& lane, Request request, const std::optional<Target>& routed,
                  std::optional<SteadyTime> deadline = std::nullopt, Target* answered = nullptr);
  // The lane's socket to `target` (made on first use for a routed-to node).
  zmq::socket_t& Socket(Lane& lane, const Target& target);
  // Routing of a keyed request: fetches the map first when there is none yet or a newer
  // one was announced (one lane at a time; the others go on with what there is), then
  // names the node to try first, if any.
  std::optional<Target> RouteFor(Lane& lane, const Request& request, int64_t timeout_ms);
  void FetchMap(Lane& lane, int64_t timeout_ms, bool refresh);
  // What an answer (or a routed node's silence) says of the map in use.
  void Observe(const Response& response, const std::optional<Target>& routed, bool routed_timed_out);
  bool CurveKeyPerEndpoint() const;

  const ClientOptions options_;
  std::unique_ptr<Context> context_;  // the one ZeroMQ context; outlives every lane
  std::mutex mu_;
  std::condition_variable lane_freed_;
  std::vector<std::unique_ptr<Lane>> idle_;  // guarded by mu_
  size_t lanes_ = 0;                         // made so far; guarded by mu_
  uint64_t first_client_id_ = 0;             // set at Connect
  std::atomic<size_t> preferred_{0};         // endpoint that answered last

  // Routing state, shared by the lanes.
  mutable std::mutex route_mu_;
  std::shared_ptr<const Route> route_;              // guarded by route_mu_
  bool fetching_ = false;                           // a lane fetches the map; guarded by route_mu_
  uint64_t announced_version_ = 0;                  // newest version an answer named; route_mu_
  uint64_t fetched_for_version_ = 0;                // newest announced version fetched for; route_mu_
  SteadyTime retry_fetch_at_{};                     // no first fetch before; route_mu_
  std::map<placement::NodeId, SteadyTime> avoid_;   // routed nodes passed over until; route_mu_
  std::atomic<uint64_t> routed_{0}, map_fetches_{0}, map_refreshes_{0}, redirects_{0};
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_CLIENT_H_
