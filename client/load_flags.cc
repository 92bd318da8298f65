// Closed-loop flags and result printing (see load_flags.h).
#include "client/load_flags.h"

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

// Strings, parsed here, so that a malformed value is bad usage (exit 2) like every other.
ABSL_FLAG(std::string, concurrency, "4", "bench: calls kept outstanding (closed loop), 1 to 1024");
ABSL_FLAG(std::string, duration, "10s", "bench: measured period, e.g. 10s or 500ms");
ABSL_FLAG(std::string, warmup, "1s", "bench: uncounted warm-up before it, e.g. 1s (0 = none)");
ABSL_FLAG(bool, json, false, "bench: print one JSON object instead of text");

namespace attn {
namespace {

constexpr int kMaxConcurrency = 1024;
constexpr absl::Duration kMaxDuration = absl::Hours(24);

// A duration flag ("10s", "1.5m", "500ms"; "0" only when `zero_ok`), at most a day.
absl::StatusOr<absl::Duration> ParseDurationFlag(const char* flag, const std::string& text,
                                                 bool zero_ok) {
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) || duration < absl::ZeroDuration() ||
      duration > kMaxDuration || (!zero_ok && duration == absl::ZeroDuration())) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, "=", text, ": use a duration with a unit, e.g. 10s or 500ms, ",
        zero_ok ? "from 0" : "above 0", " up to 24h"));
  }
  return duration;
}

}  // namespace

absl::StatusOr<LoadOptions> LoadOptionsFromFlags() {
  LoadOptions options;
  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  if (!absl::SimpleAtoi(concurrency, &options.concurrency) || options.concurrency < 1 ||
      options.concurrency > kMaxConcurrency) {
    return absl::InvalidArgumentError(
        absl::StrCat("--concurrency=", concurrency, ": use a number from 1 to ", kMaxConcurrency));
  }
  absl::StatusOr<absl::Duration> duration =
      ParseDurationFlag("--duration", absl::GetFlag(FLAGS_duration), false);
  if (!duration.ok()) return duration.status();
  absl::StatusOr<absl::Duration> warmup =
      ParseDurationFlag("--warmup", absl::GetFlag(FLAGS_warmup), true);
  if (!warmup.ok()) return warmup.status();
  options.duration = *duration;
  options.warmup = *warmup;
  return options;
}

int PrintLoadResult(const LoadSubject& subject, const LoadOptions& options,
                    const LoadResult& result) {
  std::cout << (absl::GetFlag(FLAGS_json) ? LoadReportJson(subject, options, result)
                                          : LoadReportText(subject, options, result));
  return result.errors.empty() ? 0 : 1;
}

}  // namespace attn
