// Request ids and trace context (see request_id.h).
#include "server/request_id.h"

#include <optional>
#include <random>

#include "absl/base/thread_annotations.h"

namespace attn {
namespace {

bool SaneRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\\') return false;
  }
  return true;
}

bool IsLowerHex(const std::string& s, size_t begin, size_t count) {
  for (size_t i = begin; i < begin + count; ++i) {
    const char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"
bool WellFormedTraceparent(const std::string& t) {
  return t.size() == 55 && t[2] == '-' && t[35] == '-' && t[52] == '-' && IsLowerHex(t, 0, 2) &&
         IsLowerHex(t, 3, 32) && IsLowerHex(t, 36, 16) && IsLowerHex(t, 53, 2);
}

}  // namespace

std::string NewRequestId() {
  static std::mutex mu;
  static std::mt19937_64 rng ABSL_GUARDED_BY(mu){std::random_device{}()};
  uint64_t high, low;
  {
    std::lock_guard lock(mu);
    high = rng();
    low = rng();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(high >> (60 - 4 * i)) & 0xf];
    id[16 + i] = kHex[(low >> (60 - 4 * i)) & 0xf];
  }
  return id;
}

RequestTrace TraceFromValues(const std::string* request_id, const std::string* traceparent) {
  RequestTrace trace;
  trace.request_id =
      request_id != nullptr && SaneRequestId(*request_id) ? *request_id : NewRequestId();
  if (traceparent != nullptr && WellFormedTraceparent(*traceparent)) {
    trace.traceparent = *traceparent;
  }
  return trace;
}

RequestTrace TraceFromMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto value = [&](const char* key) -> std::optional<std::string> {
    auto it = metadata.find(key);
    if (it == metadata.end()) return std::nullopt;
    return std::string(it->second.data(), it->second.size());
  };
  const std::optional<std::string> id = value("x-request-id");
  const std::optional<std::string> traceparent = value("traceparent");
  return TraceFromValues(id ? &*id : nullptr, traceparent ? &*traceparent : nullptr);
}

}  // namespace attn
