// Tests of src/kv/session_store and the Turns of kv_session: configuration checks, unguessable
// ids, ownership (another owner's session does not exist for it), why a dropped session is gone
// (closed, expired after its idle timeout, evicted under memory pressure), LRU eviction that
// never takes a leased session, --kv_evict=none, the session cap, and turns in ticket order.
#include "src/kv/session_store.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

const SessionConfig kSmall{.num_layers = 2, .num_heads = 4, .num_kv_heads = 2, .head_dim = 32};
// Bytes of one page of K and of V for every KV head of kSmall (64-token pages, f32).
constexpr int64_t kPageRow = 2 * 2 * 64 * 32 * 4;

class SessionStoreTest : public ::testing::Test {
 protected:
  SessionStore::Options Options() {
    SessionStore::Options o;
    o.capacity_bytes = 4 * kPageRow;
    o.page_tokens = 64;
    o.now = [this] { return now_; };
    return o;
  }

  // Appends n zero positions to layer 0 of `id` (reserving as a step does).
  absl::Status Fill(SessionStore& store, const std::string& id, int64_t n,
                    const std::string& owner = "") {
    absl::StatusOr<SessionLease> lease = store.Lease(id, owner);
    if (!lease.ok()) return lease.status();
    std::lock_guard lock((*lease)->mu);
    KvLayerCache& layer = (*lease)->layers[0];
    const int64_t bytes = layer.BytesToAppend(n);
    if (absl::Status s = store.Reserve(bytes); !s.ok()) return s;
    std::vector<float> zeros(2 * n * 32);
    layer.Append({.tokens = n, .key = zeros.data(), .value = zeros.data()}, store.pool());
    return absl::OkStatus();
  }

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
};

TEST_F(SessionStoreTest, CreateChecksEveryFieldAndFillsDefaults) {
  SessionStore store(Options());
  absl::StatusOr<SessionInfo> info = store.Create({.num_layers = 3, .num_heads = 8,
                                                   .head_dim = 64}, "");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id.size(), 32u);
  EXPECT_EQ(info->id.find_first_not_of("0123456789abcdef"), std::string::npos) << info->id;
  EXPECT_EQ(info->config.num_kv_heads, 8);
  EXPECT_EQ(info->config.value_dim, 64);
  EXPECT_EQ(info->config.max_tokens, 65536);
  EXPECT_EQ(info->config.idle_timeout, absl::Seconds(300));
  EXPECT_EQ(info->layer_tokens, (std::vector<int64_t>{0, 0, 0}));
  struct Bad {
    SessionConfig config;
    std::string message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{.num_layers = 0, .num_heads = 1, .head_dim = 8}, "num_layers must be in [1, 4096]; got 0"},
           {{.num_layers = 1, .num_heads = 6, .num_kv_heads = 4, .head_dim = 8},
            "num_heads (6) must be a multiple of num_kv_heads (4)"},
           {{.num_layers = 1, .num_heads = 2, .head_dim = -3}, "head_dim must be in [1, 65536]; got -3"},
           {{.num_layers = 1, .num_heads = 2, .head_dim = 8, .max_tokens = (1 << 20) + 1},
            "max_tokens must be in [1, 1048576]; got 1048577"},
           {{.num_layers = 1, .num_heads = 2, .head_dim = 8, .idle_timeout = absl::Seconds(-1)},
            "idle_timeout_s must be in [0, 86400]; got -1"}}) {
    absl::StatusOr<SessionInfo> refused = store.Create(bad.config, "");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.status().message(), bad.message);
  }
  EXPECT_EQ(store.Stats().sessions, 1);
}

TEST_F(SessionStoreTest, IdsAreDistinct) {
  SessionStore store(Options());
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.insert(store.Create(kSmall, "")->id);
  EXPECT_EQ(ids.size(), 200u);
}

TEST_F(SessionStoreTest, AnotherOwnersSessionDoesNotExist) {
  SessionStore store(Options());
  const std::string id = store.Create(kSmall, "alice")->id;
  for (const std::string owner : {"bob", ""}) {
    EXPECT_EQ(store.Lease(id, owner).status().message(), "session " + id + " does not exist");
    EXPECT_EQ(store.Get(id, owner).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(store.Close(id, owner).code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(store.Fork(id, std::nullopt, owner).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(store.Truncate(id, 0, owner).status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(store.List(owner).empty());
  }
  EXPECT_EQ(store.List("alice").size(), 1u);
  ASSERT_TRUE(store.Close(id, "alice").ok());
  // Why it is gone is told to its owner only.
  EXPECT_EQ(store.Lease(id, "alice").status().message(), "session " + id + " was closed");
  EXPECT_EQ(store.Lease(id, "bob").status().message(), "session " + id + " does not exist");
}

TEST_F(SessionStoreTest, IdleSessionsExpireButLeasedOnesDoNot) {
  SessionStore store(Options());
  SessionConfig quick = kSmall;
  quick.idle_timeout = absl::Seconds(10);
  const std::string idle = store.Create(quick, "")->id;
  const std::string busy = store.Create(quick, "")->id;
  ASSERT_TRUE(Fill(store, idle, 10).ok());
  absl::StatusOr<SessionLease> lease = store.Lease(busy, "");
  now_ += absl::Seconds(11);
  store.ExpireIdle();
  EXPECT_EQ(store.Lease(idle, "").status().message(),
            "session " + idle + " expired after 10 s idle");
  EXPECT_TRUE(store.Get(busy, "").ok());
  EXPECT_EQ(store.Stats().expired, 1);
  EXPECT_EQ(store.pool().used_bytes(), 0);
  *lease = SessionLease();  // idle from now
  now_ += absl::Seconds(9);
  store.ExpireIdle();
  EXPECT_TRUE(store.Get(busy, "").ok());
  now_ += absl::Seconds(2);
  store.ExpireIdle();
  EXPECT_EQ(store.Get(busy, "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionStoreTest, FullPoolEvictsTheLeastRecentlyUsedIdleSession) {
  SessionStore store(Options());
  const std::string a = store.Create(kSmall, "")->id;
  const std::string b = store.Create(kSmall, "")->id;
  const std::string c = store.Create(kSmall, "")->id;
  ASSERT_TRUE(Fill(store, a, 64).ok());
  now_ += absl::Seconds(1);
  ASSERT_TRUE(Fill(store, b, 64).ok());
  now_ += absl::Seconds(1);
  ASSERT_TRUE(Fill(store, a, 64).ok());  // a used last: b is the least recent
  now_ += absl::Seconds(1);
  ASSERT_TRUE(Fill(store, c, 64).ok());  // the pool (4 page rows) is full now
  now_ += absl::Seconds(1);
  ASSERT_TRUE(Fill(store, c, 1).ok());
  EXPECT_EQ(store.Lease(b, "").status().message(),
            "session " + b + " was evicted under memory pressure");
  EXPECT_TRUE(store.Get(a, "").ok());
  EXPECT_EQ(store.Stats().evicted, 1);
  // A leased session is never evicted: with a and c both leased, nothing can be.
  absl::StatusOr<SessionLease> la = store.Lease(a, "");
  absl::StatusOr<SessionLease> lc = store.Lease(c, "");
  const absl::Status full = store.Reserve(kPageRow);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "the KV cache pool cannot give 32768 bytes: 131072 of 131072 bytes "
                            "(--kv_cache_bytes) are in use by sessions in use");
}

TEST_F(SessionStoreTest, NoEvictionRefusesWithTheNumbers) {
  SessionStore::Options o = Options();
  o.evict_lru = false;
  SessionStore store(o);
  const std::string a = store.Create(kSmall, "")->id;
  ASSERT_TRUE(Fill(store, a, 256).ok());
  const std::string b = store.Create(kSmall, "")->id;
  const absl::Status refused = Fill(store, b, 1);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--kv_evict=none"), std::string::npos);
  EXPECT_TRUE(store.Get(a, "").ok());
}

TEST_F(SessionStoreTest, ForkAndTruncateCheckTokens) {
  SessionStore store(Options());
  const std::string a = store.Create(kSmall, "")->id;
  ASSERT_TRUE(Fill(store, a, 100).ok());
  EXPECT_EQ(store.Fork(a, 101, "").status().message(),
            "tokens must be in [0, 100] (the positions layer 0 holds); got 101");
  // Layer 1 holds nothing: a fork of everything takes each layer whole.
  absl::StatusOr<SessionInfo> whole = store.Fork(a, std::nullopt, "");
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->layer_tokens, (std::vector<int64_t>{100, 0}));
  EXPECT_EQ(whole->bytes, 2 * kPageRow);
  EXPECT_EQ(store.pool().used_bytes(), 2 * kPageRow);  // shared
  EXPECT_EQ(store.Stats().pool_shared_bytes, 2 * kPageRow);
  EXPECT_EQ(store.Stats().pool_shared_pages, store.pool().pages());
  EXPECT_EQ(store.Truncate(a, -1, "").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<SessionInfo> cut = store.Truncate(a, 10, "");
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->layer_tokens, (std::vector<int64_t>{10, 0}));
  EXPECT_EQ(store.Stats().pool_shared_bytes, kPageRow);  // the second pages: the fork's alone
  ASSERT_TRUE(store.Close(whole->id, "").ok());
  EXPECT_EQ(store.pool().used_bytes(), kPageRow);
  EXPECT_EQ(store.Stats().pool_shared_pages, 0);
}

TEST_F(SessionStoreTest, SessionCapIsResourceExhausted) {
  SessionStore::Options o = Options();
  o.max_sessions = 2;
  SessionStore store(o);
  ASSERT_TRUE(store.Create(kSmall, "").ok());
  ASSERT_TRUE(store.Create(kSmall, "").ok());
  EXPECT_EQ(store.Create(kSmall, "").status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(SessionStoreTest, RequestedIdsAndForkIdsShareTheRoute) {
  SessionStore store(Options());
  const std::string id = "0123456789abcdef0123456789abcdef";
  ASSERT_TRUE(store.Create(kSmall, "", id).ok());
  EXPECT_EQ(store.Create(kSmall, "", id).status().code(), absl::StatusCode::kAlreadyExists);
  for (const std::string& bad :
       std::vector<std::string>{"0123", "0123456789ABCDEF0123456789abcdef", id + "-",
                                id + "-0123", id + "_0123456789abcdef0123456789abcdef"}) {
    EXPECT_EQ(store.Create(kSmall, "", bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  // A session created on another's route (a batch group placed on one replica).
  const std::string grouped = id + "-fedcba9876543210fedcba9876543210";
  ASSERT_TRUE(store.Create(kSmall, "", grouped).ok());
  EXPECT_EQ(SessionStore::RouteOf(grouped), id);
  const std::string fork = store.Fork(id, std::nullopt, "")->id;
  const std::string fork_of_fork = store.Fork(fork, std::nullopt, "")->id;
  for (const std::string& f : {fork, fork_of_fork}) {
    EXPECT_TRUE(SessionStore::IsSessionId(f)) << f;
    EXPECT_EQ(SessionStore::RouteOf(f), id);
  }
  EXPECT_NE(fork, fork_of_fork);
  EXPECT_TRUE(SessionStore::IsSessionId(id));
  EXPECT_FALSE(SessionStore::IsSessionId(id + "-"));
  EXPECT_FALSE(SessionStore::IsSessionId(""));
}

TEST(TurnsTest, HoldersRunInTicketOrder) {
  Turns turns;
  std::vector<int64_t> order;
  std::mutex mu;
  std::vector<int64_t> tickets;
  for (int i = 0; i < 8; ++i) tickets.push_back(turns.Take());
  std::vector<std::thread> threads;
  for (int i = 7; i >= 0; --i) {  // started in reverse
    threads.emplace_back([&, i] {
      ASSERT_TRUE(turns.Wait(tickets[i], absl::InfiniteFuture()).ok());
      {
        std::lock_guard lock(mu);
        order.push_back(i);
      }
      turns.End(tickets[i]);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  // An abandoned ticket lets the next one go; a wait past its deadline gives up.
  const int64_t a = turns.Take(), b = turns.Take(), c = turns.Take();
  EXPECT_EQ(turns.Wait(b, absl::Now() + absl::Milliseconds(20)).code(),
            absl::StatusCode::kDeadlineExceeded);
  turns.End(a);
  EXPECT_TRUE(turns.Wait(c, absl::Now() + absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace attn
