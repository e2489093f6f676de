// mtctl tenant clone (SPEC §7): a new tenant built by replaying exactly the source tenant's applied
// migrations, then optionally filled with a copy of its rows.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/tracking/migration_folder.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mt {

struct CloneOptions {
    bool with_data = false;  // copy the rows and move the sequences past the copied values
};

struct ClonedTable {
    std::string table;
    uint64_t rows = 0;
};

struct ClonedSequence {
    std::string sequence;
    int64_t value = 0;     // what setval set
    bool is_called = false;
};

struct CloneReport {
    Tenant from;
    Tenant to;
    std::string format;                   // of both tracking tables
    std::vector<std::string> migrations;  // replayed, in folder order
    std::vector<ClonedTable> tables;      // in copy (foreign-key dependency) order; with_data only
    std::vector<ClonedSequence> sequences;
    bool atomic = true;                   // false when a `-- mt:no-transaction` file forced steps
    double duration_ms = 0;
};

// Creates `to` on `from`'s server (an explicit, different server is refused) holding both
// tenants' advisory locks: the schema, a tracking table in the source's format, and the source's
// applied migrations replayed from `folder` in folder order and recorded as `migrate` records them.
// With options.with_data, the rows of every table except the tracking table are then copied in
// foreign-key order from one snapshot of the source (generated columns recomputed, identity values
// kept, user triggers not fired) and each sequence set to the source's value or past the highest
// copied value. All in one transaction: after any failure `to` does not exist. When a replayed
// migration is `-- mt:no-transaction` the work runs in steps instead and a failure drops the new
// schema (a crash in between can leave it; drop it with mtctl tenant drop).
// Throws OperationError when `from` has no schema, `to` already exists, the source's tracking table
// is in an unknown format or holds records that match no file, or a step fails (with SQLSTATE).
CloneReport clone_tenant(const Kernel& kernel, const Tenant& from, Tenant to, const MigrationFolder& folder,
                         const CloneOptions& options);

}  // namespace mt
