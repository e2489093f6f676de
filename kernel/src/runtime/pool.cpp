// The pools of a TenantManager (SPEC §5.1). Per-tenant mode keeps one pool per tenant with an LRU
// cap (by lease use) and idle eviction; an evicted pool's idle backends are kept as spares and
// handed to the next new pool (reset like any lease, instead of a new backend) as long as the
// manager holds at most max_pools × pool_size backends, and leases in flight on an evicted pool
// finish normally. Shared and transaction modes keep one pool per server for every tenant. A pool
// hit takes only a shared lock.
#include "base/pqxx_session.hpp"
#include "runtime/manager_state.hpp"
#include "runtime/tenant_health.hpp"

#include <mt/base/errors.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mt::detail {

ManagerState::ManagerState(const Kernel& kernel) : kernel(kernel), manifest(kernel.manifest()), routes(kernel) {
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

ManagerState::~ManagerState() {
    std::lock_guard lock(quarantine_mutex);
    for (auto& c : quarantine)
        if (c && has_transaction_object(*c)) {
            spdlog::error("mtenant: a pqxx transaction outlived its lease and its TenantManager; its connection is left open");
            (void)c.release();
        }
}

void ManagerState::quarantine_connection(std::unique_ptr<pqxx::connection> c) {
    ++connections_quarantined;
    spdlog::warn("mtenant: a lease was released while a pqxx transaction on its connection was still alive; "
                 "the connection is not reused (keep transactions inside the lease's scope)");
    std::lock_guard lock(quarantine_mutex);
    std::erase_if(quarantine, [](const auto& q) { return !q || !has_transaction_object(*q); });
    quarantine.push_back(std::move(c));
}

void ManagerState::emit_pool(mt_event_type type, const Pool& pool, size_t active, const std::string& reason) const {
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

std::shared_ptr<Pool> ManagerState::tenant_pool(const TenantRoute& route) {
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

std::string ManagerState::least_recently_leased() const {
    auto victim = pools.begin();
    for (auto it = pools.begin(); it != pools.end(); ++it)
        if (it->second->last_lease.load(std::memory_order_relaxed) <
            victim->second->last_lease.load(std::memory_order_relaxed))
            victim = it;
    return victim->first;
}

std::shared_ptr<Pool> ManagerState::common_pool(std::map<std::optional<std::string>, std::shared_ptr<Pool>>& table,
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

void ManagerState::evict_locked(const std::string& id, const std::string& reason) {
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

void ManagerState::park(const Pool& pool, std::unique_ptr<PooledConnection> c) {
    if (!c || !c->conn || !c->conn->is_open() || alive.load(std::memory_order_relaxed) > backend_budget) return;
    std::lock_guard lock(mutex);
    spares[pool.server].push_back(std::move(c));
}

std::unique_ptr<PooledConnection> ManagerState::take_spare(const std::optional<std::string>& server) {
    std::lock_guard lock(mutex);
    auto it = spares.find(server);
    if (it == spares.end() || it->second.empty()) return nullptr;
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
}

std::unique_ptr<PooledConnection> ManagerState::open_connection(const std::optional<std::string>& server) {
    if (auto spare = take_spare(server)) return spare;
    auto c = std::make_unique<PooledConnection>();
    c->conn = kernel.connect(server);
    c->alive = &alive;
    ++alive;
    ++connections_opened;
    return c;
}

std::unique_ptr<PooledConnection> ManagerState::acquire(Pool& pool) {
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

void ManagerState::clean_on_release(PooledConnection& c) {
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

void ManagerState::discard_on_release(PooledConnection& c) {
    if (mode == PoolMode::transaction || !c.used) return;
    if (send_discard_all(*c.conn)) {
        c.reset_pending = true;
        c.used = false;
        ++sessions_reset;
    } else {
        c.conn.reset();
    }
}

void ManagerState::release(const std::shared_ptr<Pool>& pool, std::unique_ptr<PooledConnection> c) {
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

void ManagerState::evict_idle() {
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

std::vector<std::shared_ptr<Pool>> ManagerState::live_pools() const {
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

// What health_check (tenant_health.cpp) reads from the pools.

bool per_tenant_mode(const ManagerState& state) { return state.mode == PoolMode::per_tenant; }

std::vector<std::string> live_tenants(const ManagerState& state) {
    std::vector<std::string> out;
    for (const auto& pool : state.live_pools())
        if (!pool->tenant.empty()) out.push_back(pool->tenant);
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

}  // namespace mt::detail
