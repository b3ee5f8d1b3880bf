#include "core/engine/request.h"

#include "replication/wire/aligned.h"
#include "replication/wire/node_generated.h"

namespace geokv {

namespace fb = geokv::wire::node;

namespace {

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(flatbuffers::FlatBufferBuilder& b, std::string_view s) {
  return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string ToString(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

std::string Finish(flatbuffers::FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

// `bytes` must be aligned (see wire::AlignedBytes).
template <typename T>
const T* Verified(std::string_view bytes, const char* what, Status* error) {
  if (bytes.size() > kMessageBytesMax) {
    *error = Corruption(std::string(what) + " is larger than " + std::to_string(kMessageBytesMax) + " bytes");
    return nullptr;
  }
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!verifier.VerifyBuffer<T>(nullptr)) {
    *error = Corruption(std::string(what) + " failed verification");
    return nullptr;
  }
  return flatbuffers::GetRoot<T>(bytes.data());
}

}  // namespace

std::string_view OpName(Op op) {
  static constexpr std::string_view kNames[] = {
      "get", "put", "delete", "cas", "add", "sadd", "srem", "smembers", "scontains",
      "mvget", "mvput", "mvdelete", "policy-set", "policy-remove", "policy-list", "status",
      "partition", "heal", "reload-keys", "node-state", "placement", "cluster-map", "node-add",
      "policy-check", "shard-snapshot", "crdt-dump"};
  auto i = static_cast<size_t>(op);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string EncodeRequest(const Request& r) {
  flatbuffers::FlatBufferBuilder b(128 + r.key.size() + r.value.size() + r.expected.size() + r.context.size());
  auto key = Bytes(b, r.key), value = Bytes(b, r.value), expected = Bytes(b, r.expected),
       context = Bytes(b, r.context);
  fb::RequestBuilder rb(b);
  rb.add_id(r.id);
  rb.add_op(static_cast<fb::Op>(r.op));
  rb.add_key(key);
  rb.add_value(value);
  rb.add_expected(expected);
  rb.add_has_expected(r.has_expected);
  rb.add_delta(r.delta);
  rb.add_context(context);
  rb.add_mode(static_cast<uint8_t>(r.mode));
  rb.add_timeout_ms(r.timeout_ms);
  rb.add_client_id(r.client_id);
  rb.add_seq(r.seq);
  b.Finish(rb.Finish());
  return Finish(b);
}

StatusOr<Request> DecodeRequest(std::string_view bytes) {
  Status error;
  const wire::AlignedBytes aligned(bytes);
  const auto* m = Verified<fb::Request>(aligned.view(), "request", &error);
  if (m == nullptr) return error;
  if (static_cast<uint8_t>(m->op()) > kOpMax) return Corruption("request has an unknown op");
  if (m->mode() > static_cast<uint8_t>(Mode::kSet)) return Corruption("request has an unknown mode");
  Request r;
  r.id = m->id();
  r.op = static_cast<Op>(m->op());
  r.key = ToString(m->key());
  r.value = ToString(m->value());
  r.expected = ToString(m->expected());
  r.has_expected = m->has_expected();
  r.delta = m->delta();
  r.context = ToString(m->context());
  r.mode = static_cast<Mode>(m->mode());
  r.timeout_ms = m->timeout_ms();
  r.client_id = m->client_id();
  r.seq = m->seq();
  return r;
}

std::string EncodeResponse(const Response& r) {
  flatbuffers::FlatBufferBuilder b(128 + r.value.size());
  auto message = b.CreateString(r.status.message());
  auto value = Bytes(b, r.value), context = Bytes(b, r.context);
  std::vector<flatbuffers::Offset<fb::Blob>> blobs;
  blobs.reserve(r.values.size());
  for (const auto& v : r.values) blobs.push_back(fb::CreateBlob(b, Bytes(b, v)));
  auto values = b.CreateVector(blobs);
  fb::ResponseBuilder rb(b);
  rb.add_id(r.id);
  rb.add_code(static_cast<int32_t>(r.status.code()));
  rb.add_message(message);
  rb.add_found(r.found);
  rb.add_value(value);
  rb.add_values(values);
  rb.add_number(r.number);
  rb.add_context(context);
  rb.add_map_version(r.map_version);
  rb.add_redirect_node(r.redirect_node);
  rb.add_served_by(r.served_by);
  b.Finish(rb.Finish());
  return Finish(b);
}

StatusOr<Response> DecodeResponse(std::string_view bytes) {
  Status error;
  const wire::AlignedBytes aligned(bytes);
  const auto* m = Verified<fb::Response>(aligned.view(), "response", &error);
  if (m == nullptr) return error;
  if (m->code() < 0 || m->code() > static_cast<int32_t>(kCodeMax)) {
    return Corruption("response has an unknown status code");
  }
  Response r;
  r.id = m->id();
  auto code = static_cast<Code>(m->code());
  r.status = code == Code::kOk ? Status::Ok()
                               : Status(code, m->message() ? m->message()->str() : std::string());
  r.found = m->found();
  r.value = ToString(m->value());
  if (m->values() != nullptr) {
    for (const auto* blob : *m->values()) r.values.push_back(ToString(blob->bytes()));
  }
  r.number = m->number();
  r.context = ToString(m->context());
  r.map_version = m->map_version();
  r.redirect_node = m->redirect_node();
  r.served_by = m->served_by();
  return r;
}

}  // namespace geokv
