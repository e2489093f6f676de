// Tracking repair (SPEC §7 `mtctl sync`): which migrations are on disk but not recorded (missing),
// which records match no file (orphans), which files changed after they were applied (edited) or
// were renamed (renamed), and the repairs --mark-missing / --clean-orphans, one transaction per tenant under the same
// advisory lock as migrate.
#pragma once

#include <mt/migrations/migrate.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mt {

// A migration whose file no longer has the hash recorded when it was applied.
struct EditedMigration {
    std::string name;
    std::optional<std::string> recorded_hash;
    std::string file_hash;
    // "name": the record carries the migration's name; "journal-when": a record without a name whose
    // created_at equals the drizzle-kit journal's `when` of a migration that is otherwise missing.
    std::string matched_by;
    std::optional<int64_t> recorded_at_ms;  // the record's timestamp, kept when the edit is accepted
};

// A record that names a file no longer on disk but carries the hash of a file now under another
// name (a renamed file with unchanged content). mtctl counts the migration as applied (by hash);
// drizzle-multitenant reads a table with a `name` column by name and sees the new name as pending
// and the old one as an orphan, so in such a table sync reports it (`renamed old → new`) and
// --mark-missing re-records it under the new name (timestamp kept). Tables read by hash (the hash
// and drizzle-kit layouts) never report one: every tool sharing them still finds the migration.
struct RenamedMigration {
    std::string from;                       // the recorded name
    std::string to;                         // the file's current name
    std::optional<std::string> hash;        // the recorded (and the file's) hash
    std::optional<int64_t> recorded_at_ms;  // the record's timestamp, kept when the rename is accepted
};

// skipped: a repair the error budget or the throttle held back (never started).
enum class SyncOutcome { in_sync, out_of_sync, repaired, would_repair, failed, skipped };
std::string to_string(SyncOutcome);

struct TenantSync {
    Tenant tenant;
    TenantState state = TenantState::up_to_date;
    std::string format;
    std::vector<std::string> missing;     // on disk, not recorded (edited ones excluded), in apply order
    std::vector<sdk::Record> orphans;     // records matching no file (records paired as edited excluded)
    std::vector<EditedMigration> edited;
    std::vector<RenamedMigration> renamed;
    // false when the table keeps too little to notice an edited file (a name table without a hash
    // column; a hash table without names whose timestamps are apply times): an edited file then
    // shows as nothing (name) or as one missing migration plus one orphan (hash).
    bool edits_detectable = true;

    SyncOutcome outcome = SyncOutcome::in_sync;
    std::vector<std::string> marked;      // recorded by --mark-missing (with --dry-run: would be)
    std::vector<sdk::Record> cleaned;     // deleted by --clean-orphans (with --dry-run: would be)
    std::vector<std::string> accepted;    // edited migrations re-recorded with the file's hash (both flags)
    std::vector<RenamedMigration> rewritten;  // renamed records re-recorded under the file's name (--mark-missing)
    std::string error;
    std::string sqlstate;
    double duration_ms = 0;

    bool in_sync() const { return missing.empty() && orphans.empty() && edited.empty() && renamed.empty(); }
};

struct SyncOptions {
    bool mark_missing = false;   // record missing migrations without executing them
    bool clean_orphans = false;  // delete records that match no file
    bool dry_run = false;        // report what the flags would do; change nothing
    int concurrency = 10;
    std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
    std::function<void(size_t done, size_t total)> progress;
    // Receives each tenant's result as soon as it is final, in the order of the tenants given; when
    // set, SyncReport::tenants stays empty and only its counts are kept (memory does not grow with
    // the fleet).
    std::function<void(const TenantSync&)> on_tenant;
    // The repairs' error budget and throttle (docs/rollouts.md; the canary and the waves do not
    // apply to sync and are ignored). A percentage budget is a share of the selected tenants.
    RolloutOptions rollout;
    // Called as each repair finishes (from worker threads, serialised): the run ledger.
    std::function<void(const TenantSync&)> tenant_finished;

    bool repairs() const { return mark_missing || clean_orphans; }
};

struct SyncReport {
    std::vector<TenantSync> tenants;  // empty when SyncOptions::on_tenant received them
    size_t total = 0, in_sync = 0, out_of_sync = 0, repaired = 0, failed = 0, skipped = 0;
    size_t missing = 0, orphans = 0, edited = 0, renamed = 0;  // as found (before any repair)
    size_t marked = 0, cleaned = 0, accepted = 0, rewritten = 0;
    double duration_ms = 0;
    RolloutSummary rollout;         // what the error budget or the throttle held back, and why
    std::optional<int64_t> run_id;  // the run ledger's id (mt_runs), when recorded
};

// Missing, orphan and edited migrations of one classified tenant (see classify): edited ones come
// from TenantStatus::edited, and from pairing a missing migration with a nameless orphan record
// whose created_at equals the migration's journal `when` (exactly one candidate on each side);
// renamed ones where the table is read by name (see RenamedMigration).
TenantSync compare_tracking(const TenantStatus& status, const MigrationFolder& folder);

// Reads the selection batch by batch (stream_fleet_status) and, with --mark-missing and/or
// --clean-orphans, repairs each tenant of the batch that needs it in one transaction under its
// advisory lock, re-reading the table under the lock first; then reports the batch. --mark-missing also re-records renamed records under
// the file's name; with both flags, edited migrations are accepted too: the old record is replaced
// by one carrying the file's current hash (its timestamp kept).
SyncReport sync_tracking(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                         const TrackingTarget& target, const SyncOptions& options);

}  // namespace mt
