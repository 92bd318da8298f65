// The server's log lines: start-up facts and one line per request, as "key=value" text or as one
// JSON object per line (--log_format=json), through the process-wide spdlog logger.
// SetLogFormat is called once at start-up; LogEvent is thread-safe.
#ifndef ATTNSERVE_SERVER_REQUEST_LOG_H_
#define ATTNSERVE_SERVER_REQUEST_LOG_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace attn {

enum class LogFormat { kText, kJson };

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);
// Installs the pattern for `format` on the default logger.
void SetLogFormat(LogFormat format);

// Ordered key/value pairs of one log line; numbers stay numbers in JSON.
class LogFields {
 public:
  LogFields& Add(absl::string_view key, absl::string_view value);
  LogFields& Add(absl::string_view key, int64_t value);

 private:
  friend void LogEvent(spdlog::level::level_enum, absl::string_view, const LogFields&);
  struct Field {
    std::string key;
    std::string value;
    bool quoted;
  };
  std::vector<Field> fields_;
};

void LogEvent(spdlog::level::level_enum level, absl::string_view event, const LogFields& fields);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_REQUEST_LOG_H_
