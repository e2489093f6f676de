// Structural drift (SPEC §7 `mtctl diff`): a fingerprint of each tenant schema read from the
// catalog for the whole fleet in a few queries, tenants grouped by fingerprint, and each group's
// differences against a reference tenant, object by object.
#pragma once

#include <mt/context/kernel.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mt {

// One catalog object of a schema. Definitions are rendered by the server with every mention of
// the tenant's own schema removed, so the same DDL run in two tenants gives equal definitions.
//   table:      kind (table, partitioned table, view, materialized view, foreign table)
//   column:     type [COLLATE c] [NOT NULL] [DEFAULT expr | GENERATED … | IDENTITY …]
//   index:      pg_get_indexdef
//   constraint: pg_get_constraintdef
struct SchemaObject {
    std::string kind;   // table | column | index | constraint
    std::string table;  // the table (or view) it belongs to
    std::string name;   // column, index or constraint name; empty for the table itself
    std::string definition;
};

struct SchemaFingerprint {
    bool exists = false;
    std::string digest;                 // lowercase hex SHA-256 of the canonical object list
    std::vector<SchemaObject> objects;  // sorted by (table, kind, name)
};

// Fingerprints of these schemas, read in one snapshot of the transaction: one query for the
// schemas and one per chunk of schemas for their objects (all four kinds at once). `exclude` is a
// table left out everywhere (the tracking table). Sets the transaction's search_path to pg_catalog.
std::vector<SchemaFingerprint> fingerprint_schemas(pqxx::transaction_base& tx, const std::vector<std::string>& schemas,
                                                   const std::string& exclude);

enum class DriftChange { missing, extra, changed };
std::string to_string(DriftChange);

// One object that differs from the reference. A missing or extra table is reported once, not
// together with each of its columns, indexes and constraints.
struct DriftDifference {
    std::string kind;
    std::string table;
    std::string name;
    DriftChange change = DriftChange::changed;
    std::string expected;  // the reference's definition (empty when extra)
    std::string actual;    // this group's definition (empty when missing)
};

struct DriftGroup {
    std::string fingerprint;  // digest
    std::vector<Tenant> tenants;  // empty in a compact report (DriftReport::members has them)
    size_t size = 0;              // tenants in the group
    size_t objects = 0;
    bool reference = false;
    std::vector<DriftDifference> differences;  // against the reference group; empty for it
};

// Group membership without a copy of each tenant, for a fleet of any size: 8 bytes per tenant on
// top of the tenant list itself (its group, and its place in `order`).
struct DriftMembers {
    static constexpr uint32_t kNoSchema = UINT32_MAX;
    TenantList tenants;  // every tenant compared: the selection, then the reference when not in it
    std::vector<uint32_t> group;  // per tenant: its index in DriftReport::groups, or kNoSchema
    // Tenant indices grouped: the first group's in list order, then the next group's, …, then the
    // tenants without a schema; group g's are order[begin[g]] … order[begin[g + 1] - 1].
    std::vector<uint32_t> order;
    std::vector<size_t> begin;    // groups + 2 entries (the last range: tenants without a schema)
};

struct DriftReport {
    std::optional<Tenant> reference;          // absent when no selected tenant has a schema
    std::vector<DriftGroup> groups;           // the reference group first, then by size (largest first)
    std::vector<Tenant> missing_schemas;      // selected tenants whose schema does not exist (not in a compact report)
    size_t without_schema = 0;                // how many selected tenants have no schema
    size_t total = 0;
    size_t drifted = 0;                       // tenants outside the reference group (missing schemas included)
    double duration_ms = 0;
    std::optional<DriftMembers> members;      // a compact report's group membership

    bool drift() const { return groups.size() > 1 || without_schema > 0; }
};

// The differences of `actual` against `expected`, by table then kind then name.
std::vector<DriftDifference> compare_fingerprints(const SchemaFingerprint& expected, const SchemaFingerprint& actual);

// Fingerprints every tenant (per server, one read-only snapshot each; batch by batch, keeping one
// object list per distinct fingerprint) and groups them.
// `reference`: the tenant id the others are compared with; it is fingerprinted even when it is not
// among `tenants`. Default: the first tenant of the largest group (ties: the group met first).
// compact: membership goes to DriftReport::members instead of DriftGroup::tenants and
// missing_schemas (what a large fleet needs). Throws UsageError when the reference tenant has no schema.
DriftReport detect_drift(const Kernel& kernel, TenantList tenants,
                         const std::optional<std::string>& reference = std::nullopt, bool compact = false);

}  // namespace mt
