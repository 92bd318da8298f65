// MemoryStreams: large arrays first touched by the threads that stream them, for measuring the
// machine's memory bandwidth the way its attention kernels use it (attn-bench, session-bench).
// Not thread-safe; each call runs on `threads` OpenMP threads.
#ifndef ATTNSERVE_BENCH_MEMORY_STREAMS_H_
#define ATTNSERVE_BENCH_MEMORY_STREAMS_H_

#include <cstdint>
#include <memory>

namespace attn::bench {

class MemoryStreams {
 public:
  // Three arrays of `bytes_per_array` each.
  MemoryStreams(int64_t bytes_per_array, int threads)
      : bytes_(bytes_per_array),
        floats_(bytes_per_array / static_cast<int64_t>(sizeof(float))),
        threads_(threads),
        a_(new float[floats_]),
        b_(new float[floats_]),
        c_(new float[floats_]) {
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t i = 0; i < floats_; ++i) {
      a_[i] = 0;
      b_[i] = 1;
      c_[i] = 2;
    }
  }

  int64_t bytes_per_array() const { return bytes_; }

  // x ^= w over the 64-bit words of one array: bytes = bytes_per_array (read only, as decode
  // reads K and V).
  uint64_t Read() const {
    const auto* words = reinterpret_cast<const uint64_t*>(b_.get());
    const int64_t n = bytes_ / static_cast<int64_t>(sizeof(uint64_t));
    uint64_t x = 0;
#pragma omp parallel for simd schedule(static) reduction(^ : x) num_threads(threads_)
    for (int64_t i = 0; i < n; ++i) x ^= words[i];
    return x;
  }

  // a[i] = b[i] + s * c[i] (STREAM triad): bytes = 3 * bytes_per_array (two reads, one write;
  // the write-allocate read is not counted, as in STREAM).
  void Triad(float s) {
    float* a = a_.get();
    const float* b = b_.get();
    const float* c = c_.get();
#pragma omp parallel for simd schedule(static) num_threads(threads_)
    for (int64_t i = 0; i < floats_; ++i) a[i] = b[i] + s * c[i];
  }

  float first() const { return a_[0]; }

 private:
  const int64_t bytes_;
  const int64_t floats_;
  const int threads_;
  std::unique_ptr<float[]> a_, b_, c_;
};

}  // namespace attn::bench

#endif  // ATTNSERVE_BENCH_MEMORY_STREAMS_H_
