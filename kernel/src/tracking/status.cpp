// Fleet status in a few batched queries per batch of tenants: one for the tracking tables' columns,
// then the records: one query of COPY statements per chunk of tables whose format declares a COPY
// read (ABI 1.2), one UNION ALL of list queries per format and chunk for the others. No round trip
// per tenant, and no more than one batch held at once.
#include "base/pqxx_session.hpp"
#include "tracking/copy_read.hpp"
#include "tracking/tables.hpp"

#include <mt/base/errors.hpp>
#include <mt/tracking/status.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <set>

namespace mt {

namespace {
constexpr size_t kColumnChunk = 5000;  // schemas per catalog query
// Tracking tables per UNION ALL query: planning such a query grows faster than its branch count
// (measured warm, per table: 0.4 ms at 25 branches, 1 ms at 100, 2 ms at 250), so small chunks.
constexpr size_t kRecordChunk = 25;
}  // namespace

TrackingTarget TrackingTarget::tenants(const Manifest& m) {
    return TrackingTarget{m.migrations.table, m.migrations.format, m.migrations.default_format, false};
}

TrackingTarget TrackingTarget::shared_schema(const Manifest& m) {
    return TrackingTarget{m.migrations.shared_table, m.migrations.format, m.migrations.default_format, true};
}

std::string to_string(TenantState s) {
    switch (s) {
        case TenantState::up_to_date: return "up-to-date";
        case TenantState::behind: return "behind";
        case TenantState::missing_schema: return "missing-schema";
        case TenantState::no_table: return "no-table";
        case TenantState::unknown_format: return "unknown-format";
    }
    return "?";
}

std::vector<TableInfo> read_tables(pqxx::transaction_base& tx, const std::vector<std::string>& schemas,
                                   const std::string& table) {
    std::vector<TableInfo> out(schemas.size());
    for (size_t begin = 0; begin < schemas.size(); begin += kColumnChunk) {
        const size_t end = std::min(schemas.size(), begin + kColumnChunk);
        nlohmann::json names = nlohmann::json::array();
        for (size_t i = begin; i < end; ++i) names.push_back(schemas[i]);
        const auto rows = exec_params(
            tx,
            // One index lookup per schema (the OFFSET 0 fences keep the planner from flattening
            // the LATERALs into hash joins): a plain join read every tracking table's columns in
            // the database, ~15 ms per call at 1,000 tenants, which dominated per-migration steps.
            "SELECT s.i, n.oid IS NOT NULL, c.oid IS NOT NULL, a.attname::text, "
            "format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "coalesce(c.relkind = 'r' AND NOT c.relhassubclass, false) "
            "FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS s(name, i) "
            "LEFT JOIN LATERAL (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = s.name OFFSET 0) n ON true "
            "LEFT JOIN LATERAL (SELECT oid, relkind, relhassubclass FROM pg_catalog.pg_class "
            "WHERE relnamespace = n.oid AND relname = $2 AND relkind IN ('r', 'p') OFFSET 0) c ON true "
            "LEFT JOIN LATERAL (SELECT attname, atttypid, atttypmod, attnotnull, attnum FROM pg_catalog.pg_attribute "
            "WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped OFFSET 0) a ON true "
            "ORDER BY s.i, a.attnum",
            {names.dump(), table});
        for (const auto& row : rows) {
            auto& info = out[begin + row[0].as<size_t>() - 1];
            info.schema_exists = row[1].as<bool>();
            info.table_exists = row[2].as<bool>();
            info.plain = row[6].as<bool>();
            if (!row[3].is_null())
                info.columns.push_back(sdk::Column{row[3].c_str(), row[4].c_str(), row[5].as<bool>()});
        }
    }
    return out;
}

namespace {

// Tables per COPY query: one round trip each; the server runs them one after another.
constexpr size_t kCopyChunk = 250;

}  // namespace

std::vector<std::vector<sdk::Record>> read_records(pqxx::transaction_base& tx, const TrackingFormat& format,
                                                   const std::vector<std::string>& schemas,
                                                   const std::vector<const TableInfo*>& tables,
                                                   const std::string& table) {
    std::vector<std::vector<sdk::Record>> out(schemas.size());
    // By COPY: no plan, so none of the table's indexes is opened (the larger part of reading a
    // small table for the first time in a session; docs/benchmarks.md "Fleet scale").
    std::vector<size_t> by_query;
    std::vector<std::pair<size_t, TrackingCopyRead>> by_copy;
    for (size_t i = 0; i < schemas.size(); ++i) {
        std::optional<TrackingCopyRead> read;
        if (tables[i]->plain) read = format.copy_read(tables[i]->columns);
        if (read) by_copy.emplace_back(i, std::move(*read));
        else by_query.push_back(i);
    }
    for (size_t begin = 0; begin < by_copy.size(); begin += kCopyChunk) {
        const size_t end = std::min(by_copy.size(), begin + kCopyChunk);
        std::string statements;
        for (size_t k = begin; k < end; ++k)
            statements += copy_statement(by_copy[k].second, schemas[by_copy[k].first], table) + ";";
        detail::copy_out(tx.conn(), statements, [&](size_t n, std::string_view data) {
            const auto& [i, read] = by_copy.at(begin + n);
            out[i] = decode_copy(data, read, schemas[i], table);
        });
    }

    const std::string list_query = by_query.empty() ? std::string() : format.list_query();
    for (size_t begin = 0; begin < by_query.size(); begin += kRecordChunk) {
        const size_t end = std::min(by_query.size(), begin + kRecordChunk);
        std::string sql;
        SqlParams params;
        for (size_t k = begin; k < end; ++k) {
            if (!sql.empty()) sql += " UNION ALL ";
            params.push_back(std::to_string(by_query[k]));
            std::string select = with_table(list_query, schemas[by_query[k]], table);
            sql += "SELECT $" + std::to_string(params.size()) + "::int AS i, q.* FROM (" + select + ") q";
        }
        for (const auto& row : exec_params(tx, sql, params)) {
            sdk::Record r;
            if (!row[1].is_null()) r.name = row[1].c_str();
            if (!row[2].is_null()) r.hash = row[2].c_str();
            if (!row[3].is_null()) r.created_at_ms = row[3].as<int64_t>();
            out[row[0].as<size_t>()].push_back(std::move(r));
        }
    }
    return out;
}

std::string with_table(const std::string& statement, const std::string& schema, const std::string& table) {
    const std::string qualified = quote_qualified(schema, table);
    std::string out = statement;
    for (size_t pos = out.find("{table}"); pos != std::string::npos; pos = out.find("{table}", pos + qualified.size()))
        out.replace(pos, 7, qualified);
    return out;
}

void classify(TenantStatus& st, const MigrationFolder& folder) {
    st.applied.clear();
    st.pending.clear();
    st.orphans.clear();
    st.edited.clear();
    std::map<std::string, const sdk::Record*> by_name;
    std::set<std::string> hashes;
    for (const auto& r : st.records) {
        if (r.name) by_name.emplace(*r.name, &r);
        if (r.hash) hashes.insert(*r.hash);
    }
    std::set<std::string> disk_names, disk_hashes;
    for (const auto& m : folder.migrations) {
        disk_names.insert(m.name);
        disk_hashes.insert(m.hash);
        auto named = by_name.find(m.name);
        if (named != by_name.end()) {
            st.applied.push_back(m.name);
            if (named->second->hash && *named->second->hash != m.hash && !hashes.count(m.hash))
                st.edited.push_back(m.name);
        } else if (hashes.count(m.hash)) {
            st.applied.push_back(m.name);
        } else {
            st.pending.push_back(m.name);
        }
    }
    for (const auto& r : st.records) {
        const bool known = (r.name && disk_names.count(*r.name)) || (r.hash && disk_hashes.count(*r.hash));
        if (!known) st.orphans.push_back(r);
    }
    if (st.state == TenantState::up_to_date || st.state == TenantState::behind)
        st.state = st.pending.empty() ? TenantState::up_to_date : TenantState::behind;
}

const TrackingFormat* resolve_format(const Kernel& kernel, const TrackingTarget& target,
                                     const std::vector<sdk::Column>& columns) {
    if (target.format == "auto") return kernel.detect_format(columns);
    // A fixed format must be the table's best match: `name` also accepts a hash table whose name
    // column is nullable, but reading it as `name` would lose the hashes and re-run edited files.
    const TrackingFormat& f = kernel.tracking_format(target.format);
    const int score = f.detect(columns);
    if (score <= 0) return nullptr;
    // detect_format returns the first highest scorer, so a tie with another format keeps f.
    const TrackingFormat* best = kernel.detect_format(columns);
    return best == &f || best->detect(columns) == score ? &f : nullptr;
}

const TrackingFormat& creation_format(const Kernel& kernel, const TrackingTarget& target) {
    return kernel.tracking_format(target.format == "auto" ? target.default_format : target.format);
}

void require_reachable(const Kernel& kernel, const TenantList& tenants) {
    auto servers = tenants.servers();
    std::sort(servers.begin(), servers.end());  // database.url first, then by name
    for (const auto& server : servers) kernel.connect(server);
}

void fill_status(const Kernel& kernel, pqxx::transaction_base& tx, std::vector<TenantStatus*>& statuses,
                 const MigrationFolder& folder, const TrackingTarget& target) {
    std::vector<std::string> schemas;
    schemas.reserve(statuses.size());
    for (auto* st : statuses) schemas.push_back(st->tenant.schema);
    const auto tables = read_tables(tx, schemas, target.table);

    std::map<const TrackingFormat*, std::vector<size_t>> by_format;
    for (size_t i = 0; i < statuses.size(); ++i) {
        auto& st = *statuses[i];
        st.columns = tables[i].columns;
        st.records.clear();
        st.convert_from.clear();
        st.would_convert = false;
        if (!tables[i].schema_exists || !tables[i].table_exists) {
            st.state = tables[i].schema_exists ? TenantState::no_table : TenantState::missing_schema;
            const TrackingFormat& f = creation_format(kernel, target);
            st.format = f.label();
            st.capabilities = f.capabilities();
        } else if (const auto* f = resolve_format(kernel, target, st.columns)) {
            st.state = TenantState::up_to_date;
            st.format = f->label();
            st.capabilities = f->capabilities(st.columns);
            by_format[f].push_back(i);
        } else {
            st.state = TenantState::unknown_format;
            st.format.clear();
            st.capabilities = {};
            // In another readable format than the configured one: read in that format, so that
            // status and an auto-converting migrate see what is applied.
            if (const auto* readable = kernel.detect_format(st.columns)) {
                st.convert_from = readable->label();
                st.would_convert = kernel.manifest().migrations.auto_convert;
                by_format[readable].push_back(i);
            }
        }
    }
    for (const auto& [format, indices] : by_format) {
        std::vector<std::string> group;
        std::vector<const TableInfo*> group_tables;
        for (size_t i : indices) {
            group.push_back(schemas[i]);
            group_tables.push_back(&tables[i]);
        }
        auto records = read_records(tx, *format, group, group_tables, target.table);
        for (size_t k = 0; k < indices.size(); ++k) statuses[indices[k]]->records = std::move(records[k]);
    }
    for (auto* st : statuses) classify(*st, folder);
}

namespace {

// A fresh backend for the reads after this many tenants. A backend that has opened tens of thousands
// of tracking tables carries their catalog caches (about 190 MB at 50,000); a fresh one rebuilds
// its caches and faults in shared memory again, which the COPY read made the larger cost: status
// of 100,000 tenants took 12.9-20.7 s renewing every 10,000, 8.7-9.8 s every 50,000
// (docs/benchmarks.md, "Fleet scale").
constexpr size_t kTenantsPerReadSession = 50000;
// Batches read at once, each on its own connection: reading is the server's work, and planning the
// reads of thousands of tables keeps one backend busy; two use both cores of a small server.
constexpr size_t kReaders = 2;

// One server's snapshot for a read of several batches: exported from a read-only repeatable-read
// transaction held open until the read ends.
class ExportedSnapshot {
public:
    ExportedSnapshot(const Kernel& kernel, const std::optional<std::string>& server) : holder_(kernel.connect(server)) {
        held_.emplace(*holder_);
        id_ = held_->exec("SELECT pg_export_snapshot()")[0][0].as<std::string>();
    }
    const std::string& id() const { return id_; }
    void finish() {
        if (held_) held_->commit();
        held_.reset();
    }

private:
    std::unique_ptr<pqxx::connection> holder_;  // declared before held_: outlives it
    std::optional<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>> held_;
    std::string id_;
};

// One reader's connection to one server: each batch in its own short transaction, in the server's
// exported snapshot when there is one.
class BatchReader {
public:
    BatchReader(const Kernel& kernel, std::optional<std::string> server, const ExportedSnapshot* snapshot)
        : kernel_(kernel), server_(std::move(server)), snapshot_(snapshot) {}

    template <class F>
    void read(size_t tenants, F&& fn) {
        if (!conn_ || !conn_->is_open() || (uses_ += tenants) > kTenantsPerReadSession) {
            conn_ = kernel_.connect(server_);
            uses_ = tenants;
        }
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*conn_);
        // SET TRANSACTION SNAPSHOT takes no parameters; the id is the server's own, quoted.
        if (snapshot_) tx.exec("SET TRANSACTION SNAPSHOT " + tx.quote(snapshot_->id()));
        fn(tx);
        tx.commit();
    }

private:
    const Kernel& kernel_;
    std::optional<std::string> server_;
    const ExportedSnapshot* snapshot_;
    std::unique_ptr<pqxx::connection> conn_;
    size_t uses_ = 0;
};

}  // namespace

double stream_fleet_status(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                           const TrackingTarget& target, const TenantStatusSink& sink) {
    const auto start = std::chrono::steady_clock::now();
    const size_t batches = (tenants.size() + kStatusBatch - 1) / kStatusBatch;
    std::map<std::optional<std::string>, size_t> per_server;
    for (size_t i = 0; i < tenants.size(); ++i) ++per_server[tenants.server(i)];
    // Every server is connected to (and its snapshot taken) before the first batch: an unreachable
    // one fails the whole read up front, and the snapshots are taken at about the same moment.
    std::map<std::optional<std::string>, std::unique_ptr<ExportedSnapshot>> snapshots;
    for (const auto& [server, n] : per_server) {
        if (n > kStatusBatch) snapshots.emplace(server, std::make_unique<ExportedSnapshot>(kernel, server));
        else if (per_server.size() > 1) kernel.connect(server);
    }

    // Reads batch b into statuses (one reader's connections, by server).
    using Readers = std::map<std::optional<std::string>, std::unique_ptr<BatchReader>>;
    const auto read_batch = [&](size_t b, std::vector<TenantStatus>& statuses, Readers& readers) {
        const size_t begin = b * kStatusBatch, end = std::min(tenants.size(), begin + kStatusBatch);
        statuses.clear();
        statuses.resize(end - begin);
        std::map<std::optional<std::string>, std::vector<TenantStatus*>> groups;
        for (size_t k = 0; k < statuses.size(); ++k) {
            statuses[k].tenant = tenants[begin + k];
            groups[statuses[k].tenant.server].push_back(&statuses[k]);
        }
        for (auto& [server, group] : groups) {
            auto& reader = readers[server];
            if (!reader) {
                const auto snapshot = snapshots.find(server);
                reader = std::make_unique<BatchReader>(kernel, server,
                                                       snapshot == snapshots.end() ? nullptr : snapshot->second.get());
            }
            reader->read(group.size(), [&](pqxx::transaction_base& tx) { fill_status(kernel, tx, group, folder, target); });
        }
    };

    const size_t parallel = std::min(kReaders, batches);
    if (parallel <= 1) {
        Readers readers;
        std::vector<TenantStatus> statuses;
        for (size_t b = 0; b < batches; ++b) {
            read_batch(b, statuses, readers);
            for (const auto& st : statuses) sink(st);
        }
    } else {
        // Reader r reads batches r, r + parallel, …; batch b waits until batch b - parallel has been
        // handed on, so at most `parallel` batches are held; this thread hands them on in order.
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<std::vector<TenantStatus>> slots(parallel);
        std::vector<bool> ready(parallel, false);
        size_t emitted = 0;
        bool stop = false;
        std::exception_ptr failure;
        // The first failure (a reader's or the sink's) stops every thread and is rethrown here.
        const auto give_up = [&](std::exception_ptr e) {
            std::lock_guard lock(mutex);
            if (!failure) failure = std::move(e);
            stop = true;
            changed.notify_all();
        };
        {
            std::vector<std::jthread> threads;
            for (size_t r = 0; r < parallel; ++r)
                threads.emplace_back([&, r] {
                    Readers readers;
                    std::vector<TenantStatus> statuses;
                    try {
                        for (size_t b = r; b < batches; b += parallel) {
                            read_batch(b, statuses, readers);
                            std::unique_lock lock(mutex);
                            changed.wait(lock, [&] { return stop || emitted + parallel > b; });
                            if (stop) return;
                            std::swap(slots[b % parallel], statuses);
                            ready[b % parallel] = true;
                            changed.notify_all();
                        }
                    } catch (...) {
                        give_up(std::current_exception());
                    }
                });
            try {
                for (size_t b = 0; b < batches; ++b) {
                    std::vector<TenantStatus> batch;
                    {
                        std::unique_lock lock(mutex);
                        changed.wait(lock, [&] { return stop || ready[b % parallel]; });
                        if (stop) break;
                        std::swap(batch, slots[b % parallel]);
                        ready[b % parallel] = false;
                    }
                    for (const auto& st : batch) sink(st);
                    std::lock_guard lock(mutex);
                    ++emitted;
                    changed.notify_all();
                }
            } catch (...) {
                give_up(std::current_exception());
            }
        }  // joins the readers
        if (failure) std::rethrow_exception(failure);
    }
    for (auto& [server, snapshot] : snapshots) snapshot->finish();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

FleetStatus fleet_status(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                         const TrackingTarget& target) {
    FleetStatus fleet;
    fleet.tenants.reserve(tenants.size());
    fleet.duration_ms = stream_fleet_status(kernel, tenants, folder, target,
                                            [&](const TenantStatus& st) { fleet.tenants.push_back(st); });
    return fleet;
}

}  // namespace mt
