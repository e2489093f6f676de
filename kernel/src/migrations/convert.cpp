// convert-format: rewrites each tenant's tracking table in another format, in one transaction per
// tenant under the tenant's advisory lock. Every record keeps its identity: a missing name or hash
// is filled from the folder (by the other identifier), and both are stored where the target layout
// has room, so conversions round-trip. A record that cannot be completed (its file is gone and the
// target needs what only the file can give) fails that tenant and changes nothing.
#include "tracking/tables.hpp"
#include "migrations/rollout_schedule.hpp"
#include "migrations/workers.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <mutex>
#include <optional>

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
                                 ", so its " + (needs_hash ? "hash" : "name") + " for the " + target.label() +
                                 " format is unknown; restore the file, or remove the record with "
                                 "mtctl sync --clean-orphans, then convert again");
        out.push_back(std::move(r));
    }
    return out;
}

const sdk::Column* column_named(const std::vector<sdk::Column>& columns, const std::string& name) {
    for (const auto& c : columns)
        if (c.name == name) return &c;
    return nullptr;
}

// The first timestamptz column (name's applied_at, hash's created_at), or nullptr.
const sdk::Column* timestamptz_column(const std::vector<sdk::Column>& columns) {
    for (const auto& c : columns)
        if (c.type == "timestamp with time zone") return &c;
    return nullptr;
}

// Records carry no row id and their timestamps in milliseconds: the rewritten table gets each
// row's old id back (by position: both tables list rows in id order and a format records them in
// the order given) and, between two timestamptz layouts, the exact old timestamp, so a conversion
// and its reverse give back the same rows. Layouts without an id column keep their own numbering.
void restore_row_identity(pqxx::transaction_base& tx, const Tenant& tenant, const std::string& table,
                          const std::vector<sdk::Column>& old_columns, const std::vector<sdk::Column>& new_columns) {
    if (!column_named(old_columns, "id") || !column_named(new_columns, "id")) return;
    const auto* old_ts = timestamptz_column(old_columns);
    const auto* new_ts = timestamptz_column(new_columns);
    const bool copy_ts = old_ts && new_ts;
    // Negate first so that no id is ever held by two rows while they are renumbered.
    tx.exec(with_table("UPDATE {table} SET id = -id", tenant.schema, table));
    tx.exec(with_table("UPDATE {table} t SET id = o.id" +
                           (copy_ts ? ", " + quote_ident(new_ts->name) + " = o.ts" : std::string()) +
                           " FROM (SELECT k, id, ts FROM pg_temp.mt_convert_old) o"
                           " JOIN (SELECT id, row_number() OVER (ORDER BY id DESC) AS k FROM {table}) n USING (k)"
                           " WHERE t.id = n.id",
                       tenant.schema, table));
    const std::string qualified = quote_qualified(tenant.schema, table);
    exec_params(tx,
                "SELECT setval(s, m, true) FROM (SELECT pg_get_serial_sequence($1, 'id') AS s, (SELECT max(id) FROM " +
                    qualified + ") AS m) x WHERE s IS NOT NULL AND m IS NOT NULL",
                {qualified});
}

// Whether the table's rows, read in id order, carry the identifiers of the listed records position
// by position (every in-tree format lists in id order): only then can the rewritten rows be given
// their former ids by position. False without an id column or for a format listing in another order.
bool rows_pair_with(pqxx::transaction_base& tx, const Tenant& tenant, const std::string& table,
                    const std::vector<sdk::Column>& columns, const std::vector<sdk::Record>& records) {
    if (!column_named(columns, "id")) return false;
    const auto rows = exec_params(tx, with_table("SELECT coalesce(to_jsonb(t)->>'name', to_jsonb(t)->>'migration_name'), "
                                                 "to_jsonb(t)->>'hash' FROM {table} t ORDER BY t.id",
                                                 tenant.schema, table));
    if (rows.size() != records.size()) return false;
    for (size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        const auto name = rows[i][0].is_null() ? std::nullopt : std::optional<std::string>(rows[i][0].c_str());
        const auto hash = rows[i][1].is_null() ? std::nullopt : std::optional<std::string>(rows[i][1].c_str());
        if ((r.name && name != r.name) || (r.hash && hash != r.hash)) return false;
    }
    return true;
}

}  // namespace

std::vector<std::string> convert_table(pqxx::transaction_base& tx, const Tenant& tenant, const std::string& table,
                                       const std::vector<sdk::Column>& columns, const TrackingFormat& source,
                                       const TrackingFormat& to, const MigrationFolder& folder, bool dry_run) {
    SqlSession sql(tx);
    const auto listed = source.list(sql, TrackingTable{tenant.schema, table, columns});
    const auto records = complete_records(listed, folder, to);
    std::vector<std::string> names;
    for (const auto& r : records) names.push_back(r.name.value_or(r.hash.value_or("")));
    if (dry_run) return names;
    const auto* old_ts = timestamptz_column(columns);
    // Only when every listed record is paired with its row: a format that lists in another order
    // keeps the new numbering rather than mislabelled rows.
    const bool has_id = rows_pair_with(tx, tenant, table, columns, listed);
    if (has_id)
        tx.exec(with_table("CREATE TEMP TABLE mt_convert_old ON COMMIT DROP AS SELECT row_number() OVER "
                           "(ORDER BY id) AS k, id, " +
                               (old_ts ? quote_ident(old_ts->name) : std::string("NULL::timestamptz")) +
                               " AS ts FROM {table}",
                           tenant.schema, table));
    tx.exec(with_table("DROP TABLE {table}", tenant.schema, table));
    to.create(sql, TrackingTable{tenant.schema, table, {}});
    const auto new_columns = read_tables(tx, {tenant.schema}, table).at(0).columns;
    if (!records.empty()) to.record(sql, TrackingTable{tenant.schema, table, new_columns}, records);
    if (has_id) {
        restore_row_identity(tx, tenant, table, columns, new_columns);
        tx.exec("DROP TABLE pg_temp.mt_convert_old");
    }
    return names;
}

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
    // A dry run changes nothing and the shared table is one: no rollout control applies to them
    // (the CLI refuses the flags), nor the manifest's [rollout] limits.
    const bool paced = !options.dry_run && !target.shared;
    const RolloutOptions rollout = paced ? options.rollout : RolloutOptions{};
    std::optional<RolloutPacer> pacer;
    if (paced)
        pacer.emplace(kernel, rollout, rollout.throttle.concurrency_auto.value_or(kernel.manifest().migrations.concurrency_auto),
                      todo.size());
    const int fixed = std::max(1, options.concurrency);
    std::mutex finished_mutex;
    const auto convert_one = [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
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
                throw OperationError("table is in the " + source->label() + " format, not " + from->label() +
                                     " as --from says");
            result.format = source->label();
            if (source == &to) {
                result.outcome = TenantOutcome::up_to_date;
                return true;
            }
            result.applied = convert_table(tx, tenant, target.table, table.columns, *source, to, folder, options.dry_run);
            if (options.dry_run) {
                result.outcome = TenantOutcome::would_migrate;
                return true;
            }
            tx.commit();
            result.outcome = TenantOutcome::migrated;
            result.format = to.label();
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
    };
    run_rollout(
        tenants, todo, RolloutRun{rollout, pacer ? pacer->concurrency(fixed) : fixed, false, options.progress, "convert-format"}, {},
        report.rollout,
        [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
            const bool ok = convert_one(i, conn);
            if (options.tenant_finished) {
                std::lock_guard lock(finished_mutex);
                options.tenant_finished(report.tenants[i]);
            }
            return ok;
        },
        [&](size_t i) { report.tenants[i].outcome = TenantOutcome::skipped; },
        pacer ? pacer->pacing(tenants) : RolloutPacing{});
    if (pacer) pacer->finish(report.rollout, fixed);
    else report.rollout.concurrency = {false, fixed, fixed, fixed, fixed, 0};
    summarise(report, start);
    return report;
}

}  // namespace mt
