#include <mt/errors.hpp>
#include <mt/sql_session.hpp>
#include <mt/tenant_directory.hpp>

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <stop_token>
#include <thread>
#include <unordered_set>

namespace mt {

namespace detail {

struct DirectorySnapshot {
    std::unordered_set<std::string> ids;
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
    return snap ? snap->ids.size() : 0;
}

size_t TenantDirectory::loads() const {
    const auto snap = current();
    return snap ? static_cast<size_t>(snap->generation) : 0;
}

bool TenantDirectory::contains(const std::string& id) {
    auto snap = current();
    if (snap && snap->ids.count(id)) return true;
    snap = reload_after_miss(snap ? snap->generation : 0);
    return snap && snap->ids.count(id);
}

void TenantDirectory::refresh() {
    std::lock_guard lock(reload_mutex_);
    load_locked();
}

std::shared_ptr<const detail::DirectorySnapshot> TenantDirectory::reload_after_miss(uint64_t seen_generation) {
    std::lock_guard lock(reload_mutex_);
    auto snap = current();
    // Another thread reloaded while this one waited: its answer is as fresh as ours would be.
    if (snap && snap->generation != seen_generation) return snap;
    const auto now = std::chrono::steady_clock::now();
    if (last_attempt_ != std::chrono::steady_clock::time_point{} && now - last_attempt_ < options_.miss_refresh_interval) {
        if (!last_error_.empty()) throw DatabaseUnavailable("tenant directory: " + last_error_);
        return snap;
    }
    return load_locked();
}

std::shared_ptr<const detail::DirectorySnapshot> TenantDirectory::load_locked() {
    last_attempt_ = std::chrono::steady_clock::now();
    const auto& kernel = manager_.kernel();
    const auto& namer = kernel.namer();
    const std::string& tmpl = namer.schema_template();
    const std::string prefix = tmpl.substr(0, tmpl.find("{id}"));
    auto next = std::make_shared<detail::DirectorySnapshot>();
    auto collect = [&](const pqxx::result& rows) {
        for (const auto& row : rows) {
            std::string id = namer.id_from_schema(row[0].c_str());
            if (!id.empty()) next->ids.insert(std::move(id));
        }
    };
    try {
        {
            auto lease = manager_.shared();
            collect(lease.query(tenant_schemas_sql, {prefix}));
        }
        for (const auto& [server, url] : kernel.manifest().servers) {
            auto conn = kernel.connect(server);
            pqxx::nontransaction tx(*conn);
            collect(exec_params(tx, tenant_schemas_sql, {prefix}));
        }
    } catch (const std::exception& e) {
        last_error_ = e.what();
        throw;
    }
    last_error_.clear();
    std::lock_guard lock(snapshot_mutex_);
    next->generation = (snapshot_ ? snapshot_->generation : 0) + 1;
    snapshot_ = next;
    return snapshot_;
}

}  // namespace mt
