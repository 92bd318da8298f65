// The closed-loop load generator (see load_generator.h).
#include "client/load_generator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>


namespace attn {
namespace {

using Clock = std::chrono::steady_clock;

// What one client thread saw in the measured period.
struct ClientTally {
  std::vector<double> latencies_ms;
  std::map<std::string, int64_t> errors;
};

}  // namespace

LoadResult RunClosedLoop(const LoadOptions& options,
                         absl::FunctionRef<LoadCall(int client)> make_call) {
  std::mutex mu;
  std::condition_variable changed;
  int ready = 0;
  bool started = false;
  Clock::time_point measure_from, measure_until;
  std::vector<ClientTally> tallies(options.concurrency);
  std::vector<std::thread> clients;
  clients.reserve(options.concurrency);
  for (int i = 0; i < options.concurrency; ++i) {
    clients.emplace_back([&, i] {
      LoadCall call = make_call(i);
      Clock::time_point from, until;
      {
        std::unique_lock lock(mu);
        ++ready;
        changed.notify_all();
        changed.wait(lock, [&] { return started; });
        from = measure_from;
        until = measure_until;
      }
      ClientTally& tally = tallies[i];
      for (Clock::time_point sent = Clock::now(); sent < until;) {
        const absl::Status status = call();
        const Clock::time_point done = Clock::now();
        if (done >= from && done < until) {
          if (status.ok()) {
            tally.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(done - sent).count());
          } else {
            ++tally.errors[absl::StatusCodeToString(status.code())];
          }
        }
        sent = done;
      }
    });
  }
  {
    // The clock starts once every client has built its call.
    std::unique_lock lock(mu);
    changed.wait(lock, [&] { return ready == options.concurrency; });
    const Clock::time_point now = Clock::now();
    measure_from = now + absl::ToChronoNanoseconds(options.warmup);
    measure_until = measure_from + absl::ToChronoNanoseconds(options.duration);
    started = true;
    changed.notify_all();
  }
  for (std::thread& client : clients) client.join();

  LoadResult result;
  result.seconds = absl::ToDoubleSeconds(options.duration);
  for (ClientTally& tally : tallies) {
    result.latencies_ms.insert(result.latencies_ms.end(), tally.latencies_ms.begin(),
                               tally.latencies_ms.end());
    for (const auto& [code, count] : tally.errors) result.errors[code] += count;
  }
  std::sort(result.latencies_ms.begin(), result.latencies_ms.end());
  return result;
}

}  // namespace attn
