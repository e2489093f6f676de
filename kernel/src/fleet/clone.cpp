// tenant clone: replay the source's applied migrations into a new schema (so the clone's tracking
// table is exact and a later `migrate` works), then optionally copy the rows in foreign-key order.
// Both tenants' advisory locks are held for the whole clone (session-level, so the data can be
// read in one REPEATABLE READ snapshot taken after the locks), which keeps `migrate` off both.
#include "base/text.hpp"
#include "tracking/tables.hpp"
#include "migrations/workers.hpp"

#include <mt/fleet/clone.hpp>
#include <mt/base/errors.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/tracking/rebase.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace mt {

namespace {

using detail::trimmed;

// Rebased for the clone's schema like any tenant migration (issue 13).
std::string statements_of(const Migration& m, const RebasePlan& rebase, const std::string& schema) {
    std::string sql;
    for (const auto& s : rebased_statements(m, rebase, schema)) sql += (sql.empty() ? "" : "\n") + s;
    return sql;
}

void set_tenant_path(pqxx::transaction_base& tx, const Kernel& kernel, const std::string& schema, bool local) {
    exec_params(tx, "SELECT set_config('search_path', $1, $2::boolean)",
                {quote_ident(schema) + ", " + quote_ident(kernel.manifest().isolation.shared_schema),
                 local ? "true" : "false"});
}

// What the clone is built from, read and checked under the locks.
struct ClonePlan {
    const TrackingFormat* format = nullptr;
    std::vector<const Migration*> migrations;
};

ClonePlan plan_clone(const Kernel& kernel, pqxx::transaction_base& tx, const Tenant& from, const Tenant& to,
                     const MigrationFolder& folder, const TrackingTarget& target) {
    TenantStatus source, clone;
    source.tenant = from;
    clone.tenant = to;
    std::vector<TenantStatus*> both{&source, &clone};
    fill_status(kernel, tx, both, folder, target);
    if (source.state == TenantState::missing_schema)
        throw OperationError("tenant " + from.id + " does not exist (no schema " + quote_ident(from.schema) +
                             "); nothing was cloned");
    if (clone.state != TenantState::missing_schema)
        throw OperationError("tenant " + to.id + " already exists (schema " + quote_ident(to.schema) +
                             "); choose another id, or drop it first with mtctl tenant drop --id " + to.id + " --force");
    if (source.state == TenantState::unknown_format)
        throw OperationError("tracking table " + quote_qualified(from.schema, target.table) + " is in a layout " +
                             (target.format == "auto" ? "no loaded tracking format recognises"
                                                      : "other than migrations.format " + target.format) +
                             "; convert it with mtctl convert-format first (nothing was cloned)");
    if (!source.orphans.empty()) {
        std::string names;
        for (const auto& r : source.orphans)
            names += (names.empty() ? "" : ", ") + r.name.value_or(r.hash ? "hash " + r.hash->substr(0, 12) : "?");
        throw OperationError("tenant " + from.id + " has " + std::to_string(source.orphans.size()) +
                             " tracking records that match no file in " + folder.dir.string() + " (" + names +
                             "), so its schema cannot be replayed exactly; restore the files or remove the records "
                             "with mtctl sync --clean-orphans, then clone again (nothing was cloned)");
    }
    ClonePlan plan;
    plan.format = source.state == TenantState::no_table ? &creation_format(kernel, target)
                                                        : &kernel.tracking_format(source.format);
    for (const auto& m : folder.migrations)
        if (std::find(source.applied.begin(), source.applied.end(), m.name) != source.applied.end())
            plan.migrations.push_back(&m);
    return plan;
}

[[noreturn]] void replay_failed(const Migration& m, const Tenant& to, const pqxx::sql_error& e) {
    throw OperationError("replaying " + m.file.filename().string() + " into " + quote_ident(to.schema) + ": " +
                             trimmed(e.what()) + " (tenant " + to.id + " not created)",
                         e.sqlstate());
}

void record(pqxx::transaction_base& tx, const TrackingFormat& format, const Tenant& to, const std::string& table,
            const std::vector<const Migration*>& migrations) {
    if (migrations.empty()) return;
    std::vector<sdk::Record> records;
    for (const auto* m : migrations) records.push_back(sdk::Record{m->name, m->hash, std::nullopt, m->when});
    const auto columns = read_tables(tx, {to.schema}, table).at(0).columns;
    SqlSession sql(tx);
    format.record(sql, TrackingTable{to.schema, table, columns}, records);
}

struct TableShape {
    std::string name;
    bool partitioned = false;
    bool has_identity = false;
    std::vector<std::string> columns;  // insertable (not generated), in attnum order
};

// The tables of a schema that hold rows directly or through their partitions (partitions are
// filled through their parent), without the tracking table.
std::map<std::string, TableShape> table_shapes(pqxx::transaction_base& tx, const std::string& schema,
                                               const std::string& tracking_table) {
    std::map<std::string, TableShape> out;
    const auto rows = exec_params(
        tx,
        "SELECT c.relname::text, c.relkind = 'p', coalesce(bool_or(a.attidentity <> ''), false), "
        "coalesce(json_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated = ''), '[]')::text "
        "FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $2 "
        "GROUP BY c.oid, c.relname, c.relkind",
        {schema, tracking_table});
    for (const auto& row : rows) {
        TableShape t;
        t.name = row[0].c_str();
        t.partitioned = row[1].as<bool>();
        t.has_identity = row[2].as<bool>();
        t.columns = nlohmann::json::parse(row[3].c_str()).get<std::vector<std::string>>();
        out.emplace(t.name, std::move(t));
    }
    return out;
}

// Tables in an order where each comes after the tables its foreign keys reference (Kahn's
// algorithm, ties by name). Tables in a reference cycle follow in name order: their rows load only
// when the cycle's constraints are DEFERRABLE (the copy runs with SET CONSTRAINTS ALL DEFERRED).
std::vector<std::string> dependency_order(pqxx::transaction_base& tx, const std::string& schema,
                                          const std::set<std::string>& tables) {
    std::map<std::string, std::set<std::string>> needs;  // table -> tables it references
    for (const auto& t : tables) needs[t];
    const auto edges = exec_params(
        tx,
        "SELECT c.relname::text, r.relname::text FROM pg_catalog.pg_constraint k "
        "JOIN pg_catalog.pg_class c ON c.oid = k.conrelid "
        "JOIN pg_catalog.pg_class r ON r.oid = k.confrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace "
        "WHERE k.contype = 'f' AND k.conparentid = 0 AND k.conrelid <> k.confrelid "
        "AND n.nspname = $1 AND rn.nspname = $1",
        {schema});
    for (const auto& e : edges) {
        const std::string child = e[0].c_str(), parent = e[1].c_str();
        if (tables.count(child) && tables.count(parent)) needs[child].insert(parent);
    }
    std::vector<std::string> order;
    std::set<std::string> placed;
    while (order.size() < tables.size()) {
        bool progressed = false;
        for (const auto& [table, parents] : needs) {
            if (placed.count(table)) continue;
            if (std::all_of(parents.begin(), parents.end(), [&](const auto& p) { return placed.count(p) > 0; })) {
                order.push_back(table);
                placed.insert(table);
                progressed = true;
            }
        }
        if (!progressed)
            for (const auto& [table, parents] : needs)
                if (placed.insert(table).second) order.push_back(table);
    }
    return order;
}

// User triggers of the clone's tables that are enabled: the copy must not fire them (as a
// pg_dump restore does not), so audit or denormalising triggers do not act twice.
struct EnabledTrigger {
    std::string table, name, mode;  // mode: O (origin), A (always), R (replica)
};

std::vector<EnabledTrigger> enabled_triggers(pqxx::transaction_base& tx, const std::string& schema) {
    std::vector<EnabledTrigger> out;
    for (const auto& row : exec_params(tx,
                                       "SELECT c.relname::text, t.tgname::text, t.tgenabled::text "
                                       "FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid "
                                       "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D' "
                                       "ORDER BY c.relname, t.tgname",
                                       {schema}))
        out.push_back({row[0].c_str(), row[1].c_str(), row[2].c_str()});
    return out;
}

void copy_sequences(pqxx::transaction_base& tx, const Tenant& from, const Tenant& to, CloneReport& report) {
    std::set<std::string> source_sequences;
    for (const auto& row : exec_params(tx,
                                       "SELECT c.relname::text FROM pg_catalog.pg_class c "
                                       "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = $1 AND c.relkind = 'S'",
                                       {from.schema}))
        source_sequences.insert(row[0].c_str());
    // Each sequence of the clone, the integer column owning it (serial or identity), and its direction.
    const auto sequences = exec_params(
        tx,
        "SELECT s.relname::text, oc.relname::text, a.attname::text, q.seqincrement > 0 "
        "FROM pg_catalog.pg_class s "
        "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
        "JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid "
        "LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid "
        "  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') "
        "LEFT JOIN pg_catalog.pg_class oc ON oc.oid = d.refobjid "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "  AND a.atttypid IN ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, 'pg_catalog.int8'::regtype) "
        "WHERE n.nspname = $1 AND s.relkind = 'S' ORDER BY s.relname",
        {to.schema});
    for (const auto& row : sequences) {
        const std::string seq = row[0].c_str();
        const bool ascending = row[3].as<bool>();
        std::optional<std::pair<int64_t, bool>> value;
        if (source_sequences.count(seq)) {
            const auto r = tx.exec1(with_idents("SELECT last_value, is_called FROM {schema}.{seq}",
                                                {{"schema", from.schema}, {"seq", seq}}));
            value.emplace(r[0].as<int64_t>(), r[1].as<bool>());
        }
        if (!row[1].is_null() && !row[2].is_null()) {
            const auto r = tx.exec1(with_idents(ascending ? "SELECT max({column})::bigint FROM {schema}.{table}"
                                                          : "SELECT min({column})::bigint FROM {schema}.{table}",
                                                {{"schema", to.schema}, {"table", row[1].c_str()}, {"column", row[2].c_str()}}));
            if (!r[0].is_null()) {
                const auto extreme = r[0].as<int64_t>();
                const bool past = !value || (ascending ? extreme > value->first : extreme < value->first) ||
                                  (extreme == value->first && !value->second);
                if (past) value.emplace(extreme, true);
            }
        }
        if (!value) continue;
        exec_params(tx, "SELECT setval($1::regclass, $2::bigint, $3::boolean)",
                    {quote_qualified(to.schema, seq), std::to_string(value->first), value->second ? "true" : "false"});
        report.sequences.push_back({seq, value->first, value->second});
    }
}

// Replaces the clone's rows (written by data migrations during the replay) with the source's.
void copy_data(pqxx::transaction_base& tx, const Tenant& from, const Tenant& to, const std::string& tracking_table,
               CloneReport& report) {
    const auto source = table_shapes(tx, from.schema, tracking_table);
    const auto clone = table_shapes(tx, to.schema, tracking_table);
    std::set<std::string> names;
    for (const auto& [name, shape] : source) {
        const auto it = clone.find(name);
        if (it == clone.end())
            throw OperationError("table " + quote_qualified(from.schema, name) + " does not exist in the clone after "
                                 "replaying " + from.id + "'s migrations: the tenant has drifted from its migration "
                                 "files (compare with mtctl diff); tenant " + to.id + " not created");
        for (const auto& column : shape.columns)
            if (std::find(it->second.columns.begin(), it->second.columns.end(), column) == it->second.columns.end())
                throw OperationError("column " + quote_ident(column) + " of " + quote_qualified(from.schema, name) +
                                     " does not exist (or is generated) in the clone after replaying " + from.id +
                                     "'s migrations: the tenant has drifted from its migration files (compare with "
                                     "mtctl diff); tenant " + to.id + " not created");
        names.insert(name);
    }
    if (!clone.empty()) {
        std::string list;
        for (const auto& [name, shape] : clone) list += (list.empty() ? "" : ", ") + quote_qualified(to.schema, name);
        tx.exec("TRUNCATE " + list);
    }
    const auto triggers = enabled_triggers(tx, to.schema);
    for (const auto& t : triggers)
        tx.exec(with_idents("ALTER TABLE {schema}.{table} DISABLE TRIGGER {trigger}",
                            {{"schema", to.schema}, {"table", t.table}, {"trigger", t.name}}));
    tx.exec("SET CONSTRAINTS ALL DEFERRED");
    for (const auto& name : dependency_order(tx, to.schema, names)) {
        const auto& shape = source.at(name);
        ClonedTable copied{name, 0};
        if (!shape.columns.empty()) {
            std::string columns;
            for (const auto& c : shape.columns) columns += (columns.empty() ? "" : ", ") + quote_ident(c);
            // ONLY: an inheritance parent's SELECT would also return its children's rows, which are
            // copied as tables of their own. A partitioned table has no rows of its own.
            const std::string statement = "INSERT INTO " + quote_qualified(to.schema, name) + " (" + columns + ") " +
                                          (clone.at(name).has_identity ? "OVERRIDING SYSTEM VALUE " : "") + "SELECT " +
                                          columns + " FROM " + (shape.partitioned ? "" : "ONLY ") +
                                          quote_qualified(from.schema, name);
            try {
                copied.rows = tx.exec(statement).affected_rows();
            } catch (const pqxx::sql_error& e) {
                throw OperationError("copying table " + quote_ident(name) + ": " + trimmed(e.what()) + " (tenant " +
                                         to.id + " not created)",
                                     e.sqlstate());
            }
        }
        report.tables.push_back(copied);
    }
    try {
        tx.exec("SET CONSTRAINTS ALL IMMEDIATE");
    } catch (const pqxx::sql_error& e) {
        throw OperationError("checking deferred constraints after the copy: " + trimmed(e.what()) + " (tenant " + to.id +
                                 " not created)",
                             e.sqlstate());
    }
    for (const auto& t : triggers) {
        const char* statement = t.mode == "A"   ? "ALTER TABLE {schema}.{table} ENABLE ALWAYS TRIGGER {trigger}"
                                : t.mode == "R" ? "ALTER TABLE {schema}.{table} ENABLE REPLICA TRIGGER {trigger}"
                                                : "ALTER TABLE {schema}.{table} ENABLE TRIGGER {trigger}";
        tx.exec(with_idents(statement, {{"schema", to.schema}, {"table", t.table}, {"trigger", t.name}}));
    }
    copy_sequences(tx, from, to, report);
    // Materialized views were filled from the replayed rows; refresh them from the copied ones
    // (creation order, so one built on another sees it refreshed first).
    for (const auto& row : exec_params(tx,
                                       "SELECT c.relname::text FROM pg_catalog.pg_class c "
                                       "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = $1 AND c.relkind = 'm' AND c.relispopulated ORDER BY c.oid",
                                       {to.schema}))
        tx.exec(with_idents("REFRESH MATERIALIZED VIEW {schema}.{view}", {{"schema", to.schema}, {"view", row[0].c_str()}}));
}

void create_schema(pqxx::transaction_base& tx, const ClonePlan& plan, const Tenant& to, const std::string& table) {
    tx.exec(with_idents("CREATE SCHEMA {schema}", {{"schema", to.schema}}));
    SqlSession sql(tx);
    plan.format->create(sql, TrackingTable{to.schema, table, {}});
}

}  // namespace

CloneReport clone_tenant(const Kernel& kernel, const Tenant& from, Tenant to, const MigrationFolder& folder,
                         const CloneOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    if (to.server && to.server != from.server)
        throw UsageError("tenant " + to.id + " is routed to server " + *to.server + " but " + from.id + " lives on " +
                         from.server.value_or("the default server") + "; a clone is made on its source's server");
    if (from.schema == to.schema) throw UsageError("--from and --to name the same tenant");
    to.server = from.server;
    const TrackingTarget target = TrackingTarget::tenants(kernel.manifest());
    const RebasePlan rebase = rebase_plan(folder, kernel.manifest().migrations);
    const auto lock_timeout = kernel.manifest().migrations.lock_timeout;
    CloneReport report;
    report.from = from;
    report.to = to;

    auto conn = kernel.connect(from.server);
    // Session-level tenant locks, taken in schema order so two clones never wait on each other in
    // a cycle; released (in reverse) when the clone returns or throws.
    const bool from_first = from.schema < to.schema;
    TenantSessionLock first_lock(*conn, from_first ? from : to, lock_timeout);
    TenantSessionLock second_lock(*conn, from_first ? to : from, lock_timeout);
    ClonePlan plan;
    {
        // One snapshot, taken after the locks: the source's tracking table and rows agree.
        pqxx::transaction<pqxx::repeatable_read> tx(*conn);
        set_tenant_path(tx, kernel, to.schema, true);
        plan = plan_clone(kernel, tx, from, to, folder, target);
        report.format = plan.format->label();
        for (const auto* m : plan.migrations) report.migrations.push_back(m->name);
        report.atomic = std::none_of(plan.migrations.begin(), plan.migrations.end(),
                                     [](const Migration* m) { return m->no_transaction; });
        create_schema(tx, plan, to, target.table);
        if (report.atomic) {
            for (const auto* m : plan.migrations) {
                try {
                    if (!m->statements.empty()) tx.exec(statements_of(*m, rebase, to.schema));
                } catch (const pqxx::sql_error& e) {
                    replay_failed(*m, to, e);
                }
            }
            record(tx, *plan.format, to, target.table, plan.migrations);
            if (options.with_data) copy_data(tx, from, to, target.table, report);
        }
        tx.commit();
    }
    if (!report.atomic) {
        // A `-- mt:no-transaction` file cannot run inside the clone's transaction: run each
        // migration as `migrate` would, and drop the new schema if anything fails.
        try {
            for (const auto* m : plan.migrations) {
                if (m->no_transaction) {
                    pqxx::nontransaction tx(*conn);
                    set_tenant_path(tx, kernel, to.schema, false);
                    try {
                        for (const auto& s : rebased_statements(*m, rebase, to.schema)) tx.exec(s);
                    } catch (const pqxx::sql_error& e) {
                        replay_failed(*m, to, e);
                    }
                    tx.exec("RESET search_path");
                }
                pqxx::work tx(*conn);
                set_tenant_path(tx, kernel, to.schema, true);
                if (!m->no_transaction) {
                    try {
                        if (!m->statements.empty()) tx.exec(statements_of(*m, rebase, to.schema));
                    } catch (const pqxx::sql_error& e) {
                        replay_failed(*m, to, e);
                    }
                }
                record(tx, *plan.format, to, target.table, {m});
                tx.commit();
            }
            if (options.with_data) {
                pqxx::transaction<pqxx::repeatable_read> tx(*conn);
                set_tenant_path(tx, kernel, to.schema, true);
                copy_data(tx, from, to, target.table, report);
                tx.commit();
            }
        } catch (...) {
            std::unique_ptr<pqxx::connection> fresh;
            if (!conn->is_open()) fresh = kernel.connect(from.server);
            pqxx::work tx(fresh ? *fresh : *conn);
            tx.exec(with_idents("DROP SCHEMA IF EXISTS {schema} CASCADE", {{"schema", to.schema}}));
            tx.commit();
            throw;
        }
    }
    report.duration_ms = ms_since(start);
    return report;
}

}  // namespace mt
