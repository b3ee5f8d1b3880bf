// libFuzzer over the node's inbound message paths: a peer message into Engine::Step
// (envelope, then Paxos, CRDT, forwarded requests and replies), and a client request into
// DecodeRequest. Whatever the bytes, nothing may crash, hang or leak; bad input is dropped
// and counted. The first byte picks the path and the sender.
//
//   build/fuzz/tests/fuzz/engine_message_fuzzer -max_total_time=600   (longer runs by hand)
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/engine/engine.h"
#include "core/engine/request.h"
#include "core/engine/memory_storage.h"

namespace {

class FuzzEnv final : public geokv::Env {
 public:
  int64_t NowUs() override { return now_us += 1000; }
  int64_t WallUs() override { return 1'700'000'000'000'000 + now_us; }
  void Send(uint32_t, std::string) override {}
  void ConnectPeer(uint32_t, const std::string&, const std::string&) override {}
  geokv::storage::Storage& Store() override { return store; }
  uint64_t Random() override { return ++counter; }
  int64_t now_us = 0;
  uint64_t counter = 0;
  geokv::storage::MemoryStorage store;
};

geokv::Engine& TheEngine() {
  static FuzzEnv* env = new FuzzEnv();
  static geokv::Engine* engine = [] {
    geokv::EngineOptions o;
    o.self = 0;
    o.regions = 3;
    o.shards = 2;
    auto e = geokv::Engine::Open(o, *env);
    if (!e.ok()) __builtin_trap();
    return std::move(e).value().release();
  }();
  return *engine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
    case 1:
    {  // one round with the message from one of the two peers (timers run when due)
      geokv::Engine::RoundInputs in;
      in.messages.push_back(geokv::Engine::PeerMessage{1u + data[0] % 2u, std::string(bytes)});
      TheEngine().Round(std::move(in));
      break;
    }
    case 2: {
      auto r = geokv::DecodeRequest(bytes);
      if (r.ok()) {
        // A decoded request must survive a round trip unchanged.
        auto again = geokv::DecodeRequest(geokv::EncodeRequest(*r));
        if (!again.ok() || again->key != r->key || again->value != r->value) __builtin_trap();
      }
      break;
    }
    default:
      (void)geokv::DecodeResponse(bytes);
  }
  return 0;
}
