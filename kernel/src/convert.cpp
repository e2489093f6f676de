// convert-format: rewrites each tenant's tracking table in another format, in one transaction per
// tenant under the tenant's advisory lock. Every record keeps its identity: a missing name or hash
// is filled from the folder (by the other identifier), and both are stored where the target layout
// has room, so conversions round-trip. A record that cannot be completed (its file is gone and the
// target needs what only the file can give) fails that tenant and changes nothing.
#include "fleet_queries.hpp"

#include <mt/errors.hpp>
#include <mt/migrate.hpp>
#include <mt/sql_session.hpp>

namespace mt {

namespace {

std::string describe(const sdk::Record& r) {
    if (r.name) return "'" + *r.name + "'";
    if (r.hash) return "with hash " + r.hash->substr(0, 12) + "…";
    return "(empty)";
}

// Completes each record from the folder for the target format; throws OperationError if one
// cannot be completed.
std::vector<sdk::Record> complete_records(const std::vector<sdk::Record>& records, const MigrationFolder& folder,
                                          const TrackingFormat& target) {
    std::vector<sdk::Record> out;
    for (auto r : records) {
        const Migration* m = nullptr;
        if (r.name) m = folder.find_by_name(*r.name);
        if (!m && r.hash) m = folder.find_by_hash(*r.hash);
        if (m) {
            if (!r.name) r.name = m->name;
            if (!r.hash) r.hash = m->hash;
            r.when_ms = m->when;
        }
        const bool needs_hash = (target.identifies_by() & MT_IDENTIFIES_HASH) != 0;
        const bool needs_name = (target.identifies_by() & MT_IDENTIFIES_NAME) != 0;
        if ((needs_hash && !r.hash) || (needs_name && !r.name))
            throw OperationError("record " + describe(r) + " matches no file in " + folder.dir.string() +
                                 ", so its " + (needs_hash ? "hash" : "name") + " for the " + target.name() +
                                 " format is unknown; restore the file, or remove the record with "
                                 "mtctl sync --clean-orphans, then convert again");
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace

MigrateReport convert_format(const Kernel& kernel, const std::vector<Tenant>& tenants, const MigrationFolder& folder,
                             const TrackingTarget& target, const ConvertOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    const TrackingFormat& to = kernel.tracking_format(options.to);
    const TrackingFormat* from = options.from ? &kernel.tracking_format(*options.from) : nullptr;
    require_reachable(kernel, tenants);

    MigrateReport report;
    report.tenants.resize(tenants.size());
    std::vector<size_t> todo;
    for (size_t i = 0; i < tenants.size(); ++i) {
        report.tenants[i].tenant = tenants[i];
        todo.push_back(i);
    }
    for_each_tenant(
        tenants, todo, options.concurrency, false, {},
        [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
            auto& result = report.tenants[i];
            const auto t0 = std::chrono::steady_clock::now();
            const Tenant& tenant = result.tenant;
            try {
                if (!conn) conn = kernel.connect(tenant.server);
                pqxx::work tx(*conn);
                begin_tenant_transaction(tx, kernel, tenant, kernel.manifest().migrations.lock_timeout);
                const TableInfo table = read_tables(tx, {tenant.schema}, target.table).at(0);
                if (!table.schema_exists) throw OperationError("schema " + quote_ident(tenant.schema) + " does not exist");
                if (!table.table_exists) {
                    result.outcome = TenantOutcome::skipped;
                    result.error = "no tracking table " + quote_qualified(tenant.schema, target.table) + "; nothing to convert";
                    return true;
                }
                const TrackingFormat* source = kernel.detect_format(table.columns);
                if (!source) throw OperationError("no loaded tracking format recognises " +
                                                  quote_qualified(tenant.schema, target.table));
                if (from && source != from)
                    throw OperationError("table is in the " + source->name() + " format, not " + from->name() +
                                         " as --from says");
                result.format = format_label(source->name());
                if (source == &to) {
                    result.outcome = TenantOutcome::up_to_date;
                    return true;
                }
                SqlSession sql(tx);
                const TrackingTable current{tenant.schema, target.table, table.columns};
                const auto records = complete_records(source->list(sql, current), folder, to);
                for (const auto& r : records) result.applied.push_back(r.name.value_or(r.hash.value_or("")));
                if (options.dry_run) {
                    result.outcome = TenantOutcome::would_migrate;
                    return true;
                }
                tx.exec(with_table("DROP TABLE {table}", tenant.schema, target.table));
                to.create(sql, TrackingTable{tenant.schema, target.table, {}});
                const auto columns = read_tables(tx, {tenant.schema}, target.table).at(0).columns;
                if (!records.empty()) to.record(sql, TrackingTable{tenant.schema, target.table, columns}, records);
                tx.commit();
                result.outcome = TenantOutcome::migrated;
                result.format = format_label(to.name());
            } catch (const pqxx::broken_connection& e) {
                conn.reset();
                result.outcome = TenantOutcome::failed;
                result.error = e.what();
            } catch (const std::exception& e) {
                result.outcome = TenantOutcome::failed;
                result.error = e.what();
                const auto* op = dynamic_cast<const OperationError*>(&e);
                result.sqlstate = op ? op->sqlstate : sqlstate_of(e);
            }
            result.duration_ms = ms_since(t0);
            return result.outcome != TenantOutcome::failed;
        },
        [](size_t) {});
    summarise(report, start);
    return report;
}

}  // namespace mt
