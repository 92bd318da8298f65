// Tests of src/kv/kv_layer_cache and kv_page_pool: appends fill pages in order and never move
// what is stored; forks share pages and copy a shared last page before writing it; truncation
// and dropping give pages back; the pool's bytes always equal the pages alive.
#include "src/kv/kv_layer_cache.h"

#include <vector>

#include "gtest/gtest.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

constexpr KvLayout kLayout{.kv_heads = 2, .head_dim = 4, .value_dim = 3, .page_tokens = 64};
constexpr int64_t kPageBytes = 64 * 4 * 4 + 64 * 3 * 4;  // one head's K and V page

// Appends n positions whose key element (g, position, c) is g * 10000 + position * 10 + c and
// value element its negative.
void AppendNumbered(KvLayerCache& cache, KvPagePool& pool, int64_t n, const KvLayout& l = kLayout) {
  const int64_t t = cache.tokens();
  std::vector<float> k(l.kv_heads * n * l.head_dim), v(l.kv_heads * n * l.value_dim);
  for (int64_t g = 0; g < l.kv_heads; ++g) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < l.head_dim; ++c) {
        k[(g * n + i) * l.head_dim + c] = g * 10000 + (t + i) * 10 + c;
      }
      for (int64_t c = 0; c < l.value_dim; ++c) {
        v[(g * n + i) * l.value_dim + c] = -(g * 10000 + (t + i) * 10 + c);
      }
    }
  }
  ASSERT_TRUE(pool.TryReserve(cache.BytesToAppend(n)));
  const int64_t reserved = cache.BytesToAppend(n);
  EXPECT_EQ(cache.Append({.tokens = n, .key = k.data(), .value = v.data()}, pool), reserved);
}

// Every held position of `cache` holds its numbered values.
void ExpectNumbered(const KvLayerCache& cache, const KvLayout& l = kLayout) {
  const int64_t first = cache.first_position(), held = cache.tokens() - first;
  std::vector<float> k(l.kv_heads * held * l.head_dim), v(l.kv_heads * held * l.value_dim);
  cache.Gather(k.data(), v.data());
  for (int64_t g = 0; g < l.kv_heads; ++g) {
    for (int64_t i = 0; i < held; ++i) {
      for (int64_t c = 0; c < l.head_dim; ++c) {
        ASSERT_EQ(k[(g * held + i) * l.head_dim + c], g * 10000 + (first + i) * 10 + c);
      }
      for (int64_t c = 0; c < l.value_dim; ++c) {
        ASSERT_EQ(v[(g * held + i) * l.value_dim + c], -(g * 10000 + (first + i) * 10 + c));
      }
    }
  }
}

TEST(KvLayerCacheTest, AppendsFillPagesWithoutMovingThem) {
  KvPagePool pool(1 << 20);
  KvLayerCache cache(kLayout);
  EXPECT_EQ(cache.BytesToAppend(1), 2 * kPageBytes);
  AppendNumbered(cache, pool, 10);
  std::vector<const void*> k0, v0;
  cache.PageTable(k0, v0);
  EXPECT_EQ(cache.BytesToAppend(54), 0);  // fits the last pages
  EXPECT_EQ(cache.BytesToAppend(55), 2 * kPageBytes);
  AppendNumbered(cache, pool, 54);
  AppendNumbered(cache, pool, 1);
  AppendNumbered(cache, pool, 140);
  EXPECT_EQ(cache.tokens(), 205);
  EXPECT_EQ(cache.pages_per_head(), 4);
  std::vector<const void*> k1, v1;
  cache.PageTable(k1, v1);
  EXPECT_EQ(k1[0], k0[0]);  // head 0's first page stayed where it was
  EXPECT_EQ(k1[4], k0[1]);  // head 1's
  EXPECT_EQ(pool.pages(), 16);
  EXPECT_EQ(pool.used_bytes(), 8 * kPageBytes);
  ExpectNumbered(cache);
}

TEST(KvLayerCacheTest, ForksShareAndCopyOnWrite) {
  KvPagePool pool(1 << 20);
  KvLayerCache cache(kLayout);
  AppendNumbered(cache, pool, 100);
  KvLayerCache fork = cache.Fork(70);
  EXPECT_EQ(fork.tokens(), 70);
  EXPECT_EQ(pool.pages(), 8);  // nothing copied
  // The fork's last page is shared and partly filled: writing copies it (one page per head).
  EXPECT_EQ(fork.BytesToAppend(1), 2 * kPageBytes);
  AppendNumbered(fork, pool, 1);
  EXPECT_EQ(pool.pages(), 12);
  ExpectNumbered(fork);
  ExpectNumbered(cache);  // the original's page 1 is untouched
  // Its first page is still shared.
  std::vector<const void*> a, b, va, vb;
  cache.PageTable(a, va);
  fork.PageTable(b, vb);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_NE(a[1], b[1]);
  fork = KvLayerCache(kLayout);
  EXPECT_EQ(pool.pages(), 8);
  EXPECT_EQ(pool.used_bytes(), 4 * kPageBytes);
}

TEST(KvLayerCacheTest, TruncateAndDropGivePagesBack) {
  KvPagePool pool(1 << 20);
  KvLayerCache cache(kLayout);
  AppendNumbered(cache, pool, 200);
  cache.Truncate(65);
  EXPECT_EQ(cache.tokens(), 65);
  EXPECT_EQ(pool.used_bytes(), 4 * kPageBytes);
  AppendNumbered(cache, pool, 10);
  ExpectNumbered(cache);
  cache.DropBefore(70);  // page 0 wholly before position 70
  EXPECT_EQ(cache.first_position(), 64);
  EXPECT_EQ(cache.pages_per_head(), 1);
  EXPECT_EQ(pool.used_bytes(), 2 * kPageBytes);
  ExpectNumbered(cache);
  cache.Truncate(0);
  EXPECT_EQ(pool.used_bytes(), 0);
  EXPECT_EQ(pool.pages(), 0);
}

TEST(KvLayerCacheTest, Bf16PagesRoundAndKeepBf16Bits) {
  KvPagePool pool(1 << 20);
  KvLayout layout = kLayout;
  layout.bf16 = true;
  KvLayerCache cache(layout);
  const std::vector<float> k = {1.0f + 1.0f / 512, 2, 3, 4, 5, 6, 7, 8};  // [2, 1, 4]
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(pool.TryReserve(cache.BytesToAppend(1)));
  cache.Append({.tokens = 1, .key = k.data(), .value = v.data()}, pool);
  std::vector<const void*> kp, vp;
  cache.PageTable(kp, vp);
  EXPECT_EQ(static_cast<const uint16_t*>(kp[0])[0], FloatToBFloat16(k[0]));
  EXPECT_EQ(static_cast<const uint16_t*>(kp[1])[0], FloatToBFloat16(5.0f));
  std::vector<float> gk(8), gv(6);
  cache.Gather(gk.data(), gv.data());
  EXPECT_EQ(gk[0], 1.0f);  // 1 + 2^-9 rounds to 1 in bf16
  EXPECT_EQ(gv[5], 6.0f);
  EXPECT_EQ(pool.used_bytes(), 2 * (64 * 4 * 2 + 64 * 3 * 2));
}

TEST(KvPagePoolTest, ReservationsStopAtTheCap) {
  KvPagePool pool(1000);
  EXPECT_TRUE(pool.TryReserve(600));
  EXPECT_FALSE(pool.TryReserve(401));
  EXPECT_TRUE(pool.TryReserve(400));
  pool.Unreserve(1000);
  EXPECT_EQ(pool.used_bytes(), 0);
}

}  // namespace
}  // namespace attn
