// Tracking-table access shared by fleet status, migrate, convert and sync (kernel-private).
#pragma once

#include "tracking/tenant_lock.hpp"

#include <mt/tracking/status.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

struct TableInfo {
    bool schema_exists = false;
    bool table_exists = false;
    // A plain table without child tables: COPY reads what SELECT reads (a partitioned table or
    // one with children is read by SELECT only).
    bool plain = false;
    std::vector<sdk::Column> columns;
};

// The tracking table of each schema (batched catalog query).
std::vector<TableInfo> read_tables(pqxx::transaction_base& tx, const std::vector<std::string>& schemas,
                                   const std::string& table);
// Every schema's records: by COPY where the format declares a COPY read the table fits (ABI 1.2;
// many COPY statements per round trip), else through the format's list query (batched UNION ALL).
// tables[i] is what read_tables found for schemas[i].
std::vector<std::vector<sdk::Record>> read_records(pqxx::transaction_base& tx, const TrackingFormat& format,
                                                   const std::vector<std::string>& schemas,
                                                   const std::vector<const TableInfo*>& tables,
                                                   const std::string& table);
// Replaces {table} in a constant statement with the quoted "schema"."table".
std::string with_table(const std::string& statement, const std::string& schema, const std::string& table);

// The format serving an existing table (nullptr: none recognises it / not the configured one).
const TrackingFormat* resolve_format(const Kernel& kernel, const TrackingTarget& target,
                                     const std::vector<sdk::Column>& columns);
// The format a missing table is created in.
const TrackingFormat& creation_format(const Kernel& kernel, const TrackingTarget& target);

// Connects once to each server the tenants live on, so that a server that cannot be reached is a
// DatabaseUnavailable (exit 3) before any tenant is touched, not a failure of each of its tenants.
void require_reachable(const Kernel& kernel, const TenantList& tenants);

// Fills state, format, columns, records and the classification for each status in one snapshot.
void fill_status(const Kernel& kernel, pqxx::transaction_base& tx, std::vector<TenantStatus*>& statuses,
                 const MigrationFolder& folder, const TrackingTarget& target);

}  // namespace mt
