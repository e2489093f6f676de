#include <mt/base/errors.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/runtime/tenant_directory.hpp>

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <exception>
#include <map>
#include <optional>
#include <stop_token>
#include <thread>
#include <unordered_set>

namespace mt {

namespace detail {

// The tenant ids whose schema exists on one server.
struct ServerSchemas {
    std::unordered_set<std::string> ids;
    bool loaded = false;  // ids came from a query that succeeded (this load's or, on failure, an earlier one's)
    std::string error;    // why this load's query failed ("" when it succeeded)
};

struct DirectorySnapshot {
    std::map<std::optional<std::string>, ServerSchemas> servers;  // nullopt: database.url
    uint64_t generation = 0;
};

// Reloads the directory every period until stopped; a failed reload keeps the previous set.
class DirectoryRefresher {
public:
    DirectoryRefresher(TenantDirectory& directory, std::chrono::milliseconds period)
        : thread_([&directory, period](std::stop_token stop) {
              std::mutex m;
              std::condition_variable_any cv;
              std::unique_lock lock(m);
              while (!stop.stop_requested()) {
                  cv.wait_for(lock, stop, period, [] { return false; });
                  if (stop.stop_requested()) break;
                  if (directory.loads() == 0) continue;  // nobody asked yet: the first contains() loads
                  try {
                      directory.refresh();
                  } catch (const std::exception& e) {
                      spdlog::warn("tenant directory not refreshed (the previous tenant set stays in use): {}", e.what());
                  }
              }
          }) {}

private:
    std::jthread thread_;
};

}  // namespace detail

namespace {

// Schemas whose name starts with the template's literal prefix; SchemaNamer::id_from_schema keeps
// the ones that are tenant schemas (it applies every naming rule).
constexpr const char* tenant_schemas_sql =
    "SELECT nspname FROM pg_catalog.pg_namespace WHERE starts_with(nspname, $1)";

}  // namespace

TenantDirectory::TenantDirectory(TenantManager& manager, TenantDirectoryOptions options)
    : manager_(manager), options_(options) {
    if (options_.refresh_interval.count() > 0)
        refresher_ = std::make_unique<detail::DirectoryRefresher>(*this, options_.refresh_interval);
}

TenantDirectory::~TenantDirectory() = default;

std::shared_ptr<const detail::DirectorySnapshot> TenantDirectory::current() const {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_;
}

size_t TenantDirectory::size() const {
    const auto snap = current();
    size_t n = 0;
    if (snap)
        for (const auto& [server, schemas] : snap->servers) n += schemas.ids.size();
    return n;
}

size_t TenantDirectory::loads() const {
    std::lock_guard lock(snapshot_mutex_);
    return complete_loads_;
}

bool TenantDirectory::contains(const std::string& id) {
    std::optional<std::string> server;
    try {
        server = manager_.server_of(id);
    } catch (const TenantIdError&) {
        return false;
    }
    auto snap = current();
    if (snap) {
        const auto it = snap->servers.find(server);
        if (it != snap->servers.end() && it->second.ids.count(id)) return true;
    }
    snap = reload_after_miss(snap ? snap->generation : 0);
    // The reload refreshed the routes too: the tenant may have moved meanwhile.
    server = manager_.server_of(id);
    const std::string where = server ? "servers." + *server : std::string("database.url");
    const auto it = snap->servers.find(server);
    if (it == snap->servers.end())
        throw OperationError("tenant " + id + " is routed to server '" + server.value_or("") +
                             "', which has no [servers." + server.value_or("") + "] url in the manifest");
    // A set kept from an earlier load cannot say "unknown" for an id that missed it: a miss whose
    // reload failed is reported (503), not answered with 404.
    if (!it->second.loaded || !it->second.error.empty())
        throw DatabaseUnavailable("tenant directory: the tenant schemas on " + where +
                                  " could not be read: " + it->second.error);
    return it->second.ids.count(id) > 0;
}

void TenantDirectory::refresh() {
    std::lock_guard lock(reload_mutex_);
    if (auto failure = load_locked()) std::rethrow_exception(failure);
}

std::shared_ptr<const detail::DirectorySnapshot> TenantDirectory::reload_after_miss(uint64_t seen_generation) {
    std::lock_guard lock(reload_mutex_);
    auto snap = current();
    // Another thread reloaded while this one waited: its answer is as fresh as ours would be.
    if (snap && snap->generation != seen_generation) return snap;
    const auto now = std::chrono::steady_clock::now();
    if (snap && last_attempt_ != std::chrono::steady_clock::time_point{} && now - last_attempt_ < options_.miss_refresh_interval)
        return snap;
    load_locked();
    return current();
}

std::exception_ptr TenantDirectory::load_locked() {
    last_attempt_ = std::chrono::steady_clock::now();
    std::exception_ptr failure;
    // The routes first: which server a tenant's schema must be on.
    try {
        manager_.refresh_routes();
    } catch (const std::exception& e) {
        spdlog::warn("tenant routes not refreshed (the previous routes stay in use): {}", e.what());
        failure = std::current_exception();
    }
    const auto& kernel = manager_.kernel();
    const auto& namer = kernel.namer();
    const std::string& tmpl = namer.schema_template();
    const std::string prefix = tmpl.substr(0, tmpl.find("{id}"));
    const auto previous = current();
    auto next = std::make_shared<detail::DirectorySnapshot>();
    auto load = [&](const std::optional<std::string>& server, auto&& query) {
        auto& entry = next->servers[server];
        try {
            for (const auto& row : query()) {
                std::string id = namer.id_from_schema(row[0].c_str());
                if (!id.empty()) entry.ids.insert(std::move(id));
            }
            entry.loaded = true;
        } catch (const std::exception& e) {
            entry.ids.clear();
            entry.error = e.what();
            if (previous)
                if (auto it = previous->servers.find(server); it != previous->servers.end() && it->second.loaded) {
                    entry.ids = it->second.ids;
                    entry.loaded = true;
                }
            if (!failure) failure = std::current_exception();
        }
    };
    load(std::nullopt, [&] {
        auto lease = manager_.shared();
        return lease.query(tenant_schemas_sql, {prefix});
    });
    for (const auto& [server, url] : kernel.manifest().servers)
        load(server, [&, name = server] {
            auto conn = kernel.connect(name);
            pqxx::nontransaction tx(*conn);
            return exec_params(tx, tenant_schemas_sql, {prefix});
        });
    std::lock_guard lock(snapshot_mutex_);
    next->generation = (snapshot_ ? snapshot_->generation : 0) + 1;
    snapshot_ = next;
    if (!failure) ++complete_loads_;
    return failure;
}

}  // namespace mt
