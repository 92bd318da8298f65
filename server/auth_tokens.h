// Bearer-token authentication (--auth_tokens_file): the file holds one token per line (blank
// lines and lines starting with '#' are ignored); a call must carry `authorization: Bearer
// <token>` with one of them. Tokens are compared in constant time (every token, every byte) and
// never logged. Reload() re-reads the file (on SIGHUP); a failed reload keeps the old tokens.
// Thread-safe.
#ifndef ATTNSERVE_SERVER_AUTH_TOKENS_H_
#define ATTNSERVE_SERVER_AUTH_TOKENS_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"

namespace attn {

class AuthTokens {
 public:
  // Reads `path`; an unreadable file or one without tokens is an error.
  static absl::StatusOr<std::unique_ptr<AuthTokens>> Load(const std::string& path);

  // Re-reads the file; returns how many tokens it now holds.
  absl::StatusOr<int> Reload();

  // OK when `authorization` is "Bearer <a known token>"; UNAUTHENTICATED otherwise (the message
  // never repeats what was sent).
  absl::Status Check(const std::optional<std::string>& authorization) const;

 private:
  explicit AuthTokens(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const std::vector<std::string>> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_AUTH_TOKENS_H_
