// Text or JSON log lines through spdlog (see request_log.h).
#include "server/request_log.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace attn {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Text values with spaces or quotes are quoted so a line still splits into key=value pairs.
std::string TextValue(absl::string_view s) {
  if (s.find_first_of(" \"=") == absl::string_view::npos && !s.empty()) return std::string(s);
  return JsonQuote(s);
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--log_format = \"", name, "\"; use text or json"));
}

void SetLogFormat(LogFormat format) {
  g_format = format;
  if (format == LogFormat::kJson) {
    spdlog::set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%f%z","level":"%l",%v})");
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
}

LogFields& LogFields::Add(absl::string_view key, absl::string_view value) {
  fields_.push_back({std::string(key), std::string(value), true});
  return *this;
}

LogFields& LogFields::Add(absl::string_view key, int64_t value) {
  fields_.push_back({std::string(key), absl::StrCat(value), false});
  return *this;
}

void LogEvent(spdlog::level::level_enum level, absl::string_view event, const LogFields& fields) {
  if (!spdlog::should_log(level)) return;
  std::string line;
  if (g_format == LogFormat::kJson) {
    line = absl::StrCat("\"event\":", JsonQuote(event));
    for (const auto& f : fields.fields_) {
      absl::StrAppend(&line, ",", JsonQuote(f.key), ":", f.quoted ? JsonQuote(f.value) : f.value);
    }
  } else {
    line = std::string(event);
    for (const auto& f : fields.fields_) {
      absl::StrAppend(&line, " ", f.key, "=", f.quoted ? TextValue(f.value) : f.value);
    }
  }
  spdlog::log(level, "{}", line);
}

}  // namespace attn
