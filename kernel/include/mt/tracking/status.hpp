// Fleet status (SPEC §6): where migrations are tracked and what each tenant's tracking table says
// against the folder, read in a few batched queries per server. Read-only: the runtime's health
// check and every fleet command use it; the migration engine (mt/migrations) builds on it.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/tracking/migration_folder.hpp>

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

enum class TenantState { up_to_date, behind, missing_schema, no_table, unknown_format };
std::string to_string(TenantState);

struct TenantStatus {
    Tenant tenant;
    TenantState state = TenantState::up_to_date;
    std::string format;                 // detected (or, with no table, the one that would be created)
    // unknown_format only: the readable format the table is in when it is not the configured
    // `format` (what migrations.auto_convert converts from); records etc. are read in it. Empty
    // when no loaded format reads the table.
    std::string convert_from;
    bool would_convert = false;  // convert_from set and migrations.auto_convert on: migrate converts it first
    std::vector<sdk::Column> columns;   // of the tracking table; empty when it does not exist
    TrackingCapabilities capabilities;  // what the format keeps in this table (or would, once created)
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

// Receives each tenant's status as soon as the batch holding it has been read.
using TenantStatusSink = std::function<void(const TenantStatus&)>;

// Tenants read per batch: what fleet-wide readers hold at once (a few batches), whatever the
// fleet's size.
inline constexpr size_t kStatusBatch = 250;

// Reads the tenants' tracking tables batch by batch (a few queries per batch and server; two
// batches at once on their own connections when there are several) and hands each status to sink
// on the calling thread, in the order of `tenants`, keeping none. Every batch of a server reads the
// same snapshot: one read-only repeatable-read snapshot per server, exported from a transaction
// held open for the whole read and imported by each batch's own short transaction, so that the
// table locks of a batch end with it (one transaction over 100,000 tracking tables would need more
// locks than the server's lock table holds). Returns the time taken, in ms.
double stream_fleet_status(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                           const TrackingTarget& target, const TenantStatusSink& sink);

// The same, collected: every tenant's status in one vector (memory grows with the fleet).
FleetStatus fleet_status(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                         const TrackingTarget& target);

// Classifies one tenant's records against the folder (shared by status, migrate and sync).
void classify(TenantStatus& status, const MigrationFolder& folder);

}  // namespace mt
