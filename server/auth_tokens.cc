// Bearer-token authentication (see auth_tokens.h).
#include "server/auth_tokens.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace attn {
namespace {

absl::StatusOr<std::vector<std::string>> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --auth_tokens_file ", path));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    const std::string token(absl::StripAsciiWhitespace(line));
    if (token.empty() || token[0] == '#') continue;
    tokens.push_back(token);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--auth_tokens_file ", path, " holds no token"));
  }
  return tokens;
}

// Equal contents, in time that depends only on the lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    difference |= x ^ y;
  }
  return difference == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuthTokens>> AuthTokens::Load(const std::string& path) {
  std::unique_ptr<AuthTokens> auth(new AuthTokens(path));
  absl::StatusOr<int> count = auth->Reload();
  if (!count.ok()) return count.status();
  return auth;
}

absl::StatusOr<int> AuthTokens::Reload() {
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokens(path_);
  if (!tokens.ok()) return tokens.status();
  const int count = static_cast<int>(tokens->size());
  std::lock_guard lock(mu_);
  tokens_ = std::make_shared<const std::vector<std::string>>(*std::move(tokens));
  return count;
}

absl::Status AuthTokens::Check(const std::optional<std::string>& authorization) const {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError("missing authorization metadata: send \"Bearer <token>\"");
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWith(*authorization, kBearer)) {
    return absl::UnauthenticatedError("the authorization metadata is not \"Bearer <token>\"");
  }
  const std::string presented = authorization->substr(kBearer.size());
  std::shared_ptr<const std::vector<std::string>> tokens;
  {
    std::lock_guard lock(mu_);
    tokens = tokens_;
  }
  bool match = false;
  for (const std::string& token : *tokens) match |= ConstantTimeEquals(presented, token);
  if (!match) return absl::UnauthenticatedError("the bearer token is not valid");
  return absl::OkStatus();
}

}  // namespace attn
