// TenantManager (SPEC §5.1): leases from the pools (pool.cpp) on the tenant's route
// (tenant_routes.cpp), warmup, the background idle reaper, statistics and the metrics text. Leases
// are in lease.cpp, health_check and the JSON renderings in tenant_health.cpp.
#include "runtime/manager_state.hpp"
#include "runtime/tenant_health.hpp"

#include <mt/context/metrics.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>

namespace mt {

using detail::Clock;
using detail::ms_between;

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

}  // namespace mt
