// What the tenant manager's parts share, private to the runtime: a tenant's route, a pooled
// connection, a pool, and the manager state that owns the pools (pool.cpp), routes leases
// (tenant_routes.cpp) and sets up sessions (lease.cpp). The public face is
// mt/runtime/tenant_manager.hpp; TenantManager (tenant_manager.cpp) and TenantLease (lease.cpp)
// hold a shared_ptr to the state so that a lease can outlive its manager.
#pragma once

#include "runtime/clock.hpp"
#include "runtime/tenant_routes.hpp"

#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace mt::detail {

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
    explicit ManagerState(const Kernel& kernel);

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

    ~ManagerState();

    void quarantine_connection(std::unique_ptr<pqxx::connection> c);

    // What a session runs before a lease's first statement (session modes; `reset` only when the
    // release-time DISCARD ALL did not happen) or at the start of every transaction (transaction
    // mode, `local`, always with the reset: DISCARD ALL cannot run in a transaction block). The
    // reset's parts undo what DISCARD ALL does except DISCARD PLANS (cached plans are re-planned
    // when the search_path differs). Non-transactional parts come first so that a failure later
    // in the string cannot skip them.
    std::string session_setup(const std::string& search_path, bool reset, bool local) const;

    std::string search_path_for(const std::string& schema, bool with_shared) const;

    // The tenant's route; the first call for an id validates it (TenantIdError before any SQL).
    // A cached route is used while the route table it came from is current; after a refresh the
    // server is looked up again (schema and search paths are kept). `cache`: false for a look-up
    // that leases nothing (server_of), so the cache holds only tenants leased (health_check's
    // default set in shared/transaction modes).
    std::shared_ptr<const TenantRoute> route(const std::string& id, bool cache = true);

    // Per-tenant mode: a pool may serve a route on its server, or an older route (whose lookup
    // raced with a refresh) whatever its server; a current route on another server replaces it.
    bool pool_serves(const Pool& pool, const TenantRoute& route) const;

    // Caller holds pools_mutex (per-tenant mode) or mutex (the other pools).
    void emit_pool(mt_event_type type, const Pool& pool, size_t active, const std::string& reason = {}) const;

    // Per-tenant mode: the tenant's pool, created (evicting the least recently leased) if needed.
    // A hit takes the shared lock only.
    std::shared_ptr<Pool> tenant_pool(const TenantRoute& route);

    // Caller holds pools_mutex exclusively; pools is not empty.
    std::string least_recently_leased() const;

    std::shared_ptr<Pool> common_pool(std::map<std::optional<std::string>, std::shared_ptr<Pool>>& table,
                                      const std::optional<std::string>& server, const std::string& schema);

    // Caller holds pools_mutex exclusively.
    void evict_locked(const std::string& id, const std::string& reason);

    // A usable connection of a closed pool becomes a spare while the manager holds at most
    // max_pools × pool_size backends; otherwise it is closed.
    void park(const Pool& pool, std::unique_ptr<PooledConnection> c);

    std::unique_ptr<PooledConnection> take_spare(const std::optional<std::string>& server);

    std::unique_ptr<PooledConnection> open_connection(const std::optional<std::string>& server);

    // Takes a connection from the pool (or opens one) within the wait timeout.
    std::unique_ptr<PooledConnection> acquire(Pool& pool);

    // Makes a released connection safe for the next lease or closes it: a pqxx transaction object
    // still alive → quarantined; a transaction left open or aborted on the server → rolled back;
    // a statement still running or a broken session → closed.
    void clean_on_release(PooledConnection& c);

    // Session modes: the session is reset as it goes back to the pool, with DISCARD ALL sent
    // without waiting (one statement, cheaper than its parts in a multi-statement string); the
    // next lease reads the answer before anything else. Transaction mode resets in every
    // transaction instead (behind a pooler the next transaction may run on another backend).
    void discard_on_release(PooledConnection& c);

    void release(const std::shared_ptr<Pool>& pool, std::unique_ptr<PooledConnection> c);

    // Per-tenant mode: closes the pools (and spares) idle longer than pool_idle_timeout.
    void evict_idle();

    // Tenant pools (most recently leased first), then the shared/transaction-mode pools.
    std::vector<std::shared_ptr<Pool>> live_pools() const;
};

}  // namespace mt::detail
