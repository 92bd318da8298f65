// Tests of server/call_gate: admission up to max_inflight + max_queue with a message giving the
// numbers, refusal while draining, open streams told to end, and the quiet point of a drain.
#include "server/call_gate.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

using ::testing::HasSubstr;

TEST(CallGateTest, AdmitsUpToTheLimits) {
  CallGate gate(1, 2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gate.Admit().ok());
  const absl::Status full = gate.Admit();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()),
              HasSubstr("3 requests admitted, the limit is 1 computing (--max_inflight) + 2 "
                        "waiting (--max_queue)"));
  gate.Release();
  EXPECT_TRUE(gate.Admit().ok());
  EXPECT_EQ(gate.running(), 3);
}

class RecordingStream : public Drainable {
 public:
  void OnDrain() override { ++drained; }
  int drained = 0;
};

TEST(CallGateTest, DrainingRefusesAndEndsStreams) {
  CallGate gate(0, 0);
  RecordingStream open, closed;
  gate.RegisterStream(&open);
  gate.RegisterStream(&closed);
  gate.UnregisterStream(&closed);
  ASSERT_TRUE(gate.Admit().ok());
  gate.StartDraining();
  EXPECT_TRUE(gate.draining());
  EXPECT_EQ(open.drained, 1);
  EXPECT_EQ(closed.drained, 0);
  EXPECT_EQ(gate.Admit().code(), absl::StatusCode::kUnavailable);
  // One computation still runs: no quiet point before the deadline.
  EXPECT_FALSE(gate.WaitUntilQuiet(absl::Milliseconds(1), absl::Now() + absl::Milliseconds(30)));
  gate.Release();
  EXPECT_TRUE(gate.WaitUntilQuiet(absl::Milliseconds(1), absl::Now() + absl::Seconds(30)));
  RecordingStream late;
  gate.RegisterStream(&late);  // a stream opened during the drain ends at once
  EXPECT_EQ(late.drained, 1);
  gate.UnregisterStream(&late);
  gate.UnregisterStream(&open);
}

}  // namespace
}  // namespace attn
