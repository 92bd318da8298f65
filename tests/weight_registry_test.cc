// Tests of src/weight_registry: put/get/replace/delete, the byte cap, name rules, and that
// concurrent puts, deletes and gets never fail except NOT_FOUND after a delete, while weights
// fetched earlier stay valid.
#include "src/weights/weight_registry.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

using ::testing::HasSubstr;

// A weight set of d_model x d_model projections (H = 1), 3*d*d + 3*d floats.
std::shared_ptr<const MultiHeadWeights> Weights(int64_t d, float fill) {
  const std::vector<int64_t> square{d, d};
  WeightShapes shapes;
  shapes.w_q = shapes.w_k = shapes.w_v = square;
  const MultiHeadDims dims = InferMultiHeadDims("", shapes, 1, 1, false, 0).value();
  const std::vector<float> w(d * d, fill);
  WeightValues values;
  values.w_q = values.w_k = values.w_v = w;
  return MultiHeadWeights::Create(dims, values);
}

TEST(WeightRegistryTest, PutGetReplaceDelete) {
  WeightRegistry registry(1 << 20);
  ASSERT_TRUE(registry.Put("a", Weights(4, 1.0f)).ok());
  const int64_t one = Weights(4, 0).get()->bytes();
  EXPECT_EQ(registry.bytes(), one);
  auto held = registry.Get("a").value();
  ASSERT_TRUE(registry.Put("a", Weights(8, 2.0f)).ok());
  EXPECT_EQ(registry.bytes(), Weights(8, 0)->bytes());
  EXPECT_EQ(held->qkv().data[0], 1.0f);  // the replaced set lives on for whoever holds it
  EXPECT_EQ(registry.Get("a").value()->qkv().data[0], 2.0f);
  ASSERT_EQ(registry.List().size(), 1u);
  ASSERT_TRUE(registry.Delete("a").ok());
  EXPECT_EQ(registry.bytes(), 0);
  EXPECT_EQ(registry.Get("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Delete("a").code(), absl::StatusCode::kNotFound);
}

TEST(WeightRegistryTest, EnforcesTheByteCap) {
  const int64_t one = Weights(16, 0)->bytes();
  WeightRegistry registry(2 * one);
  ASSERT_TRUE(registry.Put("a", Weights(16, 0)).ok());
  ASSERT_TRUE(registry.Put("b", Weights(16, 0)).ok());
  const absl::Status full = registry.Put("c", Weights(16, 0));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()),
              HasSubstr(absl::StrCat("need ", one, " bytes; ", 2 * one,
                                     " are held by other weights and the limit is ", 2 * one)));
  EXPECT_EQ(registry.List().size(), 2u);
  // Replacing an entry only counts the difference.
  EXPECT_TRUE(registry.Put("b", Weights(16, 1)).ok());
}

TEST(WeightRegistryTest, ChecksNames) {
  EXPECT_TRUE(WeightRegistry::CheckName("name", "bert-base.layer_0").ok());
  EXPECT_THAT(std::string(WeightRegistry::CheckName("name", "").message()),
              HasSubstr("name has 0 characters; it needs 1 to 128"));
  EXPECT_THAT(std::string(WeightRegistry::CheckName("name", "a/b").message()),
              HasSubstr("may only use letters, digits"));
  EXPECT_FALSE(WeightRegistry::CheckName("name", std::string(129, 'a')).ok());
}

TEST(WeightRegistryTest, ConcurrentPutsDeletesAndGets) {
  WeightRegistry registry(1 << 24);
  const std::vector<std::string> names = {"w0", "w1", "w2", "w3"};
  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0}, found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string& name = names[i % 4];
        if (!registry.Put(name, Weights(4, float(t))).ok()) ++unexpected;
        const absl::Status deleted = registry.Delete(name);
        if (!deleted.ok() && deleted.code() != absl::StatusCode::kNotFound) ++unexpected;
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      for (int i = 0; i < 4; ++i) {
        auto w = registry.Get(names[i]);
        if (w.ok()) {
          ++found;
          if ((*w)->dims().d_model != 4) ++unexpected;
        } else if (w.status().code() != absl::StatusCode::kNotFound) {
          ++unexpected;
        }
      }
    }
  });
  threads[0].join();
  threads[1].join();
  stop = true;
  threads[2].join();
  EXPECT_EQ(unexpected, 0);
  EXPECT_GE(registry.bytes(), 0);
}

}  // namespace
}  // namespace attn
