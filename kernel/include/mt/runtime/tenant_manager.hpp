// The tenant runtime (SPEC §5.1): pools of connections, leases whose search_path is the tenant's
// schema, warmup and health. Thread-safe: one manager serves every request thread of a service.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

namespace detail {
class Pool;
struct PooledConnection;
struct TenantRoute;
class ManagerState;
class IdleReaper;
}  // namespace detail

struct LeaseOptions {
    bool with_shared = false;  // search_path = tenant, shared (instead of tenant only)
};

// A connection lent for one tenant. Returns the connection to its pool on destruction (or closes it
// when broken or when its pool was evicted meanwhile). Movable, not copyable.
//
// Isolation (docs/runtime.md "Isolation"): the session a lease gets carries nothing from earlier
// leases. When a lease ends, a transaction it left open or aborted is rolled back and the session
// is reset with DISCARD ALL (settings, role and session authorization, temp tables, prepared
// statements, cursors, LISTEN, session advisory locks, sequences), sent without waiting; the next
// lease reads its answer first and sets the tenant's search_path (and statement_timeout when
// configured) in the same round trip as its first statement when the statement allows it. A
// connection with a pqxx transaction object still alive is never reused. In `transaction` pool
// mode the same reset (as separate statements) and SET LOCAL search_path open every transaction.
//
// Retries never duplicate a write: a statement is re-sent only when it provably did not run (the
// connection failed before it was sent, or the server answered with an error, which rolled its
// implicit transaction back). A connection lost after sending throws mt::OutcomeUnknown.
class TenantLease {
public:
    TenantLease(TenantLease&& other) noexcept;
    TenantLease& operator=(TenantLease&& other) noexcept;
    TenantLease(const TenantLease&) = delete;
    TenantLease& operator=(const TenantLease&) = delete;
    ~TenantLease();

    const std::string& tenant_id() const;
    const std::string& schema() const;

    // Observed helpers: timed and sent to the sinks as query events. Parameters are checked before
    // anything is sent (mt::InvalidParameter for an embedded NUL or invalid UTF-8). In
    // `transaction` pool mode every call runs in its own transaction that starts with the reset
    // and SET LOCAL search_path (one round trip for a parameterless single statement, three
    // otherwise).
    pqxx::result query(const std::string& sql, const SqlParams& params = {});
    // Runs fn(pqxx::work&) in one transaction (search_path set for it) and commits. The whole
    // transaction is replayed (fn runs again) when the retry policy accepts a serialization
    // failure, a deadlock or a connection lost before COMMIT was sent; a COMMIT whose outcome is
    // unknown throws mt::OutcomeUnknown and is never replayed.
    template <class F>
    auto transaction(F&& fn) {
        return run_transaction<decltype(fn(std::declval<pqxx::work&>()))>([&](pqxx::work& tx) { return fn(tx); });
    }
    // A transaction with the search_path applied (SET LOCAL in transaction mode). Only on a named
    // lease: the connection must not outlive it.
    std::unique_ptr<pqxx::work> begin() &;
    std::unique_ptr<pqxx::work> begin() && = delete;

    // The raw connection, for anything else, with the session reset and the search_path in force.
    // Only on a named lease. Whatever the application leaves on the session is cleaned before the
    // connection serves another lease. In `transaction` mode statements outside a transaction
    // from begin()/transaction() have no search_path guarantee behind a pooler.
    pqxx::connection& connection() &;
    pqxx::connection& connection() && = delete;

    // Releases the connection now (the lease is empty afterwards).
    void release();

private:
    friend class TenantManager;
    friend class detail::ManagerState;
    TenantLease(std::shared_ptr<detail::ManagerState> state, std::shared_ptr<detail::Pool> pool,
                std::unique_ptr<detail::PooledConnection> conn, std::shared_ptr<const detail::TenantRoute> route,
                bool with_shared);
    const std::string& search_path() const;
    detail::PooledConnection& pooled();
    void reconnect();
    void ensure_connected(detail::PooledConnection& c);
    // Before anything is sent on the lease's connection: reconnects when the session is gone and,
    // in session modes, resets it and applies the search_path with its own round trip if needed.
    void ensure_session();
    pqxx::result run(const std::string& sql, const SqlParams& params);
    // Retries fn while the failure provably left nothing behind and the retry policy agrees.
    template <class F>
    auto with_safe_retry(F&& fn) -> decltype(fn());
    bool retry_allowed(const std::exception& e, int attempt) const;
    template <class R>
    R run_transaction(const std::function<R(pqxx::work&)>& fn);
    void commit(pqxx::work& tx);

    std::shared_ptr<detail::ManagerState> state_;
    std::shared_ptr<detail::Pool> pool_;
    std::unique_ptr<detail::PooledConnection> conn_;
    std::shared_ptr<const detail::TenantRoute> route_;  // id, schema, search paths, server
    bool with_shared_ = false;
    bool broken_ = false;  // the connection failed; the next attempt reconnects
    bool ready_ = false;   // this lease's reset and search_path are in force on the session
};

template <class F>
auto TenantLease::with_safe_retry(F&& fn) -> decltype(fn()) {
    for (int attempt = 1;; ++attempt) {
        try {
            return fn();
        } catch (const std::exception& e) {
            if (!retry_allowed(e, attempt)) throw;
        }
    }
}

template <class R>
R TenantLease::run_transaction(const std::function<R(pqxx::work&)>& fn) {
    return with_safe_retry([&]() -> R {
        auto tx = begin();
        if constexpr (std::is_void_v<R>) {
            fn(*tx);
            commit(*tx);
        } else {
            R result = fn(*tx);
            commit(*tx);
            return result;
        }
    });
}

// `$tenant.` and `$shared.` in a statement expanded to the quoted schema names.
std::string expand_schemas(const std::string& sql, const std::string& tenant_schema, const std::string& shared_schema);

class CrossSchemaQuery {
public:
    explicit CrossSchemaQuery(TenantLease lease, std::string shared_schema);
    pqxx::result query(const std::string& sql, const SqlParams& params = {});
    TenantLease& lease() { return lease_; }

private:
    TenantLease lease_;
    std::string shared_;
};

struct WarmupOptions {
    int concurrency = 10;
    bool ping = true;
};

struct WarmupDetail {
    std::string tenant;
    bool ok = false;
    bool already_warm = false;
    std::string error;
    double duration_ms = 0;
};

struct WarmupReport {
    size_t total = 0, succeeded = 0, failed = 0, already_warm = 0;
    double duration_ms = 0;
    std::vector<WarmupDetail> details;
};

struct HealthOptions {
    bool ping = true;  // false: pool figures only, nothing is sent to a server
    std::chrono::milliseconds timeout = std::chrono::seconds(5);
    // Empty: every live tenant pool (per-tenant mode), or every tenant leased since the manager
    // started (shared/transaction modes, one query per server).
    std::vector<std::string> tenants;
    // Also read each checked tenant's pending migrations (as `mtctl status` does, one batched read
    // per server): a tenant with any is degraded. Off by default: it reads every tracking table.
    bool pending = false;
};

enum class HealthStatus { ok, degraded, unhealthy };
std::string to_string(HealthStatus);

// ok; degraded: leases waiting, a ping slower than timeout/2, or (HealthOptions::pending) pending
// migrations; unhealthy: the ping failed or took longer than timeout, the server is unreachable,
// the tenant's schema does not exist on its server, or the tenant cannot be routed.
struct PoolHealth {
    std::string tenant;
    std::string schema;
    HealthStatus status = HealthStatus::ok;
    size_t total = 0, idle = 0, waiting = 0;
    double response_ms = 0;
    std::string error;                  // why it is not ok (also set when degraded)
    std::optional<std::string> server;  // [servers.NAME] the tenant is routed to; unset: database.url
    std::optional<size_t> pending;      // pending migrations, when HealthOptions::pending asked
};

struct HealthReport {
    bool healthy = true;
    std::vector<PoolHealth> pools;
    struct {
        HealthStatus status = HealthStatus::ok;
        double response_ms = 0;
        std::string error;
    } shared;
    size_t total_pools = 0, degraded_pools = 0, unhealthy_pools = 0;
    std::string timestamp;  // ISO 8601, UTC
    double duration_ms = 0;
};

// The JSON rendering used by /health/db (200 when healthy, 503 otherwise).
std::string to_json(const HealthReport& report);
std::string to_json(const WarmupReport& report);

struct ManagerStats {
    size_t pools_active = 0;
    size_t pools_max = 0;
    size_t connections = 0;      // open connections (backends) held by the manager
    size_t pools_created = 0;
    size_t evictions = 0;
    size_t connections_opened = 0;
    size_t search_path_sets = 0;    // session set-ups (reset + search_path) that cost a round trip of their own
    size_t search_path_folded = 0;  // set-ups sent in the same round trip as the lease's first statement
    size_t sessions_reset = 0;      // sessions reset after serving a lease (DISCARD ALL on release; in transaction mode not counted)
    size_t rollbacks_on_release = 0;    // leases that left a transaction open or aborted
    size_t connections_quarantined = 0; // connections released with a pqxx transaction object alive
};

class TenantManager {
public:
    explicit TenantManager(const Kernel& kernel);
    ~TenantManager();
    TenantManager(const TenantManager&) = delete;
    TenantManager& operator=(const TenantManager&) = delete;

    // Validates the id (before any SQL) and lends a connection whose search_path is its schema.
    TenantLease tenant(const std::string& id, LeaseOptions options = {});
    TenantLease shared();
    CrossSchemaQuery cross_schema(const std::string& id);

    WarmupReport warmup(const std::vector<std::string>& ids, WarmupOptions options = {});
    HealthReport health_check(HealthOptions options = {});
    // The Prometheus exposition of every sink that can render.
    std::string metrics_text() const;

    // The server tenant discovery assigns `id` ([servers.NAME]; nullopt: database.url), as leases
    // are routed. Validates the id; with [servers.*], may run discovery (a miss, or a stale table).
    std::optional<std::string> server_of(const std::string& id);
    // Runs tenant discovery now and replaces the route table (no-op without [servers.*]). Throws
    // when discovery fails; the previous routes stay in use.
    void refresh_routes();

    // Closes a tenant's pool (in-flight leases finish first); reason "manual".
    void evict(const std::string& id);
    ManagerStats stats() const;
    const Kernel& kernel() const { return kernel_; }

private:
    const Kernel& kernel_;
    std::shared_ptr<detail::ManagerState> state_;
    std::unique_ptr<detail::IdleReaper> reaper_;  // declared last: stops first
};

}  // namespace mt
