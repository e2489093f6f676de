// The kernel's entry points for mtctl: one function per command. Each takes the manifest input and
// the command's request, and returns the result struct the CLI renders as a table or JSON. The rules
// every command shares live here once: the manifest lookup (Kernel), the manifest's defaults for what
// a request leaves unset (concurrency, lock timeout, transaction mode, fail_fast), the shared schema
// taken as a one-tenant fleet, "migrations.shared_dir is not set", and the translation of libpqxx
// and other driver exceptions into mt:: error types (mt/base/errors.hpp), each with its exit code.
//
// This header stays light (no libpqxx, no SDK): the heavy result types are declared here and
// defined in their own headers, which a caller includes for the command it runs.
#pragma once

#include <mt/context/manifest.hpp>
#include <mt/context/tenant.hpp>
#include <mt/migrations/rollout.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mt {

struct MigrateReport;        // mt/migrations/migrate.hpp
struct TenantMigrateResult;  // mt/migrations/migrate.hpp
struct FleetStatus;          // mt/tracking/status.hpp
struct TenantStatus;         // mt/tracking/status.hpp
struct TenantSync;           // mt/fleet/sync.hpp
struct SyncReport;           // mt/fleet/sync.hpp
struct SeedReport;           // mt/fleet/seed.hpp
struct DriftReport;          // mt/fleet/drift.hpp
struct CloneReport;          // mt/fleet/clone.hpp
struct DoctorReport;         // mt/fleet/doctor.hpp
struct HealthReport;         // mt/runtime/tenant_manager.hpp
struct PluginInfo;           // mt/plugin_host/plugins.hpp
class Kernel;                // mt/context/kernel.hpp
class TenantManager;         // mt/runtime/tenant_manager.hpp

namespace command {

// Called after each tenant finishes (from worker threads, serialised).
using Progress = std::function<void(size_t done, size_t total)>;

// What a streamed command knows before its first result: the tenants it reports on, in the order
// it reports them (status, sync: this order; migrate: see MigrateOptions::on_result), and the
// folder's migration count; enough to size a table's columns before any row.
using StreamStart = std::function<void(const TenantList& tenants, size_t migrations)>;

// Which tenants a fleet command works on. An empty selection means the whole fleet for the
// commands that only read (status, sync, diff) and is refused by the ones that change tenants.
// shared: the shared schema, with migrations.shared_dir and its own tracking table, instead.
struct Scope {
    TenantSelection selection;
    bool shared = false;
};

// Unset values take the manifest's [migrations] settings.
struct MigrateRequest {
    Scope scope;
    std::optional<int> concurrency;
    bool dry_run = false;
    bool mark_applied = false;
    std::optional<std::string> to;
    bool fail_fast = false;  // or migrations.fail_fast
    Progress progress;
    RolloutOptions rollout;  // --canary, --waves, --seed, --max-failures (mt/migrations/rollout.hpp)
    // --resume [ID]: continue a recorded run (ID, else the newest unfinished one) with the tenants
    // it had not finished; the scope is then the run's, not the selection (mt/fleet/runs.hpp).
    bool resume = false;
    std::optional<int64_t> resume_run;
    // Each tenant's result as soon as it is final (MigrateOptions::on_result: the report then keeps
    // counts only, and a dry run's preview is built on the way).
    std::function<void(const TenantMigrateResult&)> on_result;
};
MigrateReport migrate(const ManifestInput& input, const MigrateRequest& request);

// to is empty only with resume (the run's own target format then).
struct ConvertRequest {
    Scope scope;
    std::string to;
    std::optional<std::string> from;
    bool dry_run = false;
    std::optional<int> concurrency;
    Progress progress;
    RolloutOptions rollout;  // every control of migrate (docs/rollouts.md)
    bool resume = false;     // --resume [ID], as for migrate
    std::optional<int64_t> resume_run;
};
MigrateReport convert_format(const ManifestInput& input, const ConvertRequest& request);

struct StatusResult;
struct StatusRequest {
    Scope scope;
    StreamStart on_start;
    // Each tenant's status as soon as its batch is read, in discovery order; when set,
    // StatusResult::fleet.tenants stays empty (memory does not grow with the fleet).
    std::function<void(const TenantStatus&)> on_tenant;
};
StatusResult status(const ManifestInput& input, const StatusRequest& request);
StatusResult status(const ManifestInput& input, const Scope& scope);

struct SyncRequest {
    Scope scope;
    bool mark_missing = false;
    bool clean_orphans = false;
    bool dry_run = false;
    Progress progress;
    StreamStart on_start;
    // Each tenant's result as soon as it is final, in discovery order (SyncOptions::on_tenant).
    std::function<void(const TenantSync&)> on_tenant;
    // The repairs' error budget and throttle (docs/rollouts.md); --resume [ID] continues a repair
    // run with its own flags.
    RolloutOptions rollout;
    bool resume = false;
    std::optional<int64_t> resume_run;
    // With resume: the run's own repairs, known before the first tenant's result.
    std::function<void(bool mark_missing, bool clean_orphans)> on_repairs;
};
SyncReport sync(const ManifestInput& input, const SyncRequest& request);

// file is empty only with resume (the run's own file then).
struct SeedRequest {
    TenantSelection selection;
    std::filesystem::path file;
    std::optional<int> concurrency;
    Progress progress;
    RolloutOptions rollout;  // every control of migrate (docs/rollouts.md)
    bool resume = false;     // --resume [ID], as for migrate
    std::optional<int64_t> resume_run;
};
SeedReport seed(const ManifestInput& input, const SeedRequest& request);

struct DiffRequest {
    TenantSelection selection;
    std::optional<std::string> reference;
    bool compact = false;  // group membership in DriftReport::members (mt/fleet/drift.hpp)
};
DriftReport diff(const ManifestInput& input, const DiffRequest& request);

// A database that cannot be reached is not an error here: the report says unhealthy.
struct HealthRequest {
    TenantSelection selection;  // empty: the shared schema only
    std::chrono::milliseconds timeout = std::chrono::seconds(5);
    bool pending = false;
};
struct HealthResult;
HealthResult health(const ManifestInput& input, const HealthRequest& request);

struct GeneratedMigration {
    std::filesystem::path file;
    std::string name;
    std::filesystem::path folder;
    bool journal = false;  // drizzle-kit layout: meta/_journal.json got the entry
    std::filesystem::path journal_file;
};
GeneratedMigration generate(const ManifestInput& input, const std::string& name, bool shared);

struct InitResult {
    std::filesystem::path manifest;
    std::vector<std::filesystem::path> folders;
};
// Writes a starter manifest (input.file, else dir/multitenant.ini) and the migration folders.
InitResult init(const ManifestInput& input, const std::filesystem::path& dir, bool force);

// Every discovered tenant, in discovery order (compact: a few bytes a tenant beyond its id).
TenantList tenant_list(const ManifestInput& input);
TenantMigrateResult tenant_create(const ManifestInput& input, const std::string& id, bool migrate);
// Without force: a UsageError naming the schema, nothing dropped.
Tenant tenant_drop(const ManifestInput& input, const std::string& id, bool force);
CloneReport tenant_clone(const ManifestInput& input, const std::string& from, const std::string& to, bool with_data);

// With a manifest (named, in MT_CONFIG or ./multitenant.ini): the plugins it loads; without one,
// the plugins the kernel would find by itself in its own plugin folder.
struct PluginListing;
PluginListing plugins(const ManifestInput& input);
PluginInfo inspect_plugin(const std::filesystem::path& file);

DoctorReport doctor(const ManifestInput& input);

// What `mtctl serve` runs for as long as it serves: a kernel, its tenant manager (for the adapter's
// /health/db and /metrics handlers) and the fleet gauges (tenants, pending migrations, drift groups)
// published to the sinks at most once per max_age, since reading the whole fleet is not cheap.
class Exporter {
public:
    Exporter(const ManifestInput& input, std::chrono::milliseconds max_age);
    ~Exporter();
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    TenantManager& manager();
    bool has_sinks() const;
    // Republishes the fleet gauges when they are older than max_age; a failure is logged and the old
    // values stay (the next scrape tries again after max_age). Safe from several threads.
    void refresh_fleet_gauges();

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace command
}  // namespace mt
