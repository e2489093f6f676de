// Pools and leases. Per-tenant mode keeps one pool per tenant with an LRU cap (by lease use) and
// idle eviction; an evicted pool's idle backends are kept as spares and handed to the next new
// pool (reset like any lease, instead of a new backend) as long as the manager holds at most
// max_pools × pool_size backends, and leases in flight on an evicted pool finish normally. Shared and transaction modes keep one pool per server for every tenant.
//
// Isolation: every lease starts from a clean session. Session modes reset a released connection
// with DISCARD ALL sent without waiting (discard_on_release), and the next lease reads its answer
// and sets the tenant's search_path in the same round trip as its first parameterless statement
// whenever that is safe (see foldable()). Transaction mode opens every transaction with the reset's
// parts and SET LOCAL (session_setup). No belief about a session's state is cached across leases:
// an application can falsify any of them.
//
// The lease path is otherwise kept cheap: a tenant's validated schema and search paths are cached
// (no regex per lease) and a pool hit takes only a shared lock.
#include "base/pqxx_session.hpp"
#include "runtime/tenant_health.hpp"
#include "runtime/tenant_routes.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/metrics.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace mt {

namespace {
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// true when `SET search_path …; <sql>` sent as one simple-protocol query behaves like the two sent
// apart: a single statement that cannot end or open a transaction and may run inside the implicit
// transaction block of a multi-statement query. Anything else (other commands such as VACUUM or
// BEGIN, a leading comment or parenthesis, a second statement, a ';' even inside a literal) is
// sent after a separate SET: refusing to fold is always safe.
bool foldable(std::string_view sql) {
    size_t i = 0;
    while (i < sql.size() && is_space(sql[i])) ++i;
    size_t end = i;
    while (end < sql.size() && ((sql[end] >= 'a' && sql[end] <= 'z') || (sql[end] >= 'A' && sql[end] <= 'Z'))) ++end;
    if (end < sql.size() && (sql[end] == '_' || sql[end] == '$' || (sql[end] >= '0' && sql[end] <= '9'))) return false;
    std::string word(sql.substr(i, end - i));
    for (auto& c : word) c = static_cast<char>(c | 0x20);
    static constexpr std::string_view dml[] = {"select", "with", "insert", "update", "delete", "values", "table"};
    if (std::find(std::begin(dml), std::end(dml), word) == std::end(dml)) return false;
    const auto semi = sql.find(';', end);
    if (semi == std::string_view::npos) return true;
    for (size_t j = semi; j < sql.size(); ++j)
        if (sql[j] != ';' && !is_space(sql[j])) return false;
    return true;
}
}  // namespace

namespace detail {

// What a lease needs to know about a tenant: the id is validated and its schema named
// (SchemaNamer) on the first lease only; the server is looked up again whenever the route table
// changes (a route never pins a server a newer discovery moved the tenant from).
struct TenantRoute {
    std::string id;  // empty for the shared schema
    std::string schema;
    std::string search_path;         // "tenant_x"
    std::string search_path_shared;  // "tenant_x", "public"
    std::optional<std::string> server;
    uint64_t generation = 0;  // of the route table that named the server (RouteTable::generation)
};

struct PooledConnection {
    PooledConnection() = default;
    PooledConnection(const PooledConnection&) = delete;
    PooledConnection& operator=(const PooledConnection&) = delete;
    ~PooledConnection() {
        if (alive) alive->fetch_sub(1, std::memory_order_relaxed);
    }
    std::unique_ptr<pqxx::connection> conn;
    bool used = false;           // something was sent since the last reset: the session may carry state
    bool reset_pending = false;  // DISCARD ALL was sent at release; its answer is read before reuse
    std::atomic<size_t>* alive = nullptr;  // the manager's backend count, decremented when closed
};

class Pool {
public:
    Pool(std::string tenant, std::string schema, std::optional<std::string> server, size_t max_size)
        : tenant(std::move(tenant)), schema(std::move(schema)), server(std::move(server)), max_size(max_size) {}

    const std::string tenant;  // empty for the shared/transaction-mode pool
    const std::string schema;
    const std::optional<std::string> server;
    const size_t max_size;
    std::atomic<uint64_t> last_lease{0};  // per-tenant LRU order: the manager's lease tick

    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::unique_ptr<PooledConnection>> idle;
    size_t open = 0;  // idle + leased
    size_t waiting = 0;
    bool closing = false;
    Clock::time_point last_used = Clock::now();
};

class ManagerState : public std::enable_shared_from_this<ManagerState> {
public:
    explicit ManagerState(const Kernel& kernel) : kernel(kernel), manifest(kernel.manifest()), routes(kernel) {
        const auto& db = manifest.database;
        mode = db.pool_mode;
        pool_size = static_cast<size_t>(db.pool_size);
        max_pools = static_cast<size_t>(db.max_pools);
        wait_timeout = db.connect_timeout;
        idle_timeout = db.pool_idle_timeout;
        backend_budget = max_pools * pool_size;
        statement_timeout = db.statement_timeout;
        auto shared = std::make_shared<TenantRoute>();
        shared->schema = manifest.isolation.shared_schema;
        shared->search_path = search_path_for(shared->schema, false);
        shared->search_path_shared = shared->search_path;
        shared_route = std::move(shared);
    }

    const Kernel& kernel;
    const Manifest& manifest;
    PoolMode mode;
    size_t pool_size, max_pools, backend_budget;
    std::chrono::milliseconds wait_timeout, idle_timeout, statement_timeout;
    std::shared_ptr<const TenantRoute> shared_route;
    std::weak_ptr<const void> kernel_alive = kernel.lifetime();
    // Backends held (pooled, leased or spare); declared before every container of connections.
    std::atomic<size_t> alive{0};

    // Lock order: pools_mutex, then a pool's mutex, then mutex.
    mutable std::shared_mutex pools_mutex;                          // pools
    std::unordered_map<std::string, std::shared_ptr<Pool>> pools;  // per-tenant mode
    std::atomic<uint64_t> lease_tick{0};

    mutable std::mutex mutex;  // server pools, spares
    std::map<std::optional<std::string>, std::shared_ptr<Pool>> server_pools;  // shared/transaction modes
    std::map<std::optional<std::string>, std::shared_ptr<Pool>> shared_schema_pools;
    std::map<std::optional<std::string>, std::vector<std::unique_ptr<PooledConnection>>> spares;
    RouteTable routes;  // tenant -> server ([servers.*]); see tenant_routes.hpp
    // The shared/transaction-mode pool of the default server, once created (never replaced).
    std::shared_ptr<Pool> default_pool;
    std::atomic<bool> default_pool_ready{false};

    mutable std::shared_mutex route_mutex;
    std::unordered_map<std::string, std::shared_ptr<const TenantRoute>> route_cache;
    static constexpr size_t route_cache_cap = 16384;  // a few MB at most; emptied when full

    std::atomic<size_t> pools_created{0}, evictions{0}, connections_opened{0};
    std::atomic<size_t> search_path_sets{0}, search_path_folded{0}, sessions_reset{0};
    std::atomic<size_t> rollbacks_on_release{0}, connections_quarantined{0};

    // Connections released while a pqxx transaction object still referred to them (an application
    // kept a transaction past its lease). Never reused; closed once the object is gone; never
    // destroyed while it lives (that would be undefined behaviour in libpqxx).
    std::mutex quarantine_mutex;
    std::vector<std::unique_ptr<pqxx::connection>> quarantine;

    ~ManagerState() {
        std::lock_guard lock(quarantine_mutex);
        for (auto& c : quarantine)
            if (c && has_transaction_object(*c)) {
                spdlog::error("mtenant: a pqxx transaction outlived its lease and its TenantManager; its connection is left open");
                (void)c.release();
            }
    }

    void quarantine_connection(std::unique_ptr<pqxx::connection> c) {
        ++connections_quarantined;
        spdlog::warn("mtenant: a lease was released while a pqxx transaction on its connection was still alive; "
                     "the connection is not reused (keep transactions inside the lease's scope)");
        std::lock_guard lock(quarantine_mutex);
        std::erase_if(quarantine, [](const auto& q) { return !q || !has_transaction_object(*q); });
        quarantine.push_back(std::move(c));
    }

    // What a session runs before a lease's first statement (session modes; `reset` only when the
    // release-time DISCARD ALL did not happen) or at the start of every transaction (transaction
    // mode, `local`, always with the reset: DISCARD ALL cannot run in a transaction block). The
    // reset's parts undo what DISCARD ALL does except DISCARD PLANS (cached plans are re-planned
    // when the search_path differs). Non-transactional parts come first so that a failure later
    // in the string cannot skip them.
    std::string session_setup(const std::string& search_path, bool reset, bool local) const {
        std::string sql;
        if (reset)
            sql = "DEALLOCATE ALL; CLOSE ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *; "
                  "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; DISCARD TEMP; DISCARD SEQUENCES; ";
        sql += local ? "SET LOCAL search_path TO " : "SET search_path TO ";
        sql += search_path;
        if (statement_timeout.count() > 0)
            sql += std::string(local ? "; SET LOCAL" : "; SET") + " statement_timeout = " +
                   std::to_string(statement_timeout.count());
        return sql;
    }

    std::string search_path_for(const std::string& schema, bool with_shared) const {
        std::string path = quote_ident(schema);
        if (with_shared && schema != manifest.isolation.shared_schema)
            path += ", " + quote_ident(manifest.isolation.shared_schema);
        return path;
    }

    // The tenant's route; the first call for an id validates it (TenantIdError before any SQL).
    // A cached route is used while the route table it came from is current; after a refresh the
    // server is looked up again (schema and search paths are kept). `cache`: false for a look-up
    // that leases nothing (server_of), so the cache holds only tenants leased (health_check's
    // default set in shared/transaction modes).
    std::shared_ptr<const TenantRoute> route(const std::string& id, bool cache = true) {
        routes.refresh_if_stale();
        std::shared_ptr<const TenantRoute> cached;
        {
            std::shared_lock lock(route_mutex);
            if (auto it = route_cache.find(id); it != route_cache.end()) cached = it->second;
        }
        if (cached && cached->generation == routes.generation()) return cached;
        auto r = cached ? std::make_shared<TenantRoute>(*cached) : std::make_shared<TenantRoute>();
        if (!cached) {
            r->id = id;
            r->schema = kernel.namer().schema_name(id);
            r->search_path = search_path_for(r->schema, false);
            r->search_path_shared = search_path_for(r->schema, true);
        }
        const auto where = routes.resolve(id, cached ? cached->generation : 0);
        r->server = where.server;
        r->generation = where.generation;
        if (cached && cached->server != r->server)
            spdlog::info("tenant {} moved from server {} to {} (tenant discovery): new leases go there, leases in "
                         "flight finish where they are",
                         id, cached->server.value_or("database.url"), r->server.value_or("database.url"));
        if (!cache && !cached) return r;
        std::unique_lock lock(route_mutex);
        if (route_cache.size() >= route_cache_cap) route_cache.clear();
        auto& slot = route_cache[id];
        // A concurrent lookup may have stored a route from a newer table meanwhile: keep the newest.
        if (!slot || slot->generation <= r->generation) slot = std::move(r);
        return slot;
    }

    // Per-tenant mode: a pool may serve a route on its server, or an older route (whose lookup
    // raced with a refresh) whatever its server; a current route on another server replaces it.
    bool pool_serves(const Pool& pool, const TenantRoute& route) const {
        return pool.server == route.server || route.generation < routes.generation();
    }

    // Caller holds pools_mutex (per-tenant mode) or mutex (the other pools).
    void emit_pool(mt_event_type type, const Pool& pool, size_t active, const std::string& reason = {}) const {
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = type;
        ev.tenant = sdk::str(pool.tenant);
        ev.schema = sdk::str(pool.schema);
        ev.reason = sdk::str(reason);
        ev.pools_max = static_cast<int64_t>(mode == PoolMode::per_tenant ? max_pools : 1);
        ev.pools_active = static_cast<int64_t>(active);
        kernel.emit(ev);
    }

    // Per-tenant mode: the tenant's pool, created (evicting the least recently leased) if needed.
    // A hit takes the shared lock only.
    std::shared_ptr<Pool> tenant_pool(const TenantRoute& route) {
        {
            std::shared_lock lock(pools_mutex);
            if (auto it = pools.find(route.id); it != pools.end() && pool_serves(*it->second, route)) {
                it->second->last_lease.store(++lease_tick, std::memory_order_relaxed);
                return it->second;
            }
        }
        std::unique_lock lock(pools_mutex);
        if (auto it = pools.find(route.id); it != pools.end()) {
            if (pool_serves(*it->second, route)) {
                it->second->last_lease.store(++lease_tick, std::memory_order_relaxed);
                return it->second;
            }
            // The tenant moved to another server: its leases in flight finish on the old one.
            evict_locked(route.id, "error");
        }
        while (pools.size() >= max_pools && !pools.empty()) evict_locked(least_recently_leased(), "lru");
        auto pool = std::make_shared<Pool>(route.id, route.schema, route.server, pool_size);
        pool->last_lease.store(++lease_tick, std::memory_order_relaxed);
        pools.emplace(route.id, pool);
        ++pools_created;
        emit_pool(MT_EVENT_POOL_CREATED, *pool, pools.size());
        return pool;
    }

    // Caller holds pools_mutex exclusively; pools is not empty.
    std::string least_recently_leased() const {
        auto victim = pools.begin();
        for (auto it = pools.begin(); it != pools.end(); ++it)
            if (it->second->last_lease.load(std::memory_order_relaxed) <
                victim->second->last_lease.load(std::memory_order_relaxed))
                victim = it;
        return victim->first;
    }

    std::shared_ptr<Pool> common_pool(std::map<std::optional<std::string>, std::shared_ptr<Pool>>& table,
                                      const std::optional<std::string>& server, const std::string& schema) {
        const bool is_default = &table == &server_pools && !server;
        if (is_default && default_pool_ready.load(std::memory_order_acquire)) return default_pool;
        std::shared_lock tenant_pools(pools_mutex);  // for the pools_active of the event (lock order)
        std::lock_guard lock(mutex);
        auto& pool = table[server];
        if (!pool) {
            pool = std::make_shared<Pool>(std::string(), schema, server, pool_size);
            ++pools_created;
            emit_pool(MT_EVENT_POOL_CREATED, *pool, mode == PoolMode::per_tenant ? pools.size() : server_pools.size());
        }
        if (is_default && !default_pool_ready.load(std::memory_order_relaxed)) {
            default_pool = pool;
            default_pool_ready.store(true, std::memory_order_release);
        }
        return pool;
    }

    // Caller holds pools_mutex exclusively.
    void evict_locked(const std::string& id, const std::string& reason) {
        auto it = pools.find(id);
        if (it == pools.end()) return;
        auto pool = it->second;
        pools.erase(it);
        ++evictions;
        std::vector<std::unique_ptr<PooledConnection>> freed;
        {
            std::lock_guard pl(pool->mutex);
            pool->closing = true;
            pool->open -= pool->idle.size();
            freed = std::move(pool->idle);
            pool->idle.clear();
        }
        pool->cv.notify_all();
        for (auto& c : freed) park(*pool, std::move(c));
        emit_pool(MT_EVENT_POOL_EVICTED, *pool, pools.size(), reason);
    }

    // A usable connection of a closed pool becomes a spare while the manager holds at most
    // max_pools × pool_size backends; otherwise it is closed.
    void park(const Pool& pool, std::unique_ptr<PooledConnection> c) {
        if (!c || !c->conn || !c->conn->is_open() || alive.load(std::memory_order_relaxed) > backend_budget) return;
        std::lock_guard lock(mutex);
        spares[pool.server].push_back(std::move(c));
    }

    std::unique_ptr<PooledConnection> take_spare(const std::optional<std::string>& server) {
        std::lock_guard lock(mutex);
        auto it = spares.find(server);
        if (it == spares.end() || it->second.empty()) return nullptr;
        auto c = std::move(it->second.back());
        it->second.pop_back();
        return c;
    }

    std::unique_ptr<PooledConnection> open_connection(const std::optional<std::string>& server) {
        if (auto spare = take_spare(server)) return spare;
        auto c = std::make_unique<PooledConnection>();
        c->conn = kernel.connect(server);
        c->alive = &alive;
        ++alive;
        ++connections_opened;
        return c;
    }

    // Takes a connection from the pool (or opens one) within the wait timeout.
    std::unique_ptr<PooledConnection> acquire(Pool& pool) {
        const auto deadline = Clock::now() + wait_timeout;
        std::unique_lock lock(pool.mutex);
        for (;;) {
            if (pool.closing) return nullptr;  // evicted meanwhile: the caller asks for a new pool
            if (!pool.idle.empty()) {
                auto c = std::move(pool.idle.back());
                pool.idle.pop_back();
                pool.last_used = Clock::now();
                return c;
            }
            if (pool.open < pool.max_size) {
                ++pool.open;
                pool.last_used = Clock::now();
                lock.unlock();
                try {
                    return open_connection(pool.server);
                } catch (...) {
                    lock.lock();
                    --pool.open;
                    pool.cv.notify_one();
                    throw;
                }
            }
            ++pool.waiting;
            const bool woke = pool.cv.wait_until(lock, deadline, [&] {
                return pool.closing || !pool.idle.empty() || pool.open < pool.max_size;
            });
            --pool.waiting;
            if (!woke) throw PoolTimeout(pool.tenant, pool.max_size, static_cast<long long>(wait_timeout.count()));
        }
    }

    // Makes a released connection safe for the next lease or closes it: a pqxx transaction object
    // still alive → quarantined; a transaction left open or aborted on the server → rolled back;
    // a statement still running or a broken session → closed.
    void clean_on_release(PooledConnection& c) {
        if (!c.conn) return;
        if (has_transaction_object(*c.conn)) {
            quarantine_connection(std::move(c.conn));
            return;
        }
        switch (transaction_status(*c.conn)) {
            case SessionTx::idle: return discard_on_release(c);
            case SessionTx::in_transaction:
            case SessionTx::in_error:
                try {
                    ++rollbacks_on_release;
                    pqxx::nontransaction tx(*c.conn);
                    tx.exec("ROLLBACK");
                    if (transaction_status(*c.conn) == SessionTx::idle) return discard_on_release(c);
                } catch (const std::exception&) {  // closed below
                }
                break;
            case SessionTx::active:
            case SessionTx::unknown: break;
        }
        c.conn.reset();
    }

    // Session modes: the session is reset as it goes back to the pool, with DISCARD ALL sent
    // without waiting (one statement, cheaper than its parts in a multi-statement string); the
    // next lease reads the answer before anything else. Transaction mode resets in every
    // transaction instead (behind a pooler the next transaction may run on another backend).
    void discard_on_release(PooledConnection& c) {
        if (mode == PoolMode::transaction || !c.used) return;
        if (send_discard_all(*c.conn)) {
            c.reset_pending = true;
            c.used = false;
            ++sessions_reset;
        } else {
            c.conn.reset();
        }
    }

    void release(const std::shared_ptr<Pool>& pool, std::unique_ptr<PooledConnection> c) {
        if (c) clean_on_release(*c);
        const bool usable = c && c->conn && c->conn->is_open();
        {
            std::lock_guard lock(pool->mutex);
            if (!pool->closing) {
                if (usable) {
                    pool->idle.push_back(std::move(c));
                } else {
                    --pool->open;
                }
                pool->last_used = Clock::now();
                pool->cv.notify_one();
                return;
            }
            --pool->open;
        }
        pool->cv.notify_all();
        if (usable) park(*pool, std::move(c));
    }

    void evict_idle() {
        if (idle_timeout.count() <= 0 || mode != PoolMode::per_tenant) return;
        std::unique_lock lock(pools_mutex);
        const auto cutoff = Clock::now() - idle_timeout;
        std::vector<std::string> expired;
        for (auto& [id, pool] : pools) {
            std::lock_guard pl(pool->mutex);
            if (pool->last_used < cutoff && pool->open == pool->idle.size()) expired.push_back(id);
        }
        for (const auto& id : expired) evict_locked(id, "idle");
        // Spares idle that long are closed too.
        if (!expired.empty() || pools.empty()) {
            std::lock_guard sl(mutex);
            for (auto& [server, spare] : spares) spare.clear();
        }
    }

    // Tenant pools (most recently leased first), then the shared/transaction-mode pools.
    std::vector<std::shared_ptr<Pool>> live_pools() const {
        std::vector<std::shared_ptr<Pool>> out;
        {
            std::shared_lock lock(pools_mutex);
            for (const auto& [id, pool] : pools) out.push_back(pool);
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return a->last_lease.load(std::memory_order_relaxed) > b->last_lease.load(std::memory_order_relaxed);
        });
        std::lock_guard lock(mutex);
        for (const auto& [server, pool] : server_pools) out.push_back(pool);
        return out;
    }
};

}  // namespace detail

// ---- leases ---------------------------------------------------------------------------------

TenantLease::TenantLease(std::shared_ptr<detail::ManagerState> state, std::shared_ptr<detail::Pool> pool,
                         std::unique_ptr<detail::PooledConnection> conn,
                         std::shared_ptr<const detail::TenantRoute> route, bool with_shared)
    : state_(std::move(state)), pool_(std::move(pool)), conn_(std::move(conn)), route_(std::move(route)),
      with_shared_(with_shared) {}

TenantLease::TenantLease(TenantLease&& other) noexcept
    : state_(std::move(other.state_)), pool_(std::move(other.pool_)), conn_(std::move(other.conn_)),
      route_(std::move(other.route_)), with_shared_(other.with_shared_), broken_(other.broken_),
      ready_(other.ready_) {}

TenantLease& TenantLease::operator=(TenantLease&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        pool_ = std::move(other.pool_);
        conn_ = std::move(other.conn_);
        route_ = std::move(other.route_);
        with_shared_ = other.with_shared_;
        broken_ = other.broken_;
        ready_ = other.ready_;
    }
    return *this;
}

TenantLease::~TenantLease() { release(); }

void TenantLease::release() {
    if (state_ && pool_ && conn_) {
        if (state_->kernel_alive.expired()) {
            // The Kernel is gone: nothing may be emitted or parked; the connection is closed.
            if (conn_->conn && detail::has_transaction_object(*conn_->conn)) (void)conn_->conn.release();
        } else {
            state_->release(pool_, std::move(conn_));
        }
    }
    conn_.reset();
    pool_.reset();
    ready_ = false;
}

namespace {
const std::string no_value;
}

const std::string& TenantLease::tenant_id() const { return route_ ? route_->id : no_value; }
const std::string& TenantLease::schema() const { return route_ ? route_->schema : no_value; }
const std::string& TenantLease::search_path() const {
    return with_shared_ ? route_->search_path_shared : route_->search_path;
}

detail::PooledConnection& TenantLease::pooled() {
    if (!conn_) throw InternalError("this lease was released");
    if (state_->kernel_alive.expired())
        throw InternalError("the mt::Kernel this lease came from was destroyed; keep the Kernel alive longer than its "
                    "TenantManager and every lease");
    return *conn_;
}

void TenantLease::reconnect() {
    auto& c = *conn_;
    broken_ = false;
    ready_ = false;
    c.used = false;
    if (c.conn && detail::has_transaction_object(*c.conn)) state_->quarantine_connection(std::move(c.conn));
    c.conn.reset();
    c.reset_pending = false;
    c.conn = state_->kernel.connect(pool_->server);
    ++state_->connections_opened;
}

// Reads the answer of the DISCARD ALL sent when the connection was last released; a failed reset
// closes the connection (the session's state is unknown).
static bool reset_finished(detail::PooledConnection& c) {
    if (!c.reset_pending) return true;
    c.reset_pending = false;
    return c.conn && detail::finish_discard_all(*c.conn);
}

// Before anything is sent: the release-time reset has answered, and the session is still there
// (else a new connection, before the statement leaves rather than after).
void TenantLease::ensure_connected(detail::PooledConnection& c) {
    if (!reset_finished(c)) broken_ = true;
    if (broken_ || !c.conn || !c.conn->is_open() || !detail::session_alive(*c.conn, !ready_)) reconnect();
}

void TenantLease::ensure_session() {
    auto& c = pooled();
    ensure_connected(c);
    if (ready_) return;
    if (state_->mode == PoolMode::transaction) {
        // The server session is reset by every transaction; the lease's start drops libpqxx's
        // record of an earlier lease's prepared statements.
        detail::forget_session_registries(*c.conn);
        detail::drop_notifications(*c.conn);
        ready_ = true;
        return;
    }
    const bool reset = c.used;  // only if the release-time reset did not happen (a fresh lease on a used session)
    c.used = true;
    pqxx::nontransaction tx(*c.conn);
    tx.exec(state_->session_setup(search_path(), reset, false));
    detail::drop_notifications(*c.conn);  // any that arrived before UNLISTEN took effect
    if (reset) {
        detail::forget_session_registries(*c.conn);
        ++state_->sessions_reset;
    }
    ready_ = true;
    ++state_->search_path_sets;
}

pqxx::connection& TenantLease::connection() & {
    pooled();
    with_safe_retry([&] {
        try {
            ensure_session();
        } catch (const pqxx::broken_connection&) {
            broken_ = true;
            throw;
        }
        return 0;
    });
    return *conn_->conn;
}

std::unique_ptr<pqxx::work> TenantLease::begin() & {
    auto& conn = connection();
    auto tx = std::make_unique<pqxx::work>(conn);
    if (state_->mode == PoolMode::transaction) {
        auto& c = *conn_;
        c.used = true;
        tx->exec(state_->session_setup(search_path(), true, true));
        detail::forget_session_registries(conn, true);  // prepared again on first use
    }
    return tx;
}

void TenantLease::commit(pqxx::work& tx) {
    try {
        tx.commit();
    } catch (const pqxx::in_doubt_error& e) {
        broken_ = true;
        throw OutcomeUnknown(tenant_id(), "COMMIT", e.what());
    } catch (const pqxx::broken_connection& e) {
        broken_ = true;
        throw OutcomeUnknown(tenant_id(), "COMMIT", e.what());
    }
}

bool TenantLease::retry_allowed(const std::exception& e, int attempt) const {
    // Outcome unknown (the statement or COMMIT left and no answer came back) and refused values
    // are never retried; anything else here failed before sending or was rolled back by the server.
    if (dynamic_cast<const OutcomeUnknown*>(&e) || dynamic_cast<const pqxx::in_doubt_error*>(&e) ||
        dynamic_cast<const pqxx::statement_completion_unknown*>(&e) ||
        dynamic_cast<const InvalidParameter*>(&e))
        return false;
    return state_->kernel.should_retry(tenant_id(), e, attempt);
}

// One attempt at a statement, with the fewest round trips that keep the session clean.
pqxx::result TenantLease::run(const std::string& sql, const SqlParams& params) {
    auto& c = pooled();
    ensure_connected(c);
    check_statement(sql, params, tenant_id(), detail::client_encoding_is_utf8(*c.conn));
    const bool fold = params.empty() && foldable(sql);
    bool sent = false;  // the statement itself has left: a lost connection now means "outcome unknown"
    try {
        pqxx::nontransaction tx(*c.conn);
        if (state_->mode == PoolMode::transaction) {
            // Every transaction starts clean behind a pooler: the reset and SET LOCAL open it.
            c.used = true;
            const std::string setup = state_->session_setup(search_path(), true, true);
            if (!ready_) {
                detail::forget_session_registries(*c.conn);  // a new lease drops earlier definitions
                ready_ = true;
            } else {
                detail::forget_session_registries(*c.conn, true);  // prepared again on first use
            }
            if (fold) {
                // The implicit transaction of a multi-statement query scopes the SET LOCAL (one
                // round trip, one transaction for PgBouncer).
                sent = true;
                return tx.exec(setup + "; " + sql);
            }
            tx.exec("BEGIN; " + setup);
            try {
                sent = true;
                auto r = detail::exec_checked(tx, sql, params);
                tx.exec("COMMIT");
                return r;
            } catch (const pqxx::broken_connection&) {
                throw;
            } catch (...) {
                try {
                    tx.exec("ROLLBACK");
                } catch (...) {  // the statement's own error is the one to report
                }
                throw;
            }
        }
        if (!ready_) {
            const bool reset = c.used;
            c.used = true;
            const std::string setup = state_->session_setup(search_path(), reset, false);
            if (reset) {
                detail::forget_session_registries(*c.conn);
                ++state_->sessions_reset;
            }
            if (fold) {
                // A failing statement rolls the reset's settings back with it (same implicit
                // transaction): ready_ stays false and the next statement sets the session up again.
                sent = true;
                auto r = tx.exec(setup + "; " + sql);
                detail::drop_notifications(*c.conn);  // any that arrived before UNLISTEN took effect
                ready_ = true;
                ++state_->search_path_folded;
                return r;
            }
            tx.exec(setup);
            detail::drop_notifications(*c.conn);
            ready_ = true;
            ++state_->search_path_sets;
        }
        sent = true;
        return detail::exec_checked(tx, sql, params);
    } catch (const pqxx::broken_connection& e) {
        broken_ = true;
        if (sent) throw OutcomeUnknown(tenant_id(), sql, e.what());
        throw;
    }
}

pqxx::result TenantLease::query(const std::string& sql, const SqlParams& params) {
    pooled();
    const auto start = Clock::now();
    bool ok = false;
    std::string error;
    try {
        auto result = with_safe_retry([&] {
            try {
                return run(sql, params);
            } catch (const pqxx::broken_connection&) {
                // The statement never ran on a live session (e.g. the server restarted since the
                // connection was pooled): retried on a fresh connection when the policy allows.
                broken_ = true;
                throw;
            }
        });
        ok = true;
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_QUERY;
        ev.tenant = sdk::str(tenant_id());
        ev.schema = sdk::str(schema());
        ev.statement = sdk::str(sql);
        ev.duration_s = ms_between(start, Clock::now()) / 1000.0;
        ev.ok = 1;
        state_->kernel.emit(ev);
        return result;
    } catch (const std::exception& e) {
        if (!ok) error = e.what();
        mt_event ev{};
        if (dynamic_cast<const OutcomeUnknown*>(&e)) ev.reason = sdk::str(std::string_view("outcome_unknown"));
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_QUERY;
        ev.tenant = sdk::str(tenant_id());
        ev.schema = sdk::str(schema());
        ev.statement = sdk::str(sql);
        ev.error = sdk::str(error);
        ev.duration_s = ms_between(start, Clock::now()) / 1000.0;
        ev.ok = 0;
        state_->kernel.emit(ev);
        throw;
    }
}

std::string expand_schemas(const std::string& sql, const std::string& tenant_schema, const std::string& shared_schema) {
    std::string out;
    out.reserve(sql.size() + 32);
    const std::string tenant = quote_ident(tenant_schema) + ".";
    const std::string shared = quote_ident(shared_schema) + ".";
    for (size_t i = 0; i < sql.size();) {
        if (sql.compare(i, 8, "$tenant.") == 0) {
            out += tenant;
            i += 8;
        } else if (sql.compare(i, 8, "$shared.") == 0) {
            out += shared;
            i += 8;
        } else {
            out += sql[i++];
        }
    }
    return out;
}

CrossSchemaQuery::CrossSchemaQuery(TenantLease lease, std::string shared_schema)
    : lease_(std::move(lease)), shared_(std::move(shared_schema)) {}

pqxx::result CrossSchemaQuery::query(const std::string& sql, const SqlParams& params) {
    return lease_.query(expand_schemas(sql, lease_.schema(), shared_), params);
}

// ---- manager --------------------------------------------------------------------------------

namespace detail {

// Background idle eviction; stops with the manager.
class IdleReaper {
public:
    explicit IdleReaper(std::weak_ptr<detail::ManagerState> state, std::chrono::milliseconds period)
        : thread_([state, period](std::stop_token stop) {
              std::mutex m;
              std::condition_variable_any cv;
              std::unique_lock lock(m);
              while (!stop.stop_requested()) {
                  cv.wait_for(lock, stop, period, [] { return false; });
                  if (stop.stop_requested()) break;
                  if (auto s = state.lock()) s->evict_idle();
              }
          }) {}

private:
    std::jthread thread_;
};

}  // namespace detail

TenantManager::TenantManager(const Kernel& kernel)
    : kernel_(kernel), state_(std::make_shared<detail::ManagerState>(kernel)) {
    const auto idle = state_->idle_timeout;
    if (idle.count() > 0 && state_->mode == PoolMode::per_tenant) {
        const auto period = std::clamp(idle / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
        reaper_ = std::make_unique<detail::IdleReaper>(state_, period);
    }
}

TenantManager::~TenantManager() = default;

TenantLease TenantManager::tenant(const std::string& id, LeaseOptions options) {
    auto route = state_->route(id);  // validates the id before any SQL
    for (;;) {
        std::shared_ptr<detail::Pool> pool = state_->mode == PoolMode::per_tenant
                                                 ? state_->tenant_pool(*route)
                                                 : state_->common_pool(state_->server_pools, route->server, std::string());
        auto conn = state_->acquire(*pool);
        if (!conn) continue;  // the pool was evicted while we waited
        // The search_path is applied by the lease's first statement (see TenantLease::run).
        return TenantLease(state_, std::move(pool), std::move(conn), std::move(route), options.with_shared);
    }
}

TenantLease TenantManager::shared() {
    const auto& route = state_->shared_route;
    auto& table = state_->mode == PoolMode::per_tenant ? state_->shared_schema_pools : state_->server_pools;
    auto pool = state_->common_pool(table, std::nullopt, route->schema);
    auto conn = state_->acquire(*pool);
    return TenantLease(state_, std::move(pool), std::move(conn), route, false);
}

CrossSchemaQuery TenantManager::cross_schema(const std::string& id) {
    return CrossSchemaQuery(tenant(id, {true}), kernel_.manifest().isolation.shared_schema);
}

std::optional<std::string> TenantManager::server_of(const std::string& id) { return state_->route(id, false)->server; }

void TenantManager::refresh_routes() { state_->routes.refresh(); }

void TenantManager::evict(const std::string& id) {
    std::unique_lock lock(state_->pools_mutex);
    state_->evict_locked(id, "manual");
}

ManagerStats TenantManager::stats() const {
    ManagerStats s;
    size_t connections = 0;
    auto count = [&](const std::shared_ptr<detail::Pool>& p) {
        std::lock_guard pl(p->mutex);
        connections += p->open;
    };
    {
        std::shared_lock lock(state_->pools_mutex);
        if (state_->mode == PoolMode::per_tenant) s.pools_active = state_->pools.size();
        for (const auto& [id, p] : state_->pools) count(p);
    }
    {
        std::lock_guard lock(state_->mutex);
        if (state_->mode != PoolMode::per_tenant) s.pools_active = state_->server_pools.size();
        for (const auto& [server, p] : state_->server_pools) count(p);
        for (const auto& [server, p] : state_->shared_schema_pools) count(p);
        for (const auto& [server, spare] : state_->spares) connections += spare.size();
    }
    s.pools_max = state_->mode == PoolMode::per_tenant ? state_->max_pools : 1;
    s.connections = connections;
    s.pools_created = state_->pools_created;
    s.evictions = state_->evictions;
    s.connections_opened = state_->connections_opened;
    s.search_path_sets = state_->search_path_sets;
    s.search_path_folded = state_->search_path_folded;
    s.sessions_reset = state_->sessions_reset;
    s.rollbacks_on_release = state_->rollbacks_on_release;
    s.connections_quarantined = state_->connections_quarantined;
    return s;
}

WarmupReport TenantManager::warmup(const std::vector<std::string>& ids, WarmupOptions options) {
    const auto start = Clock::now();
    WarmupReport report;
    report.details.resize(ids.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t i; (i = next++) < ids.size();) {
            auto& d = report.details[i];
            d.tenant = ids[i];
            const auto t0 = Clock::now();
            try {
                if (state_->mode == PoolMode::per_tenant) {
                    std::shared_lock lock(state_->pools_mutex);
                    auto it = state_->pools.find(ids[i]);
                    if (it != state_->pools.end()) {
                        std::lock_guard pl(it->second->mutex);
                        d.already_warm = it->second->open > 0;
                    }
                }
                const auto server = state_->route(ids[i])->server;
                auto lease = tenant(ids[i]);
                // The same check as health_check's: the schema exists on the tenant's own server.
                if (options.ping) detail::probe_tenant(kernel_, lease, server);
                d.ok = true;
            } catch (const std::exception& e) {
                d.ok = false;
                d.error = e.what();
            }
            d.duration_ms = ms_between(t0, Clock::now());
        }
    };
    {
        std::vector<std::jthread> workers;
        const int n = std::max(1, std::min<int>(options.concurrency, static_cast<int>(ids.size())));
        for (int w = 0; w < n; ++w) workers.emplace_back(work);
    }
    report.total = ids.size();
    for (const auto& d : report.details) {
        if (d.ok) ++report.succeeded;
        else ++report.failed;
        if (d.already_warm) ++report.already_warm;
    }
    report.duration_ms = ms_between(start, Clock::now());
    return report;
}

namespace detail {

// What health_check (tenant_health.cpp) reads from the pools and routes.

bool per_tenant_mode(const ManagerState& state) { return state.mode == PoolMode::per_tenant; }

RoutedTenant route_of(ManagerState& state, const std::string& id) {
    const auto route = state.route(id);
    return RoutedTenant{route->schema, route->server};
}

std::vector<std::string> live_tenants(const ManagerState& state) {
    std::vector<std::string> out;
    for (const auto& pool : state.live_pools())
        if (!pool->tenant.empty()) out.push_back(pool->tenant);
    return out;
}

std::vector<std::pair<std::string, std::optional<std::string>>> leased_tenants(const ManagerState& state) {
    std::vector<std::pair<std::string, std::optional<std::string>>> out;
    std::shared_lock lock(state.route_mutex);
    for (const auto& [id, route] : state.route_cache) out.emplace_back(id, route->server);
    return out;
}

namespace {
PoolFigures figures_of(const std::shared_ptr<Pool>& pool) {
    if (!pool) return {};
    std::lock_guard pl(pool->mutex);
    return PoolFigures{pool->open, pool->idle.size(), pool->waiting};
}
}  // namespace

PoolFigures tenant_figures(const ManagerState& state, const std::string& id, const std::optional<std::string>& server) {
    std::shared_ptr<Pool> pool;
    if (state.mode == PoolMode::per_tenant) {
        std::shared_lock lock(state.pools_mutex);
        if (auto it = state.pools.find(id); it != state.pools.end()) pool = it->second;
    } else {
        std::lock_guard lock(state.mutex);
        if (auto it = state.server_pools.find(server); it != state.server_pools.end()) pool = it->second;
    }
    return figures_of(pool);
}

PoolFigures shared_figures(const ManagerState& state) {
    std::shared_ptr<Pool> pool;
    {
        std::lock_guard lock(state.mutex);
        const auto& table = state.mode == PoolMode::per_tenant ? state.shared_schema_pools : state.server_pools;
        if (auto it = table.find(std::nullopt); it != table.end()) pool = it->second;
    }
    return figures_of(pool);
}

}  // namespace detail

std::string TenantManager::metrics_text() const {
    // Fresh pool gauges first, then what the sinks render (the same text as mt::metrics_text).
    const auto s = stats();
    for (const auto& pool : state_->live_pools()) {
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_POOL_STATS;
        ev.tenant = sdk::str(pool->tenant);
        ev.schema = sdk::str(pool->schema);
        {
            std::lock_guard pl(pool->mutex);
            ev.idle = static_cast<int64_t>(pool->idle.size());
            ev.active = static_cast<int64_t>(pool->open - pool->idle.size());
            ev.waiting = static_cast<int64_t>(pool->waiting);
        }
        ev.pools_active = static_cast<int64_t>(s.pools_active);
        ev.pools_max = static_cast<int64_t>(s.pools_max);
        kernel_.emit(ev);
    }
    return mt::metrics_text(kernel_);
}

std::string to_json(const WarmupReport& r) {
    using nlohmann::json;
    json details = json::array();
    for (const auto& d : r.details) {
        json j = {{"tenant", d.tenant}, {"ok", d.ok}, {"already_warm", d.already_warm}, {"duration_ms", d.duration_ms}};
        if (!d.error.empty()) j["error"] = d.error;
        details.push_back(j);
    }
    return json{{"total", r.total},
                {"succeeded", r.succeeded},
                {"failed", r.failed},
                {"already_warm", r.already_warm},
                {"duration_ms", r.duration_ms},
                {"details", details}}
        .dump();
}

}  // namespace mt
