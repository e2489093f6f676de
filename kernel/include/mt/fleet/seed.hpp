// mtctl seed (SPEC §7): one SQL file run in each selected tenant, one transaction per tenant.
#pragma once

#include <mt/context/kernel.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mt {

struct SeedOptions {
    int concurrency = 10;
    std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
    // Called after each tenant finishes (from worker threads, serialised).
    std::function<void(size_t done, size_t total)> progress;
};

struct TenantSeedResult {
    Tenant tenant;
    bool ok = false;
    std::string error;     // when !ok
    std::string sqlstate;  // when the server refused a statement
    double duration_ms = 0;
};

struct SeedReport {
    std::filesystem::path file;
    std::vector<TenantSeedResult> tenants;  // in selection order
    size_t total = 0, succeeded = 0, failed = 0;
    double duration_ms = 0;
};

// Reads the file (throws UsageError when it cannot: nothing runs), then runs its text in each
// tenant with `concurrency` workers per server: one transaction per tenant, under the tenant's
// advisory lock (the one `migrate` takes), search_path = tenant schema, shared schema. A tenant
// whose schema does not exist, or whose transaction fails, is reported failed and changes nothing;
// the others continue. The file must not contain transaction control (BEGIN/COMMIT).
SeedReport seed(const Kernel& kernel, const std::vector<Tenant>& tenants, const std::filesystem::path& file,
                const SeedOptions& options);

}  // namespace mt
