// Migration engine (SPEC §6): fleet status in a few batched queries, and migrate / mark-applied /
// convert-format over a work queue of tenants with `concurrency` workers per server.
#pragma once

#include <mt/kernel.hpp>
#include <mt/migration_folder.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mt {

// Where migrations are tracked: each tenant schema's migrations.table, or the shared schema.
struct TrackingTarget {
    std::string table;
    std::string format;          // auto | a format name
    std::string default_format;  // created when a schema has no table yet (format = auto)
    bool shared = false;         // the shared schema (migrate-shared)

    static TrackingTarget tenants(const Manifest& m);
    static TrackingTarget shared_schema(const Manifest& m);
};

// How a format is shown and accepted on the command line: "tracking-name" -> "name".
std::string format_label(const std::string& factory_name);

enum class TenantState { up_to_date, behind, missing_schema, no_table, unknown_format };
std::string to_string(TenantState);

struct TenantStatus {
    Tenant tenant;
    TenantState state = TenantState::up_to_date;
    std::string format;                 // detected (or, with no table, the one that would be created)
    std::vector<sdk::Column> columns;   // of the tracking table; empty when it does not exist
    std::vector<sdk::Record> records;   // as read from the table, in id order
    std::vector<std::string> applied;   // names of folder migrations recorded
    std::vector<std::string> pending;   // names of folder migrations not recorded, in apply order
    std::vector<sdk::Record> orphans;   // records that match no file in the folder
    std::vector<std::string> edited;    // recorded by name, but the file's hash differs from the record's
};

struct FleetStatus {
    std::vector<TenantStatus> tenants;
    double duration_ms = 0;
};

// Reads every tenant's tracking table in a few batched queries per server.
FleetStatus fleet_status(const Kernel& kernel, const std::vector<Tenant>& tenants, const MigrationFolder& folder,
                         const TrackingTarget& target);

// Classifies one tenant's records against the folder (shared by status, migrate and sync).
void classify(TenantStatus& status, const MigrationFolder& folder);

struct MigrateOptions {
    int concurrency = 10;
    bool dry_run = false;       // no side effect at all
    bool mark_applied = false;  // record pending migrations without executing them
    std::optional<std::string> to;  // stop after this migration (must exist in the folder)
    bool fail_fast = false;
    TransactionMode transaction = TransactionMode::per_migration;
    std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
    // Called after each tenant finishes (from worker threads, serialised).
    std::function<void(size_t done, size_t total)> progress;
};

enum class TenantOutcome { migrated, up_to_date, would_migrate, failed, skipped };
std::string to_string(TenantOutcome);

struct TenantMigrateResult {
    Tenant tenant;
    TenantOutcome outcome = TenantOutcome::up_to_date;
    std::string format;
    std::vector<std::string> applied;  // applied (or recorded, or with --dry-run would be applied)
    std::string failed_migration;
    std::string error;
    std::string sqlstate;
    double duration_ms = 0;
};

struct MigrateReport {
    std::vector<TenantMigrateResult> tenants;
    size_t total = 0, succeeded = 0, failed = 0, skipped = 0;
    size_t migrations_applied = 0;
    double duration_ms = 0;
};

MigrateReport migrate(const Kernel& kernel, const std::vector<Tenant>& tenants, const MigrationFolder& folder,
                      const TrackingTarget& target, const MigrateOptions& options);

// Creates the tenant's schema and applies every migration; on failure the schema is gone again.
// Throws OperationError (schema exists, a migration failed).
TenantMigrateResult create_tenant(const Kernel& kernel, const Tenant& tenant, const MigrationFolder& folder,
                                  bool migrate_after);
// DROP SCHEMA … CASCADE. Throws OperationError when the schema does not exist.
void drop_tenant(const Kernel& kernel, const Tenant& tenant);

struct ConvertOptions {
    std::string to;
    std::optional<std::string> from;
    bool dry_run = false;
    int concurrency = 10;
};

MigrateReport convert_format(const Kernel& kernel, const std::vector<Tenant>& tenants, const MigrationFolder& folder,
                             const TrackingTarget& target, const ConvertOptions& options);

}  // namespace mt
