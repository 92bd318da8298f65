// Tests of src/primitive_cache: reuse, LRU eviction at capacity, and concurrent use.
#include "src/runtime/primitive_cache.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

dnnl::primitive MakeSoftmax(const dnnl::engine& engine, int64_t n) {
  const dnnl::memory::desc md({1, n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  return dnnl::softmax_v2_forward(dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, md, md, 1),
      engine));
}

TEST(PrimitiveCacheTest, ReusesAndCounts) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  PrimitiveCache cache(4);
  int made = 0;
  auto make = [&] {
    ++made;
    return MakeSoftmax(engine, 8);
  };
  auto first = cache.GetOrCreate("a", make);
  auto second = cache.GetOrCreate("a", make);
  EXPECT_EQ(first, second);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
}

TEST(PrimitiveCacheTest, EvictsLeastRecentlyUsed) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  PrimitiveCache cache(2);
  int made = 0;
  auto make = [&] {
    ++made;
    return MakeSoftmax(engine, 4);
  };
  cache.GetOrCreate("a", make);
  cache.GetOrCreate("b", make);
  cache.GetOrCreate("a", make);  // "b" is now the least recent
  cache.GetOrCreate("c", make);  // evicts "b"
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(made, 3);
  cache.GetOrCreate("a", make);
  EXPECT_EQ(made, 3);
  cache.GetOrCreate("b", make);
  EXPECT_EQ(made, 4);
}

TEST(PrimitiveCacheTest, EvictedPrimitiveStaysValidForItsHolder) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  PrimitiveCache cache(1);
  auto held = cache.GetOrCreate("a", [&] { return MakeSoftmax(engine, 4); });
  cache.GetOrCreate("b", [&] { return MakeSoftmax(engine, 4); });
  float data[4] = {1, 2, 3, 4};
  const dnnl::memory::desc md({1, 4}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  dnnl::memory mem(md, engine, data);
  dnnl::stream stream(engine);
  held->execute(stream, {{DNNL_ARG_SRC, mem}, {DNNL_ARG_DST, mem}});
  stream.wait();
  EXPECT_NEAR(data[0] + data[1] + data[2] + data[3], 1.0f, 1e-6);
}

TEST(PrimitiveCacheTest, ConcurrentCallersGetOnePrimitivePerKey) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  PrimitiveCache cache(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        cache.GetOrCreate(std::to_string(i % 8), [&] { return MakeSoftmax(engine, 16); });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_EQ(cache.hits() + cache.misses(), 200);
  auto a = cache.GetOrCreate("3", [&] { return MakeSoftmax(engine, 16); });
  auto b = cache.GetOrCreate("3", [&] { return MakeSoftmax(engine, 16); });
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace attn
