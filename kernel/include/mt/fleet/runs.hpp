// The run ledger (issue 14, SPEC §11): every tenant `migrate`, `seed`, `convert-format` and `sync`
// repair run (not --dry-run, not --shared) is recorded in the shared schema as it goes, in mt_runs
// (one row per run, its command in `command`) and mt_run_tenants (one row per selected tenant,
// written as the tenant finishes), so that `mtctl runs` can show it and `COMMAND --resume` can
// continue it with exactly the tenants it had not finished.
#pragma once

#include <mt/context/manifest.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mt {

struct RunTenant {
    std::string tenant;
    // pending | skipped | failed, and per command: migrate and convert-format migrated | up-to-date;
    // seed ok; sync in-sync | out-of-sync | repaired
    std::string outcome;
    std::optional<std::string> started_at, finished_at;  // ISO 8601, UTC
    std::string error;
};

struct RunRecord {
    int64_t id = 0;
    std::string command;
    std::string folder_fingerprint;
    std::string started_at;
    std::optional<std::string> finished_at;
    std::string host;
    std::string options;  // JSON text: the flags the run was started with
    // running | interrupted (unfinished, and no process holds it) | succeeded | failed |
    // canary-failed | budget-spent | wave-failed | waves-ended | fail-fast | throttle-timeout
    std::string outcome;
    std::string stop_reason;  // why the run stopped starting tenants (mt_runs.stop_reason); empty: it did not
    int resumed = 0;  // how many times --resume continued it
    size_t tenants = 0, finished = 0, failed = 0, remaining = 0;
};

struct RunDetail {
    RunRecord run;
    std::vector<RunTenant> tenants;  // in the run's order (discovery order)
};

class Kernel;
struct MigrateOptions;
struct MigrateReport;
struct ConvertOptions;
struct SeedOptions;
struct SeedReport;
struct SyncOptions;
struct SyncReport;
namespace command {
struct MigrateRequest;
struct ConvertRequest;
struct SeedRequest;
struct SyncRequest;
}

// `migrate` of tenants, recorded in the ledger; with request.resume, the continuation of a run.
// Refuses (UsageError, exit 2, nothing changed) a resume of an unknown, finished or still running
// run, and of one whose migration folder changed since (folder fingerprint).
MigrateReport migrate_recorded(const Kernel& kernel, const command::MigrateRequest& request, MigrateOptions options);
// The same for seed (refusing a resume when the seed file's text changed), convert-format (when
// the target format, --from or the migration folder changed) and sync's repairs (when the
// migration folder changed). A resume of another command's run is refused too.
SeedReport seed_recorded(const Kernel& kernel, const command::SeedRequest& request, SeedOptions options);
MigrateReport convert_recorded(const Kernel& kernel, const command::ConvertRequest& request, ConvertOptions options);
SyncReport sync_recorded(const Kernel& kernel, const command::SyncRequest& request, SyncOptions options);

namespace command {
// The newest runs first (at most limit); empty when no run was ever recorded.
std::vector<RunRecord> runs(const ManifestInput& input, size_t limit = 50);
// One run and its tenants; an unknown id is a UsageError (exit 2).
RunDetail run_show(const ManifestInput& input, int64_t id);
}  // namespace command

}  // namespace mt
