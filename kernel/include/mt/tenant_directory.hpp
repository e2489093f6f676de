// Which tenants exist: the set of tenant schemas in the database, cached so that an HTTP adapter can
// answer "unknown tenant" (404) without a query per request and without opening a pool for an id
// nobody created. One query on a shared lease loads it; it is reloaded every refresh_interval in
// the background, and on a miss at most once per miss_refresh_interval (so a tenant created a moment
// ago is found, and a flood of unknown ids costs at most one query a second).
#pragma once

#include <mt/tenant_manager.hpp>

#include <chrono>
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

    // true when the schema of tenant `id` exists (on its server, for every [servers.NAME]). The first
    // call loads the set; a miss reloads it (rate-limited). Throws when a load it needs fails
    // (DatabaseUnavailable, OperationError), including within miss_refresh_interval of a failed load.
    // An id that is not valid is simply not there.
    bool contains(const std::string& id);

    // Reloads now. Throws on failure (the previous set stays in use).
    void refresh();

    size_t size() const;   // tenants in the current set (0 before the first load)
    size_t loads() const;  // successful loads so far

private:
    std::shared_ptr<const detail::DirectorySnapshot> current() const;
    std::shared_ptr<const detail::DirectorySnapshot> reload_after_miss(uint64_t seen_generation);
    std::shared_ptr<const detail::DirectorySnapshot> load_locked();

    TenantManager& manager_;
    TenantDirectoryOptions options_;
    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const detail::DirectorySnapshot> snapshot_;
    std::mutex reload_mutex_;  // one load at a time
    std::chrono::steady_clock::time_point last_attempt_{};
    std::string last_error_;   // why the last attempt failed ("" when it succeeded)
    std::unique_ptr<detail::DirectoryRefresher> refresher_;  // declared last: stops first
};

}  // namespace mt
