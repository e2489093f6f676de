// Pools and leases. Per-tenant mode keeps one pool per tenant with an LRU cap (by lease use) and
// idle eviction; an evicted pool's idle backends are kept as spares and handed to the next new
// pool (a search_path switch instead of a new backend), and leases in flight on an evicted pool
// finish normally. Shared and transaction modes keep one pool per server for every tenant.
#include <mt/errors.hpp>
#include <mt/ident.hpp>
#include <mt/tenant_manager.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <ctime>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace mt {

namespace {
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string iso_now() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}
}  // namespace

namespace detail {

struct PooledConnection {
    std::unique_ptr<pqxx::connection> conn;
    std::string search_path;  // the session's search_path; empty: the server default
};

class Pool {
public:
    Pool(std::string tenant, std::string schema, std::optional<std::string> server, size_t max_size)
        : tenant(std::move(tenant)), schema(std::move(schema)), server(std::move(server)), max_size(max_size) {}

    const std::string tenant;  // empty for the shared/transaction-mode pool
    const std::string schema;
    const std::optional<std::string> server;
    const size_t max_size;

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
    explicit ManagerState(const Kernel& kernel) : kernel(kernel), manifest(kernel.manifest()) {
        const auto& db = manifest.database;
        mode = db.pool_mode;
        pool_size = static_cast<size_t>(db.pool_size);
        max_pools = static_cast<size_t>(db.max_pools);
        wait_timeout = db.connect_timeout;
        idle_timeout = db.pool_idle_timeout;
        spare_cap = pool_size * 2;
    }

    const Kernel& kernel;
    const Manifest& manifest;
    PoolMode mode;
    size_t pool_size, max_pools, spare_cap;
    std::chrono::milliseconds wait_timeout, idle_timeout;

    mutable std::mutex mutex;  // pools, lru, spares, shared pools, routes
    std::unordered_map<std::string, std::shared_ptr<Pool>> pools;  // per-tenant mode
    std::list<std::string> lru;                                     // front: most recently used
    std::unordered_map<std::string, std::list<std::string>::iterator> lru_pos;
    std::map<std::optional<std::string>, std::shared_ptr<Pool>> server_pools;  // shared/transaction modes
    std::map<std::optional<std::string>, std::shared_ptr<Pool>> shared_schema_pools;
    std::map<std::optional<std::string>, std::vector<std::unique_ptr<PooledConnection>>> spares;
    std::optional<std::unordered_map<std::string, std::optional<std::string>>> routes;
    ManagerStats counters;

    std::string search_path_for(const std::string& schema, bool with_shared) const {
        std::string path = quote_ident(schema);
        if (with_shared && schema != manifest.isolation.shared_schema)
            path += ", " + quote_ident(manifest.isolation.shared_schema);
        return path;
    }

    std::optional<std::string> server_of(const std::string& id) {
        if (manifest.servers.empty()) return std::nullopt;
        std::lock_guard lock(mutex);
        if (!routes) {
            routes.emplace();
            for (auto& t : kernel.discover_tenants()) (*routes)[t.id] = t.server;
        }
        auto it = routes->find(id);
        return it == routes->end() ? std::nullopt : it->second;
    }

    void emit_pool(mt_event_type type, const Pool& pool, const std::string& reason = {}) const {
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = type;
        ev.tenant = sdk::str(pool.tenant);
        ev.schema = sdk::str(pool.schema);
        ev.reason = sdk::str(reason);
        ev.pools_max = static_cast<int64_t>(mode == PoolMode::per_tenant ? max_pools : 1);
        ev.pools_active = static_cast<int64_t>(mode == PoolMode::per_tenant ? pools.size() : server_pools.size());
        kernel.emit(ev);
    }

    // Per-tenant mode: the tenant's pool, created (evicting the least recently used) if needed.
    std::shared_ptr<Pool> tenant_pool(const std::string& id, const std::string& schema,
                                      const std::optional<std::string>& server) {
        std::lock_guard lock(mutex);
        if (auto it = pools.find(id); it != pools.end()) {
            lru.splice(lru.begin(), lru, lru_pos[id]);
            return it->second;
        }
        while (pools.size() >= max_pools && !lru.empty()) evict_locked(lru.back(), "lru");
        auto pool = std::make_shared<Pool>(id, schema, server, pool_size);
        pools.emplace(id, pool);
        lru.push_front(id);
        lru_pos[id] = lru.begin();
        ++counters.pools_created;
        emit_pool(MT_EVENT_POOL_CREATED, *pool);
        return pool;
    }

    std::shared_ptr<Pool> common_pool(std::map<std::optional<std::string>, std::shared_ptr<Pool>>& table,
                                      const std::optional<std::string>& server, const std::string& schema) {
        std::lock_guard lock(mutex);
        auto& pool = table[server];
        if (!pool) {
            pool = std::make_shared<Pool>(std::string(), schema, server, pool_size);
            ++counters.pools_created;
            emit_pool(MT_EVENT_POOL_CREATED, *pool);
        }
        return pool;
    }

    // Caller holds mutex.
    void evict_locked(const std::string& id, const std::string& reason) {
        auto it = pools.find(id);
        if (it == pools.end()) return;
        auto pool = it->second;
        pools.erase(it);
        lru.erase(lru_pos[id]);
        lru_pos.erase(id);
        ++counters.evictions;
        std::vector<std::unique_ptr<PooledConnection>> freed;
        {
            std::lock_guard pl(pool->mutex);
            pool->closing = true;
            pool->open -= pool->idle.size();
            freed = std::move(pool->idle);
            pool->idle.clear();
        }
        pool->cv.notify_all();
        auto& spare = spares[pool->server];
        for (auto& c : freed)
            if (spare.size() < spare_cap && c->conn && c->conn->is_open()) spare.push_back(std::move(c));
        emit_pool(MT_EVENT_POOL_EVICTED, *pool, reason);
    }

    std::unique_ptr<PooledConnection> take_spare(const std::optional<std::string>& server) {
        std::lock_guard lock(mutex);
        auto& spare = spares[server];
        if (spare.empty()) return nullptr;
        auto c = std::move(spare.back());
        spare.pop_back();
        return c;
    }

    std::unique_ptr<PooledConnection> open_connection(const std::optional<std::string>& server) {
        if (auto spare = take_spare(server)) return spare;
        auto c = std::make_unique<PooledConnection>();
        c->conn = kernel.connect(server);
        std::lock_guard lock(mutex);
        ++counters.connections_opened;
        return c;
    }

    // Takes a connection from the pool (or opens one) within the wait timeout.
    std::unique_ptr<PooledConnection> acquire(Pool& pool, const std::string& search_path) {
        const auto deadline = Clock::now() + wait_timeout;
        std::unique_lock lock(pool.mutex);
        for (;;) {
            if (pool.closing) return nullptr;  // evicted meanwhile: the caller asks for a new pool
            if (!pool.idle.empty()) {
                // Prefer a connection already on this search_path (no switch needed).
                size_t pick = pool.idle.size() - 1;
                for (size_t i = pool.idle.size(); i-- > 0;)
                    if (pool.idle[i]->search_path == search_path) {
                        pick = i;
                        break;
                    }
                auto c = std::move(pool.idle[pick]);
                pool.idle.erase(pool.idle.begin() + static_cast<std::ptrdiff_t>(pick));
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
            if (!woke)
                throw OperationError("timed out after " + std::to_string(wait_timeout.count()) +
                                     "ms waiting for a connection" +
                                     (pool.tenant.empty() ? std::string() : " for tenant " + pool.tenant) +
                                     ": all " + std::to_string(pool.max_size) +
                                     " are in use (raise database.pool_size or release leases sooner)");
        }
    }

    void release(const std::shared_ptr<Pool>& pool, std::unique_ptr<PooledConnection> c) {
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
        if (usable) {
            std::lock_guard lock(mutex);
            auto& spare = spares[pool->server];
            if (spare.size() < spare_cap) spare.push_back(std::move(c));
        }
    }

    static void set_search_path(PooledConnection& c, const std::string& search_path) {
        if (c.search_path == search_path) return;
        pqxx::nontransaction tx(*c.conn);
        exec_params(tx, "SELECT set_config('search_path', $1, false)", {search_path});
        c.search_path = search_path;
    }

    void evict_idle() {
        if (idle_timeout.count() <= 0 || mode != PoolMode::per_tenant) return;
        std::lock_guard lock(mutex);
        const auto cutoff = Clock::now() - idle_timeout;
        std::vector<std::string> expired;
        for (auto& [id, pool] : pools) {
            std::lock_guard pl(pool->mutex);
            if (pool->last_used < cutoff && pool->open == pool->idle.size()) expired.push_back(id);
        }
        for (const auto& id : expired) evict_locked(id, "idle");
        // Spares idle that long are closed too.
        for (auto& [server, spare] : spares)
            if (!expired.empty() || pools.empty()) spare.clear();
    }

    std::vector<std::shared_ptr<Pool>> live_pools() const {
        std::lock_guard lock(mutex);
        std::vector<std::shared_ptr<Pool>> out;
        for (const auto& id : lru) out.push_back(pools.at(id));
        for (const auto& [server, pool] : server_pools) out.push_back(pool);
        return out;
    }
};

}  // namespace detail

// ---- leases ---------------------------------------------------------------------------------

TenantLease::TenantLease(std::shared_ptr<detail::ManagerState> state, std::shared_ptr<detail::Pool> pool,
                         std::unique_ptr<detail::PooledConnection> conn, std::string tenant, std::string schema,
                         std::string search_path)
    : state_(std::move(state)), pool_(std::move(pool)), conn_(std::move(conn)), tenant_(std::move(tenant)),
      schema_(std::move(schema)), search_path_(std::move(search_path)) {}

TenantLease::TenantLease(TenantLease&& other) noexcept
    : state_(std::move(other.state_)), pool_(std::move(other.pool_)), conn_(std::move(other.conn_)),
      tenant_(std::move(other.tenant_)), schema_(std::move(other.schema_)),
      search_path_(std::move(other.search_path_)), broken_(other.broken_) {}

TenantLease& TenantLease::operator=(TenantLease&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        pool_ = std::move(other.pool_);
        conn_ = std::move(other.conn_);
        tenant_ = std::move(other.tenant_);
        schema_ = std::move(other.schema_);
        search_path_ = std::move(other.search_path_);
        broken_ = other.broken_;
    }
    return *this;
}

TenantLease::~TenantLease() { release(); }

void TenantLease::release() {
    if (state_ && pool_ && conn_) state_->release(pool_, std::move(conn_));
    conn_.reset();
    pool_.reset();
}

const std::string& TenantLease::tenant_id() const { return tenant_; }
const std::string& TenantLease::schema() const { return schema_; }

pqxx::connection& TenantLease::connection() {
    if (!conn_) throw Error("this lease was released");
    return *conn_->conn;
}

void TenantLease::reconnect() {
    broken_ = false;
    conn_->conn = state_->kernel.connect(pool_->server);
    conn_->search_path.clear();
    if (state_->mode != PoolMode::transaction) detail::ManagerState::set_search_path(*conn_, search_path_);
}

std::unique_ptr<pqxx::work> TenantLease::begin() {
    auto tx = std::make_unique<pqxx::work>(connection());
    if (state_->mode == PoolMode::transaction)
        exec_params(*tx, "SELECT set_config('search_path', $1, true)", {search_path_});
    return tx;
}

pqxx::result TenantLease::query(const std::string& sql, const SqlParams& params) {
    const auto start = Clock::now();
    bool ok = false;
    std::string error;
    try {
        auto result = state_->kernel.with_retry(tenant_, [&] {
            try {
                if (broken_ || !connection().is_open()) reconnect();
                if (state_->mode == PoolMode::transaction) {
                    auto tx = begin();
                    auto r = exec_params(*tx, sql, params);
                    tx->commit();
                    return r;
                }
                pqxx::nontransaction tx(connection());
                return exec_params(tx, sql, params);
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
        ev.tenant = sdk::str(tenant_);
        ev.schema = sdk::str(schema_);
        ev.statement = sdk::str(sql);
        ev.duration_s = ms_between(start, Clock::now()) / 1000.0;
        ev.ok = 1;
        state_->kernel.emit(ev);
        return result;
    } catch (const std::exception& e) {
        if (!ok) error = e.what();
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_QUERY;
        ev.tenant = sdk::str(tenant_);
        ev.schema = sdk::str(schema_);
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
    const std::string schema = kernel_.namer().schema_name(id);  // validates before any SQL
    const auto server = state_->server_of(id);
    const std::string search_path = state_->search_path_for(schema, options.with_shared);
    for (;;) {
        std::shared_ptr<detail::Pool> pool =
            state_->mode == PoolMode::per_tenant
                ? state_->tenant_pool(id, schema, server)
                : state_->common_pool(state_->server_pools, server, std::string());
        auto conn = state_->acquire(*pool, search_path);
        if (!conn) continue;  // the pool was evicted while we waited
        TenantLease lease(state_, pool, std::move(conn), id, schema, search_path);
        if (state_->mode != PoolMode::transaction) {
            try {
                detail::ManagerState::set_search_path(*lease.conn_, search_path);
            } catch (const pqxx::broken_connection&) {
                kernel_.with_retry(id, [&] {
                    lease.reconnect();
                    return 0;
                });
            }
        }
        return lease;
    }
}

TenantLease TenantManager::shared() {
    const std::string& schema = kernel_.manifest().isolation.shared_schema;
    const std::string search_path = state_->search_path_for(schema, false);
    auto& table = state_->mode == PoolMode::per_tenant ? state_->shared_schema_pools : state_->server_pools;
    auto pool = state_->common_pool(table, std::nullopt, schema);
    auto conn = state_->acquire(*pool, search_path);
    TenantLease lease(state_, pool, std::move(conn), std::string(), schema, search_path);
    if (state_->mode != PoolMode::transaction) detail::ManagerState::set_search_path(*lease.conn_, search_path);
    return lease;
}

CrossSchemaQuery TenantManager::cross_schema(const std::string& id) {
    return CrossSchemaQuery(tenant(id, {true}), kernel_.manifest().isolation.shared_schema);
}

void TenantManager::evict(const std::string& id) {
    std::lock_guard lock(state_->mutex);
    state_->evict_locked(id, "manual");
}

ManagerStats TenantManager::stats() const {
    std::lock_guard lock(state_->mutex);
    ManagerStats s = state_->counters;
    s.pools_active = state_->mode == PoolMode::per_tenant ? state_->pools.size() : state_->server_pools.size();
    s.pools_max = state_->mode == PoolMode::per_tenant ? state_->max_pools : 1;
    size_t connections = 0;
    auto count = [&](const std::shared_ptr<detail::Pool>& p) {
        std::lock_guard pl(p->mutex);
        connections += p->open;
    };
    for (const auto& [id, p] : state_->pools) count(p);
    for (const auto& [server, p] : state_->server_pools) count(p);
    for (const auto& [server, p] : state_->shared_schema_pools) count(p);
    for (const auto& [server, spare] : state_->spares) connections += spare.size();
    s.connections = connections;
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
                    std::lock_guard lock(state_->mutex);
                    auto it = state_->pools.find(ids[i]);
                    if (it != state_->pools.end()) {
                        std::lock_guard pl(it->second->mutex);
                        d.already_warm = it->second->open > 0;
                    }
                }
                auto lease = tenant(ids[i]);
                if (options.ping) {
                    const auto r = kernel_.with_retry(ids[i], [&] {
                        pqxx::nontransaction tx(lease.connection());
                        return exec_params(tx, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                                           {lease.schema()});
                    });
                    if (r.empty())
                        throw OperationError("schema " + quote_ident(lease.schema()) + " does not exist");
                }
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

std::string to_string(HealthStatus s) {
    switch (s) {
        case HealthStatus::ok: return "ok";
        case HealthStatus::degraded: return "degraded";
        case HealthStatus::unhealthy: return "unhealthy";
    }
    return "?";
}

HealthReport TenantManager::health_check(HealthOptions options) {
    const auto start = Clock::now();
    HealthReport report;
    report.timestamp = iso_now();
    const double slow_ms = static_cast<double>(options.timeout.count()) / 2.0;

    auto ping = [&](TenantLease& lease) {
        kernel_.with_retry(lease.tenant_id(), [&] {
            try {
                if (lease.broken_ || !lease.connection().is_open()) lease.reconnect();
                pqxx::nontransaction tx(lease.connection());
                tx.exec("SELECT 1");
            } catch (const pqxx::broken_connection&) {
                lease.broken_ = true;
                throw;
            }
            return 0;
        });
    };
    auto check_pool = [&](const std::string& id, const std::shared_ptr<detail::Pool>& pool) {
        PoolHealth h;
        h.tenant = id;
        h.schema = pool ? pool->schema : std::string();
        if (pool) {
            std::lock_guard pl(pool->mutex);
            h.total = pool->open;
            h.idle = pool->idle.size();
            h.waiting = pool->waiting;
        }
        if (options.ping) {
            const auto t0 = Clock::now();
            try {
                auto lease = id.empty() ? shared() : tenant(id);
                h.schema = lease.schema();
                ping(lease);
                h.response_ms = ms_between(t0, Clock::now());
                if (h.response_ms > static_cast<double>(options.timeout.count())) {
                    h.status = HealthStatus::unhealthy;
                    h.error = "ping took " + std::to_string(static_cast<long>(h.response_ms)) + "ms";
                } else if (h.waiting > 0 || h.response_ms > slow_ms) {
                    h.status = HealthStatus::degraded;
                }
            } catch (const std::exception& e) {
                h.response_ms = ms_between(t0, Clock::now());
                h.status = HealthStatus::unhealthy;
                h.error = e.what();
            }
        } else if (h.waiting > 0) {
            h.status = HealthStatus::degraded;
        }
        return h;
    };

    if (!options.tenants.empty()) {
        for (const auto& id : options.tenants) {
            std::shared_ptr<detail::Pool> pool;
            if (state_->mode == PoolMode::per_tenant) {
                std::lock_guard lock(state_->mutex);
                if (auto it = state_->pools.find(id); it != state_->pools.end()) pool = it->second;
            }
            report.pools.push_back(check_pool(id, pool));
        }
    } else {
        for (const auto& pool : state_->live_pools())
            if (!pool->tenant.empty()) report.pools.push_back(check_pool(pool->tenant, pool));
    }
    // The shared schema (and, in shared/transaction mode, the one pool every tenant uses).
    {
        const auto h = check_pool(std::string(), nullptr);
        report.shared.status = h.status;
        report.shared.response_ms = h.response_ms;
        report.shared.error = h.error;
    }
    report.total_pools = report.pools.size();
    for (const auto& p : report.pools) {
        if (p.status == HealthStatus::degraded) ++report.degraded_pools;
        if (p.status == HealthStatus::unhealthy) ++report.unhealthy_pools;
    }
    report.healthy = report.unhealthy_pools == 0 && report.shared.status != HealthStatus::unhealthy;
    report.duration_ms = ms_between(start, Clock::now());

    mt_event ev{};
    ev.struct_size = sizeof ev;
    ev.type = MT_EVENT_HEALTH;
    ev.ok = report.healthy ? 1 : 0;
    ev.duration_s = report.duration_ms / 1000.0;
    kernel_.emit(ev);
    return report;
}

std::string TenantManager::metrics_text() const {
    // Fresh pool gauges first, then every sink's exposition.
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
        const auto s = stats();
        ev.pools_active = static_cast<int64_t>(s.pools_active);
        ev.pools_max = static_cast<int64_t>(s.pools_max);
        kernel_.emit(ev);
    }
    std::string text;
    for (const auto& sink : kernel_.sinks()) text += sink.render();
    return text;
}

std::string to_json(const HealthReport& r) {
    using nlohmann::json;
    json pools = json::array();
    for (const auto& p : r.pools) {
        json j = {{"tenant", p.tenant},     {"schema", p.schema}, {"status", to_string(p.status)},
                  {"total", p.total},       {"idle", p.idle},     {"waiting", p.waiting},
                  {"response_ms", p.response_ms}};
        if (!p.error.empty()) j["error"] = p.error;
        pools.push_back(j);
    }
    json shared = {{"status", to_string(r.shared.status)}, {"response_ms", r.shared.response_ms}};
    if (!r.shared.error.empty()) shared["error"] = r.shared.error;
    return json{{"healthy", r.healthy},
                {"pools", pools},
                {"shared", shared},
                {"total_pools", r.total_pools},
                {"degraded_pools", r.degraded_pools},
                {"unhealthy_pools", r.unhealthy_pools},
                {"timestamp", r.timestamp},
                {"duration_ms", r.duration_ms}}
        .dump();
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
