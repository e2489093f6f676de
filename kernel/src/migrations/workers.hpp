// The migration engine's worker pool and report helpers, shared by migrate and convert-format
// (kernel-private).
#pragma once

#include <mt/migrations/migrate.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <vector>

namespace mt {

// Runs work(index, connection) for each listed tenant with `concurrency` workers per server, each
// reusing its connection across tenants; work returns false on failure (stops all with fail_fast:
// the rest go to skip).
void for_each_tenant(const std::vector<Tenant>& tenants, const std::vector<size_t>& todo, int concurrency,
                     bool fail_fast, const std::function<void(size_t, size_t)>& progress,
                     const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                     const std::function<void(size_t)>& skip);

// Counts outcomes into the report's summary.
void summarise(MigrateReport& report, std::chrono::steady_clock::time_point start);

inline double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace mt
