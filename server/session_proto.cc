// Sessions between proto and the store (see session_proto.h).
#include "server/session_proto.h"

#include "absl/strings/str_cat.h"

namespace attn {

namespace pb = attention::v1;

absl::StatusOr<SessionConfig> SessionConfigFromProto(const pb::CreateSessionRequest& request) {
  if (request.kv_dtype() != pb::DATA_TYPE_UNSPECIFIED &&
      request.kv_dtype() != pb::DATA_TYPE_FLOAT32 && request.kv_dtype() != pb::DATA_TYPE_BFLOAT16) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_dtype must be FLOAT32 or BFLOAT16; got ",
                     pb::DataType_IsValid(request.kv_dtype())
                         ? pb::DataType_Name(request.kv_dtype())
                         : absl::StrCat(request.kv_dtype())));
  }
  return SessionConfig{.num_layers = request.num_layers(),
                       .num_heads = request.num_heads(),
                       .num_kv_heads = request.num_kv_heads(),
                       .head_dim = request.head_dim(),
                       .value_dim = request.value_dim(),
                       .bf16 = request.kv_dtype() == pb::DATA_TYPE_BFLOAT16,
                       .max_tokens = request.max_tokens(),
                       .idle_timeout = absl::Seconds(request.idle_timeout_s())};
}

void FillSession(const SessionInfo& info, pb::Session* session) {
  const SessionConfig& c = info.config;
  session->set_session_id(info.id);
  session->set_num_layers(static_cast<int32_t>(c.num_layers));
  session->set_num_heads(static_cast<int32_t>(c.num_heads));
  session->set_num_kv_heads(static_cast<int32_t>(c.num_kv_heads));
  session->set_head_dim(static_cast<int32_t>(c.head_dim));
  session->set_value_dim(static_cast<int32_t>(c.value_dim));
  session->set_kv_dtype(c.bf16 ? pb::DATA_TYPE_BFLOAT16 : pb::DATA_TYPE_FLOAT32);
  session->set_max_tokens(c.max_tokens);
  session->set_idle_timeout_s(static_cast<int32_t>(absl::ToInt64Seconds(c.idle_timeout)));
  for (int64_t tokens : info.layer_tokens) session->add_layer_tokens(tokens);
  session->set_page_tokens(info.page_tokens);
  session->set_bytes(info.bytes);
}

}  // namespace attn
