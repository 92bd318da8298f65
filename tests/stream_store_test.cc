// Tests of src/stream_store: copies and fills, ordinary and streaming, store exactly the values
// asked, and nothing outside [to, to + n), for every start alignment within a 64-byte line and
// lengths around the 4-float vector width.
#include "src/engine/kernels/stream_store.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

constexpr float kGuard = -7.0f;  // what the bytes around the destination hold
constexpr int64_t kMargin = 20;

std::vector<int64_t> Lengths() { return {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 63, 64, 1000}; }

constexpr StoreMode kModes[] = {StoreMode::kCached, StoreMode::kStreaming};

TEST(StreamStoreTest, CopyStoresEveryElementAndNothingElse) {
  for (StoreMode mode : kModes) {
    for (int64_t offset = 0; offset < 16; ++offset) {
      for (int64_t n : Lengths()) {
        std::vector<float> from(n);
        for (int64_t i = 0; i < n; ++i) from[i] = 0.5f * float(i) + 1.0f;
        alignas(64) static float buffer[2 * kMargin + 1100];
        std::fill(std::begin(buffer), std::end(buffer), kGuard);
        float* to = buffer + kMargin + offset;
        StoreCopy(from.data(), n, to, mode);
        StreamStoreFence();
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(to[i], from[i]) << "offset " << offset << " n " << n << " at " << i;
        for (int64_t i = -kMargin; i < 0; ++i)
          ASSERT_EQ(to[i], kGuard) << "before, offset " << offset;
        for (int64_t i = n; i < n + kMargin; ++i)
          ASSERT_EQ(to[i], kGuard) << "after, offset " << offset;
      }
    }
  }
}

TEST(StreamStoreTest, ScaledCopyStoresEveryProductAndNothingElse) {
  for (StoreMode mode : kModes) {
    for (float scale : {1.0f, 0.0f, 0.3f}) {
      for (int64_t offset = 0; offset < 16; ++offset) {
        for (int64_t n : Lengths()) {
          std::vector<float> from(n);
          for (int64_t i = 0; i < n; ++i) from[i] = 0.25f * float(i) - 3.0f;
          alignas(64) static float buffer[2 * kMargin + 1100];
          std::fill(std::begin(buffer), std::end(buffer), kGuard);
          float* to = buffer + kMargin + offset;
          StoreCopyScaled(from.data(), n, scale, to, mode);
          StreamStoreFence();
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(to[i], from[i] * scale) << "n " << n << " at " << i;
          for (int64_t i = -kMargin; i < 0; ++i) ASSERT_EQ(to[i], kGuard);
          for (int64_t i = n; i < n + kMargin; ++i) ASSERT_EQ(to[i], kGuard);
        }
      }
    }
  }
}

TEST(StreamStoreTest, FillStoresEveryElementAndNothingElse) {
  for (StoreMode mode : kModes) {
    for (float value : {0.0f, -std::numeric_limits<float>::infinity(), 3.25f}) {
      for (int64_t offset = 0; offset < 16; ++offset) {
        for (int64_t n : Lengths()) {
          alignas(64) static float buffer[2 * kMargin + 1100];
          std::fill(std::begin(buffer), std::end(buffer), kGuard);
          float* to = buffer + kMargin + offset;
          StoreFill(value, n, to, mode);
          StreamStoreFence();
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(to[i], value) << "offset " << offset << " n " << n;
          for (int64_t i = -kMargin; i < 0; ++i) ASSERT_EQ(to[i], kGuard);
          for (int64_t i = n; i < n + kMargin; ++i) ASSERT_EQ(to[i], kGuard);
        }
      }
    }
  }
}

}  // namespace
}  // namespace attn
