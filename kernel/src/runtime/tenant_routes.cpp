#include "runtime/tenant_routes.hpp"

#include "runtime/manager_state.hpp"
#include "runtime/tenant_health.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>

#include <spdlog/spdlog.h>

#include <shared_mutex>
#include <thread>

namespace mt::detail {

namespace {

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

constexpr int64_t ns(std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

RouteTable::RouteTable(const Kernel& kernel) : kernel_(kernel), enabled_(!kernel.manifest().servers.empty()) {}

std::shared_ptr<const RouteTable::Table> RouteTable::table() const {
    std::shared_lock lock(table_mutex_);
    return table_;
}

RouteTable::Resolution RouteTable::answer(const Table& table, const std::string& id) {
    if (auto it = table.servers.find(id); it != table.servers.end()) return {it->second, table.generation, true};
    return {std::nullopt, table.generation, false};
}

RouteTable::Resolution RouteTable::resolve(const std::string& id, uint64_t confirmed_after) {
    if (!enabled_) return {};
    if (const auto snap = table()) {
        auto found = answer(*snap, id);
        // Listed, or absent from a table newer than the one that was already asked: no discovery.
        if (found.listed || (confirmed_after != 0 && snap->generation > confirmed_after)) return found;
        std::lock_guard lock(absent_mutex_);
        if (auto it = absent_.find(id); it != absent_.end() && it->second <= snap->generation) return found;
    }
    // A miss: answered by a discovery that starts after it, shared by every miss waiting meanwhile.
    const int64_t miss_at = now_ns();
    Resolution found;
    {
        std::unique_lock lock(refresh_mutex_);
        if (last_success_ns_.load() < miss_at) {
            if (last_attempt_ns_.load() >= miss_at) throw_unroutable(id);  // failed after this miss
            wait_for_slot(lock);
            try {
                refresh_locked();
            } catch (const std::exception&) {
                throw_unroutable(id);
            }
        }
        found = answer(*table(), id);
    }
    if (!found.listed) {
        std::lock_guard lock(absent_mutex_);
        if (absent_.size() >= kAbsentCap) absent_.clear();
        absent_[id] = found.generation;
    }
    return found;
}

void RouteTable::wait_for_slot(std::unique_lock<std::mutex>& lock) {
    // Holding the lock while sleeping is the point: misses arriving meanwhile queue behind this one
    // and are answered by its discovery.
    (void)lock;
    const int64_t last = last_attempt_ns_.load();
    if (last == 0) return;
    const int64_t wait = last + ns(kMissInterval) - now_ns();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
}

void RouteTable::refresh_if_stale() {
    if (!enabled_) return;
    const int64_t last_attempt = last_attempt_ns_.load(std::memory_order_relaxed);
    if (last_attempt == 0) return;  // never loaded: the first resolve() loads
    const int64_t now = now_ns();
    if (now - last_success_ns_.load(std::memory_order_relaxed) < ns(kRefreshPeriod)) return;
    if (now - last_attempt < ns(kMissInterval)) return;  // failing: retried at the miss rate at most
    std::unique_lock lock(refresh_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return;  // another thread is refreshing: keep the current table meanwhile
    if (now_ns() - last_success_ns_.load() < ns(kRefreshPeriod)) return;
    try {
        refresh_locked();
    } catch (const std::exception& e) {
        spdlog::warn("tenant routes not refreshed (the previous route table stays in use): {}", e.what());
    }
}

void RouteTable::refresh() {
    if (!enabled_) return;
    std::unique_lock lock(refresh_mutex_);
    refresh_locked();
}

void RouteTable::refresh_locked() {
    const int64_t start = now_ns();
    last_attempt_ns_.store(start);
    try {
        auto next = std::make_shared<Table>();
        const auto tenants = kernel_.discover_tenants();
        for (size_t i = 0; i < tenants.size(); ++i) next->servers[std::string(tenants.id(i))] = tenants.server(i);
        {
            std::unique_lock lock(table_mutex_);
            next->generation = (table_ ? table_->generation : 0) + 1;
            table_ = next;
            generation_.store(next->generation, std::memory_order_release);
        }
        last_success_ns_.store(start);
        last_error_.clear();
    } catch (const std::exception& e) {
        last_error_ = e.what();
        last_failure_unavailable_ = dynamic_cast<const DatabaseUnavailable*>(&e) || is_connection_failure(e);
        throw;
    }
}

void RouteTable::throw_unroutable(const std::string& id) const {
    const std::string what =
        "cannot route tenant '" + id + "' to its server: tenant discovery failed: " + last_error_ +
        (generation() != 0 ? " (the tenant is not in the last route table; other tenants keep their routes)"
                : " (no discovery has succeeded yet)") +
        "; discovery is retried on the next lease, at most every " + std::to_string(kMissInterval.count()) +
        "ms (check [roles] discovery and its query)";
    if (last_failure_unavailable_) throw DatabaseUnavailable(what);
    throw OperationError(what);
}

// A lease's route, kept in the manager's route cache: its schema and search paths, and the server
// the table above names.

std::string ManagerState::search_path_for(const std::string& schema, bool with_shared) const {
    std::string path = quote_ident(schema);
    if (with_shared && schema != manifest.isolation.shared_schema)
        path += ", " + quote_ident(manifest.isolation.shared_schema);
    return path;
}

std::shared_ptr<const TenantRoute> ManagerState::route(const std::string& id, bool cache) {
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

bool ManagerState::pool_serves(const Pool& pool, const TenantRoute& route) const {
    return pool.server == route.server || route.generation < routes.generation();
}

RoutedTenant route_of(ManagerState& state, const std::string& id) {
    const auto route = state.route(id);
    return RoutedTenant{route->schema, route->server};
}

std::vector<std::pair<std::string, std::optional<std::string>>> leased_tenants(const ManagerState& state) {
    std::vector<std::pair<std::string, std::optional<std::string>>> out;
    std::shared_lock lock(state.route_mutex);
    for (const auto& [id, route] : state.route_cache) out.emplace_back(id, route->server);
    return out;
}

}  // namespace mt::detail
