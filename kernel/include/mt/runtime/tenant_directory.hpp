// Which tenants exist: the set of tenant schemas on each server, cached so that an HTTP adapter can
// answer "unknown tenant" (404) without a query per request and without opening a pool for an id
// nobody created. A tenant exists when its schema exists on the server its leases go to (the
// manager's routes, TenantManager::server_of): a schema left on another server does not count.
// One query per server loads it (on a shared lease for database.url); it is reloaded, with the
// manager's routes, every refresh_interval in the background and on a miss at most once per
// miss_refresh_interval (so a tenant created or moved a moment ago is found, and a flood of
// unknown ids costs at most one load a second).
#pragma once

#include <mt/runtime/tenant_manager.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

namespace mt {

struct TenantDirectoryOptions {
    std::chrono::milliseconds refresh_interval = std::chrono::seconds(30);  // 0: reload on misses only
    std::chrono::milliseconds miss_refresh_interval = std::chrono::seconds(1);
};

namespace detail {
struct DirectorySnapshot;
class DirectoryRefresher;
}  // namespace detail

class TenantDirectory {
public:
    explicit TenantDirectory(TenantManager& manager, TenantDirectoryOptions options = {});
    ~TenantDirectory();
    TenantDirectory(const TenantDirectory&) = delete;
    TenantDirectory& operator=(const TenantDirectory&) = delete;

    // true when the schema of tenant `id` exists on the tenant's own server. The first call loads
    // the sets; a miss reloads them and the routes (rate-limited). Throws when what it needs cannot
    // be read: the schemas of the tenant's server were never loaded (DatabaseUnavailable, also
    // within miss_refresh_interval of the failed load), or the tenant cannot be routed (see
    // TenantManager::server_of). An id that is not valid is simply not there.
    bool contains(const std::string& id);

    // Reloads the routes and every server's schemas now. Throws when any of them failed; what did
    // load is in use, and a server that failed keeps its previous set.
    void refresh();

    size_t size() const;   // tenants in the current sets, every server (0 before the first load)
    size_t loads() const;  // loads so far in which every server answered

private:
    std::shared_ptr<const detail::DirectorySnapshot> current() const;
    std::shared_ptr<const detail::DirectorySnapshot> reload_after_miss(uint64_t seen_generation);
    // Caller holds reload_mutex_. Publishes a new snapshot; returns the first failure (null: none).
    std::exception_ptr load_locked();

    TenantManager& manager_;
    TenantDirectoryOptions options_;
    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const detail::DirectorySnapshot> snapshot_;
    std::mutex reload_mutex_;  // one load at a time
    std::chrono::steady_clock::time_point last_attempt_{};
    size_t complete_loads_ = 0;  // guarded by snapshot_mutex_
    std::unique_ptr<detail::DirectoryRefresher> refresher_;  // declared last: stops first
};

}  // namespace mt
