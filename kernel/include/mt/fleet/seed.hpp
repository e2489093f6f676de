// mtctl seed (SPEC §7): one SQL file run in each selected tenant, one transaction per tenant.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/migrations/rollout.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mt {

struct TenantSeedResult;

struct SeedOptions {
    int concurrency = 10;
    std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
    // Called after each tenant finishes (from worker threads, serialised).
    std::function<void(size_t done, size_t total)> progress;
    // Canary, waves, error budget, throttle, --concurrency auto (docs/rollouts.md).
    RolloutOptions rollout;
    // Called as each tenant the run started finishes (from worker threads): the run ledger.
    std::function<void(const TenantSeedResult&)> tenant_finished;
};

struct TenantSeedResult {
    Tenant tenant;
    bool ok = false;
    bool skipped = false;  // held back by the rollout controls: never started
    std::string error;     // when !ok
    std::string sqlstate;  // when the server refused a statement
    double duration_ms = 0;
};

struct SeedReport {
    std::filesystem::path file;
    std::vector<TenantSeedResult> tenants;  // in selection order
    size_t total = 0, succeeded = 0, failed = 0, skipped = 0;
    double duration_ms = 0;
    RolloutSummary rollout;         // what the rollout controls held back, and why
    std::optional<int64_t> run_id;  // the run ledger's id (mt_runs), when recorded
};

// Reads the file (throws UsageError when it cannot: nothing runs), then runs its text in each
// tenant with `concurrency` workers per server: one transaction per tenant, under the tenant's
// advisory lock (the one `migrate` takes), search_path = tenant schema, shared schema. A tenant
// whose schema does not exist, or whose transaction fails, is reported failed and changes nothing;
// the others continue (within the error budget: see RolloutOptions). The file must not contain
// transaction control (BEGIN/COMMIT).
SeedReport seed(const Kernel& kernel, const std::vector<Tenant>& tenants, const std::filesystem::path& file,
                const SeedOptions& options);
// The seed file's text as seed() runs it (UsageError when it cannot be read or holds transaction
// control): the run ledger fingerprints it.
std::string read_seed_file(const std::filesystem::path& file);

}  // namespace mt
