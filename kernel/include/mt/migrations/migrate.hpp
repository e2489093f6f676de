// Migration engine (SPEC §6): migrate / mark-applied /
// convert-format over a work queue of tenants with `concurrency` workers per server.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/migrations/rollout.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/tracking/status.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mt {

struct TenantMigrateResult;

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
    // Canary, waves, error budget (mt/migrations/rollout.hpp).
    RolloutOptions rollout;
    // Called as each tenant the run works on finishes (from worker threads, serialised): the run ledger.
    std::function<void(const TenantMigrateResult&)> tenant_finished;
    // Receives every tenant's final result once, in the order given, as soon as it and every
    // tenant before it are final (serialised; after tenant_finished for a tenant the run worked
    // on). When set, MigrateReport::tenants stays empty and only the counts are kept: a result
    // waiting for an earlier tenant's is held (an up-to-date one as one byte), so that memory does
    // not grow with the fleet; with --seed, whose shuffled order finishes tenants far from the
    // order given, more results wait.
    std::function<void(const TenantMigrateResult&)> on_result;
};

enum class TenantOutcome { migrated, up_to_date, would_migrate, failed, skipped };
std::string to_string(TenantOutcome);

struct TenantMigrateResult {
    Tenant tenant;
    TenantOutcome outcome = TenantOutcome::up_to_date;
    std::string format;
    // migrations.auto_convert: the format the tracking table was converted from (with --dry-run:
    // would be) before its migrations ran, in the same transaction as the first; empty: none.
    std::string converted_from;
    std::vector<std::string> applied;  // applied (or recorded, or with --dry-run would be applied)
    std::string failed_migration;
    std::string error;
    std::string sqlstate;
    double duration_ms = 0;
};

// What `migrate --dry-run` shows of the SQL (issue 13): the first tenant with work, each of its
// pending migrations' statements exactly as they would run (rebased into its schema when the
// folder is rebased), and how many other tenants would run the same migrations in their own schema.
struct DryRunPreview {
    Tenant tenant;
    bool rebased = false;
    std::string rebase_reason;  // one sentence: why rebasing is on or off for this folder
    struct Step {
        std::string migration;
        std::vector<std::string> statements;
    };
    std::vector<Step> steps;
    size_t other_tenants = 0;
};

struct MigrateReport {
    std::vector<TenantMigrateResult> tenants;  // in the order given; empty when MigrateOptions::on_result received them
    size_t total = 0, succeeded = 0, failed = 0, skipped = 0;
    size_t migrations_applied = 0;
    size_t converted = 0;  // tenants whose tracking table was (with --dry-run: would be) auto-converted
    double duration_ms = 0;
    std::optional<DryRunPreview> preview;  // dry run with at least one tenant to migrate
    RolloutSummary rollout;                // what the rollout controls held back, and why
    std::optional<int64_t> run_id;         // the run ledger's id (mt_runs), when recorded
};

MigrateReport migrate(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
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
    std::function<void(size_t done, size_t total)> progress;
    // Canary, waves, error budget, throttle, --concurrency auto over every selected tenant
    // (docs/rollouts.md); a tenant held back is `skipped` with no error.
    RolloutOptions rollout;
    // Called as each tenant the run started finishes (from worker threads, serialised): the run ledger.
    std::function<void(const TenantMigrateResult&)> tenant_finished;
};

MigrateReport convert_format(const Kernel& kernel, const std::vector<Tenant>& tenants, const MigrationFolder& folder,
                             const TrackingTarget& target, const ConvertOptions& options);

}  // namespace mt
