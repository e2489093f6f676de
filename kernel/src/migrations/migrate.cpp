// The migration engine: a work queue of tenants served by `concurrency` workers per server, each
// reusing one connection across tenants. Every transaction takes the tenant's advisory lock,
// re-reads the tracking table under it and applies what is still pending, so concurrent runs,
// crashes and reruns converge on every migration applied exactly once.
// Over 500 lines on purpose: TenantRunner's two paths (in a transaction, and -- mt:no-transaction
// under the session lock) share its under-the-lock re-read and recording; apart, they would drift.
#include "tracking/renamed.hpp"
#include "tracking/tables.hpp"
#include "migrations/rollout_schedule.hpp"
#include "migrations/throttle.hpp"
#include "migrations/workers.hpp"

#include <mt/base/errors.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/tracking/rebase.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace mt {

namespace {

using Clock = std::chrono::steady_clock;

// A backend that has touched thousands of schemas carries large catalog caches and gets slower;
// workers start a fresh session after this many tenants.
constexpr int kTenantsPerConnection = 200;

// The migration's statements as they run in schema: rebased for a tenant folder (issue 13); the
// file on disk, and so its hash in the tracking record, stays as written.
std::string joined_statements(const Migration& m, const RebasePlan& rebase, const std::string& schema) {
    std::string sql;
    for (const auto& s : rebased_statements(m, rebase, schema)) {
        if (!sql.empty()) sql += "\n";
        sql += s;
    }
    return sql;
}

sdk::Record record_for(const Migration& m) { return sdk::Record{m.name, m.hash, std::nullopt, m.when}; }

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// Whether `name` occurs in the file's statements as a whole word, ignoring case.
bool names(const Migration& m, const std::string& name) {
    std::string lower_name;
    for (char c : name) lower_name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& statement : m.statements) {
        std::string text;
        for (char c : statement) text += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (auto at = text.find(lower_name); at != std::string::npos; at = text.find(lower_name, at + 1)) {
            const size_t end = at + lower_name.size();
            if ((at == 0 || !word_char(text[at - 1])) && (end == text.size() || !word_char(text[end])))
                return true;
        }
    }
    return false;
}

// Invalid indexes in the schema that a `-- mt:no-transaction` file names: what an interrupted
// CREATE INDEX CONCURRENTLY leaves behind, and what its IF NOT EXISTS would then skip, so that the
// file would be recorded with a broken index.
std::vector<std::string> invalid_indexes_named_by(pqxx::transaction_base& tx, const std::string& schema,
                                                  const Migration& m) {
    std::vector<std::string> found;
    const auto r = exec_params(tx,
                               "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                               " JOIN pg_namespace n ON n.oid = c.relnamespace"
                               " WHERE n.nspname = $1 AND NOT i.indisvalid ORDER BY c.relname",
                               {schema});
    for (const auto& row : r)
        if (names(m, row[0].as<std::string>())) found.push_back(row[0].as<std::string>());
    return found;
}

struct MigrationFailure : OperationError {
    MigrationFailure(std::string migration, const std::string& what, std::string state)
        : OperationError(what, std::move(state)), migration(std::move(migration)) {}
    std::string migration;
};

class TenantRunner {
public:
    // first_no_transaction: the tenant's first pending migration (as last seen) is a
    // `-- mt:no-transaction` file, so its first step takes the session-level lock directly.
    // between_steps: the throttle's check between two of the tenant's transactions.
    TenantRunner(const Kernel& kernel, const MigrationFolder& folder, const TrackingTarget& target,
                 const MigrateOptions& options, const RebasePlan& rebase, size_t limit, bool first_no_transaction = false,
                 std::function<void(std::unique_ptr<pqxx::connection>&)> between_steps = {})
        : kernel_(kernel), folder_(folder), target_(target), options_(options), rebase_(rebase), limit_(limit),
          next_no_transaction_(first_no_transaction && !options.mark_applied), between_steps_(std::move(between_steps)) {}

    // Runs one tenant to completion (or its first failure) on conn, reconnecting when it breaks.
    void run(std::unique_ptr<pqxx::connection>& conn, TenantMigrateResult& result) {
        const auto start = Clock::now();
        try {
            bool more = true;
            bool first = true;
            while (more) {
                if (!first && between_steps_) between_steps_(conn);
                first = false;
                more = with_retry_unless_locked(kernel_, result.tenant.id, [&] {
                    try {
                        if (!conn || !conn->is_open()) conn = kernel_.connect(result.tenant.server);
                        return step(*conn, result);
                    } catch (const pqxx::broken_connection&) {
                        conn.reset();
                        throw;
                    }
                });
            }
            result.outcome = result.applied.empty() && result.converted_from.empty() ? TenantOutcome::up_to_date
                                                                                     : TenantOutcome::migrated;
        } catch (const MigrationFailure& e) {
            fail(result, e.what(), e.sqlstate, e.migration);
        } catch (const LockTimeout& e) {
            fail(result, e.what(), e.sqlstate, {});
        } catch (const OperationError& e) {
            fail(result, e.what(), e.sqlstate, current_);
        } catch (const pqxx::sql_error& e) {
            fail(result, e.what(), e.sqlstate(), current_);
        } catch (const std::exception& e) {
            fail(result, e.what(), sqlstate_of(e), current_);
        }
        result.duration_ms = ms_since(start);
    }

private:
    void fail(TenantMigrateResult& result, std::string error, std::string sqlstate, std::string migration) {
        while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
        result.outcome = TenantOutcome::failed;
        result.error = std::move(error);
        result.sqlstate = std::move(sqlstate);
        result.failed_migration = std::move(migration);
        // A conversion in the failed transaction was rolled back with it.
        if (!converting_from_.empty()) result.format = converting_from_;
    }

    // Pending migrations (in order, up to --to) for the tenant as seen under its lock. With
    // migrations.auto_convert, a table in another readable format is converted first, in tx.
    std::vector<const Migration*> pending_under_lock(pqxx::transaction_base& tx, TenantMigrateResult& result,
                                                     const TrackingFormat*& format, std::vector<sdk::Column>& columns) {
        TenantStatus st;
        st.tenant = result.tenant;
        std::vector<TenantStatus*> one{&st};
        fill_status(kernel_, tx, one, folder_, target_);
        converting_from_.clear();
        if (st.state == TenantState::unknown_format && st.would_convert) {
            convert_under_lock(tx, st);
            fill_status(kernel_, tx, one, folder_, target_);
        }
        if (st.state == TenantState::missing_schema)
            throw OperationError("schema " + quote_ident(result.tenant.schema) +
                                 " does not exist; create the tenant with: mtctl tenant create --id " + result.tenant.id);
        if (st.state == TenantState::unknown_format) {
            std::string cols;
            for (const auto& c : st.columns) cols += (cols.empty() ? "" : ", ") + c.name + " " + c.type;
            throw OperationError("tracking table " + quote_qualified(result.tenant.schema, target_.table) +
                                 " has a layout that " +
                                 (target_.format == "auto" ? "no loaded tracking format recognises"
                                                           : "is not the configured format " + target_.format) +
                                 " (columns: " + cols + "); convert it with mtctl convert-format or set migrations.format");
        }
        SqlSession sql(tx);
        if (st.state == TenantState::no_table) {
            format = &creation_format(kernel_, target_);
            format->create(sql, TrackingTable{result.tenant.schema, target_.table, {}});
            columns = read_tables(tx, {result.tenant.schema}, target_.table).at(0).columns;
        } else {
            format = &kernel_.tracking_format(st.format);
            columns = st.columns;
        }
        result.format = format->label();
        std::vector<const Migration*> pending;
        for (size_t i = 0; i < limit_; ++i) {
            const auto& m = folder_.migrations[i];
            if (std::find(st.pending.begin(), st.pending.end(), m.name) != st.pending.end()) pending.push_back(&m);
        }
        return pending;
    }

    // The same conversion as convert-format, in the caller's transaction: it commits with the
    // tenant's first migration step, and a failure there rolls it back too.
    void convert_under_lock(pqxx::transaction_base& tx, const TenantStatus& st) {
        const TrackingFormat& source = kernel_.tracking_format(st.convert_from);
        const TrackingFormat& to = kernel_.tracking_format(target_.format);
        const auto fail = [&](const std::string& what, std::string sqlstate) {
            return OperationError("migrations.auto_convert: converting " + quote_qualified(st.tenant.schema, target_.table) +
                                      " from the " + source.label() + " to the " + to.label() + " format failed: " + what,
                                  std::move(sqlstate));
        };
        converting_from_ = source.label();
        try {
            convert_table(tx, st.tenant, target_.table, st.columns, source, to, folder_, false);
        } catch (const OperationError& e) {
            throw fail(e.what(), e.sqlstate);
        } catch (const pqxx::sql_error& e) {
            throw fail(e.what(), e.sqlstate());
        }
    }

    // After a commit: the conversion made in that transaction (if any) is now the tenant's.
    void committed(TenantMigrateResult& result) {
        if (!converting_from_.empty()) result.converted_from = converting_from_;
        converting_from_.clear();
    }

    void execute(pqxx::transaction_base& tx, const Migration& m, TenantMigrateResult& result) {
        current_ = m.name;
        const auto start = Clock::now();
        bool ok = false;
        try {
            if (!options_.mark_applied && !m.statements.empty())
                tx.exec(joined_statements(m, rebase_, result.tenant.schema));
            ok = true;
        } catch (const pqxx::sql_error& e) {
            emit(result, m, start, false, e.what());
            throw MigrationFailure(m.name, m.file.filename().string() + ": " + e.what(), e.sqlstate());
        }
        if (ok) emit(result, m, start, true, {});
    }

    void emit(const TenantMigrateResult& result, const Migration& m, Clock::time_point start, bool ok,
              const std::string& error) {
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_MIGRATION;
        ev.tenant = sdk::str(result.tenant.id);
        ev.schema = sdk::str(result.tenant.schema);
        ev.name = sdk::str(m.name);
        ev.error = sdk::str(error);
        ev.ok = ok ? 1 : 0;
        ev.duration_s = ms_since(start) / 1000.0;
        kernel_.emit(ev);
    }

    // One transaction (or one `-- mt:no-transaction` file). Returns true when more pending work
    // may remain.
    bool step(pqxx::connection& conn, TenantMigrateResult& result) {
        if (next_no_transaction_) return step_without_transaction(conn, result);
        const TrackingFormat* format = nullptr;
        std::vector<sdk::Column> columns;
        pqxx::work tx(conn);
        begin_tenant_transaction(tx, kernel_, result.tenant, options_.lock_timeout);
        const auto pending = pending_under_lock(tx, result, format, columns);
        if (pending.empty()) {
            tx.commit();
            committed(result);
            return false;
        }
        if (pending.front()->no_transaction && !options_.mark_applied) {
            // Another run changed what is pending since it was read: go through the session lock.
            tx.commit();
            committed(result);
            next_no_transaction_ = true;
            return true;
        }
        const bool whole_tenant = options_.transaction == TransactionMode::per_tenant || options_.mark_applied;
        std::vector<sdk::Record> records;
        size_t done = 0;
        for (const Migration* m : pending) {
            if (m->no_transaction && !options_.mark_applied) break;
            execute(tx, *m, result);
            records.push_back(record_for(*m));
            ++done;
            if (!whole_tenant) break;
        }
        SqlSession sql(tx);
        format->record(sql, TrackingTable{result.tenant.schema, target_.table, columns}, records);
        tx.commit();
        committed(result);
        for (size_t i = 0; i < done; ++i) result.applied.push_back(pending[i]->name);
        current_.clear();
        next_no_transaction_ = done < pending.size() && pending[done]->no_transaction && !options_.mark_applied;
        return done < pending.size();
    }

    // A `-- mt:no-transaction` file (CREATE INDEX CONCURRENTLY …) under the session-level tenant
    // lock: each statement on its own, then the record in a short transaction. Such a file must
    // be idempotent (IF NOT EXISTS): a crash between its statements and its record reruns it.
    bool step_without_transaction(pqxx::connection& conn, TenantMigrateResult& result) {
        const std::string& schema = result.tenant.schema;
        const std::string search_path = quote_ident(schema) + ", " + quote_ident(kernel_.manifest().isolation.shared_schema);
        TenantSessionLock lock(conn, result.tenant, options_.lock_timeout);
        const Migration* m = nullptr;
        bool more = false;
        {
            pqxx::work tx(conn);
            std::vector<sdk::Column> columns;
            const TrackingFormat* format = nullptr;
            exec_params(tx, "SELECT set_config('search_path', $1, true)", {search_path});
            // A conversion made here commits before the file runs: such a file runs outside any
            // transaction, so it cannot share one.
            const auto pending = pending_under_lock(tx, result, format, columns);
            tx.commit();
            committed(result);
            next_no_transaction_ = false;
            if (pending.empty()) {
                lock.release();
                return false;
            }
            if (!pending.front()->no_transaction) {
                lock.release();
                return true;
            }
            m = pending.front();
            more = pending.size() > 1;
            next_no_transaction_ = more && pending[1]->no_transaction;
        }
        {
            pqxx::nontransaction tx(conn);
            exec_params(tx, "SELECT set_config('search_path', $1, false)", {search_path});
            current_ = m->name;
            const auto start = Clock::now();
            try {
                // A leftover of an interrupted run of this file (the tenant's lock rules out another
                // run building it now): dropped so that the file builds it again.
                for (const auto& index : invalid_indexes_named_by(tx, schema, *m)) {
                    spdlog::warn("tenant {}: dropping invalid index {} left by an interrupted run of {}",
                                 result.tenant.id, quote_qualified(schema, index), m->file.filename().string());
                    tx.exec(with_idents("DROP INDEX CONCURRENTLY IF EXISTS {schema}.{index}",
                                        {{"schema", schema}, {"index", index}}));
                }
                for (const auto& s : rebased_statements(*m, rebase_, schema)) tx.exec(s);
            } catch (const pqxx::sql_error& e) {
                // The connection serves other tenants next: leave no session search_path behind.
                tx.exec("RESET search_path");
                emit(result, *m, start, false, e.what());
                throw MigrationFailure(m->name, m->file.filename().string() + ": " + e.what(), e.sqlstate());
            }
            if (const auto left = invalid_indexes_named_by(tx, schema, *m); !left.empty()) {
                const std::string error = m->file.filename().string() + ": index " + quote_qualified(schema, left[0]) +
                                          " is invalid after the file ran, so it was not recorded; drop the index "
                                          "with DROP INDEX CONCURRENTLY and rerun";
                tx.exec("RESET search_path");
                emit(result, *m, start, false, error);
                throw MigrationFailure(m->name, error, "");
            }
            emit(result, *m, start, true, {});
            tx.exec("RESET search_path");
        }
        {
            // The session already holds the tenant's lock: taking it again in the transaction is immediate.
            pqxx::work tx(conn);
            begin_tenant_transaction(tx, kernel_, result.tenant, options_.lock_timeout);
            const TrackingFormat* format = nullptr;
            std::vector<sdk::Column> columns;
            pending_under_lock(tx, result, format, columns);
            SqlSession sql(tx);
            format->record(sql, TrackingTable{schema, target_.table, columns}, {record_for(*m)});
            tx.commit();
        }
        result.applied.push_back(m->name);
        current_.clear();
        lock.release();
        return more;
    }

    const Kernel& kernel_;
    const MigrationFolder& folder_;
    const TrackingTarget& target_;
    const MigrateOptions& options_;
    const RebasePlan& rebase_;
    size_t limit_;
    bool next_no_transaction_;
    std::string current_;
    std::string converting_from_;  // converted in the open transaction, not yet committed
    std::function<void(std::unique_ptr<pqxx::connection>&)> between_steps_;
};

}  // namespace

std::string to_string(TenantOutcome o) {
    switch (o) {
        case TenantOutcome::migrated: return "migrated";
        case TenantOutcome::up_to_date: return "up-to-date";
        case TenantOutcome::would_migrate: return "would-migrate";
        case TenantOutcome::failed: return "failed";
        case TenantOutcome::skipped: return "skipped";
    }
    return "?";
}

size_t migration_limit(const MigrationFolder& folder, const std::optional<std::string>& to) {
    if (!to) return folder.migrations.size();
    for (size_t i = 0; i < folder.migrations.size(); ++i)
        if (folder.migrations[i].name == *to) return i + 1;
    throw UsageError("--to " + *to + ": no migration of that name in " + folder.dir.string() +
                     " (use the file name without .sql)");
}

void summarise(MigrateReport& report, Clock::time_point start) {
    report.total = report.tenants.size();
    report.succeeded = report.failed = report.skipped = report.migrations_applied = report.converted = 0;
    for (const auto& t : report.tenants) {
        if (t.outcome == TenantOutcome::failed) ++report.failed;
        else if (t.outcome == TenantOutcome::skipped) ++report.skipped;
        else ++report.succeeded;
        if (!t.converted_from.empty()) ++report.converted;
        // A failed tenant's list holds what committed before its failure: applied all the same.
        if (t.outcome == TenantOutcome::migrated || t.outcome == TenantOutcome::failed)
            report.migrations_applied += t.applied.size();
    }
    report.duration_ms = ms_since(start);
}

// Runs work(index, connection) for each listed tenant with `concurrency` workers per server.
void for_each_tenant(const TenantList& tenants, const std::vector<size_t>& todo,
                     int concurrency, bool fail_fast, const std::function<void(size_t, size_t)>& progress,
                     const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                     const std::function<void(size_t)>& skip) {
    std::map<std::optional<std::string>, std::vector<size_t>> groups;
    for (size_t i : todo) groups[tenants.server(i)].push_back(i);
    std::atomic<bool> stop{false};
    std::atomic<size_t> done{0};
    std::mutex progress_mutex;
    std::vector<std::jthread> workers;
    std::vector<std::unique_ptr<std::atomic<size_t>>> cursors;
    for (auto& [server, indices] : groups) {
        cursors.push_back(std::make_unique<std::atomic<size_t>>(0));
        auto* cursor = cursors.back().get();
        const auto* list = &indices;
        const int n = std::max(1, std::min<int>(concurrency, static_cast<int>(indices.size())));
        for (int w = 0; w < n; ++w) {
            workers.emplace_back([&, cursor, list] {
                std::unique_ptr<pqxx::connection> conn;
                int uses = 0;
                for (;;) {
                    const size_t k = cursor->fetch_add(1);
                    if (k >= list->size()) break;
                    const size_t index = (*list)[k];
                    if (stop) {
                        skip(index);
                    } else {
                        if (conn && ++uses > kTenantsPerConnection) {
                            conn.reset();
                            uses = 1;
                        }
                        const bool ok = work(index, conn);
                        if (!ok && fail_fast) stop = true;
                    }
                    const size_t d = ++done;
                    if (progress) {
                        std::lock_guard lock(progress_mutex);
                        progress(d, todo.size());
                    }
                }
            });
        }
    }
    workers.clear();  // joins
}

MigrateReport migrate(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                      const TrackingTarget& target, const MigrateOptions& options) {
    const auto start = Clock::now();
    const size_t limit = migration_limit(folder, options.to);
    // The shared folder (migrate-shared) is never rebased.
    const RebasePlan rebase = target.shared ? RebasePlan{} : rebase_plan(folder, kernel.manifest().migrations);
    MigrateReport report;
    const bool streamed = static_cast<bool>(options.on_result);
    if (!streamed) report.tenants.resize(tenants.size());

    // Counts each final result and hands it on in the order of `tenants` (or keeps it in place, when
    // nothing streams them). A result that is final before an earlier tenant's waits for it: an
    // up-to-date one found by the fleet read as one byte (its format label), any other in full.
    std::mutex results_mutex;
    constexpr uint8_t kNotFinal = 0, kHeld = 1, kUpToDate = 2;  // kUpToDate + the format label's index
    std::vector<uint8_t> final_state(streamed ? tenants.size() : 0, kNotFinal);
    std::map<size_t, TenantMigrateResult> held;
    std::vector<std::string> labels;  // format labels, interned
    size_t cursor = 0;                // the next tenant to hand on
    const auto finished = [&](size_t i, TenantMigrateResult&& r, bool started) {
        std::lock_guard lock(results_mutex);
        ++report.total;
        if (r.outcome == TenantOutcome::failed) ++report.failed;
        else if (r.outcome == TenantOutcome::skipped) ++report.skipped;
        else ++report.succeeded;
        if (!r.converted_from.empty()) ++report.converted;
        // A failed tenant's list holds what committed before its failure: applied all the same.
        if (r.outcome == TenantOutcome::migrated || r.outcome == TenantOutcome::failed)
            report.migrations_applied += r.applied.size();
        if (started && options.tenant_finished) options.tenant_finished(r);
        if (!streamed) {
            report.tenants[i] = std::move(r);
            return;
        }
        const auto label = std::find(labels.begin(), labels.end(), r.format);
        if (!started && r.outcome == TenantOutcome::up_to_date && r.converted_from.empty() && r.error.empty() &&
            label != labels.end() && label - labels.begin() < 255 - kUpToDate) {
            final_state[i] = static_cast<uint8_t>(kUpToDate + (label - labels.begin()));
        } else {
            held.emplace(i, std::move(r));
            final_state[i] = kHeld;
        }
        for (; cursor < tenants.size() && final_state[cursor] != kNotFinal; ++cursor) {
            if (final_state[cursor] == kHeld) {
                const auto it = held.find(cursor);
                options.on_result(it->second);
                held.erase(it);
                continue;
            }
            TenantMigrateResult up;
            up.tenant = tenants[cursor];
            up.format = labels[final_state[cursor] - kUpToDate];
            options.on_result(up);
        }
    };

    // What the run keeps of each tenant it will work on: its index, and the format (a few labels,
    // interned) and first-migration kind it was read with.
    std::vector<size_t> todo;
    std::vector<bool> first_no_transaction(tenants.size(), false);
    std::vector<uint16_t> label_of(tenants.size(), 0);
    const auto intern = [&](const std::string& label) {
        const auto it = std::find(labels.begin(), labels.end(), label);
        if (it != labels.end()) return static_cast<uint16_t>(it - labels.begin());
        labels.push_back(label);
        return static_cast<uint16_t>(labels.size() - 1);
    };
    std::set<std::string> canaries(options.rollout.canary_ids.begin(), options.rollout.canary_ids.end());
    std::set<std::string> canaries_failed;  // --canary ids that failed their checks before the run

    size_t next = 0;
    stream_fleet_status(kernel, tenants, folder, target, [&](const TenantStatus& st) {
        const size_t i = next++;
        TenantMigrateResult r;
        r.tenant = tenants[i];
        r.format = st.format;
        // Applied for mtctl (found by hash), so not run again; but a tool that reads the table by
        // name (drizzle-multitenant) would run it, so say which record and how to rename it.
        for (const auto& rn : renamed_records(st, folder))
            spdlog::warn("tenant {}: renamed {} → {} (same content): applied, not run again; drizzle-multitenant "
                         "reads {} by name and would run it; rename the record with: mtctl sync --mark-missing {}",
                         tenants[i].id, *rn.record->name, rn.file->name, quote_qualified(tenants[i].schema, target.table),
                         target.shared ? std::string("--shared") : "--tenant " + tenants[i].id);
        // migrations.auto_convert: a table in another readable format is converted, then migrated.
        const bool convert = st.state == TenantState::unknown_format && st.would_convert;
        if (convert) r.format = kernel.tracking_format(target.format).label();
        std::vector<std::string> pending;
        for (size_t k = 0; k < limit; ++k) {
            const auto& name = folder.migrations[k].name;
            if (std::find(st.pending.begin(), st.pending.end(), name) != st.pending.end()) pending.push_back(name);
        }
        if (st.state == TenantState::missing_schema) {
            r.outcome = TenantOutcome::failed;
            r.error = "schema " + quote_ident(tenants[i].schema) +
                      " does not exist; create the tenant with: mtctl tenant create --id " + tenants[i].id;
        } else if (st.state == TenantState::unknown_format && !convert) {
            r.outcome = TenantOutcome::failed;
            r.error = "tracking table " + quote_qualified(tenants[i].schema, target.table) +
                      " is in a layout " +
                      (target.format == "auto" ? "no loaded tracking format recognises" : "other than " + target.format) +
                      "; convert it with mtctl convert-format or set migrations.format";
        } else if (pending.empty() && !convert) {
            r.outcome = TenantOutcome::up_to_date;
        } else if (const auto unnamed = std::count_if(st.orphans.begin(), st.orphans.end(),
                                                      [](const sdk::Record& rec) { return !rec.name; });
                   unnamed > 0 && !pending.empty() && !options.mark_applied) {
            // A table that identifies migrations by hash alone cannot tell an edited file from a
            // new one: running it would apply the same migration twice. Refuse and say how to look.
            r.outcome = TenantOutcome::failed;
            r.error = std::to_string(unnamed) + " tracking record(s) in " +
                      quote_qualified(tenants[i].schema, target.table) +
                      " match no migration file and carry no name, while " + std::to_string(pending.size()) +
                      " migration(s) look pending: a file was probably edited after it was applied, and running "
                      "it again would apply it twice. Inspect with: mtctl sync --tenant " + tenants[i].id +
                      "; then restore the file, or accept the edit with: mtctl sync --mark-missing --clean-orphans "
                      "--tenant " + tenants[i].id;
        } else if (options.dry_run) {
            r.outcome = TenantOutcome::would_migrate;
            r.applied = pending;
            if (convert) r.converted_from = st.convert_from;
        } else {
            todo.push_back(i);
            label_of[i] = intern(r.format);
            const Migration* first = pending.empty() ? nullptr : folder.find_by_name(pending.front());
            first_no_transaction[i] = first && first->no_transaction;
            return;
        }
        if (r.outcome == TenantOutcome::failed && canaries.count(r.tenant.id)) canaries_failed.insert(r.tenant.id);
        intern(r.format);
        finished(i, std::move(r), false);
    });

    const auto result_of = [&](size_t i, TenantOutcome outcome) {
        TenantMigrateResult r;
        r.tenant = tenants[i];
        r.format = labels[label_of[i]];
        r.outcome = outcome;
        return r;
    };
    const bool automatic =
        !target.shared && options.rollout.throttle.concurrency_auto.value_or(kernel.manifest().migrations.concurrency_auto);
    // With nothing to run, auto stays at zero workers.
    const int fixed = automatic ? 0 : options.concurrency;
    report.rollout.concurrency = {automatic, fixed, fixed, fixed, fixed, 0};
    if (!todo.empty() && !(options.fail_fast && report.failed > 0)) {
        RolloutStart before;
        before.failed = report.failed;
        for (const auto& id : options.rollout.canary_ids)
            if (canaries_failed.count(id)) {
                before.canary_failed = id;
                break;
            }
        // Throttle and --concurrency auto (issue 14): one probe for the whole run.
        RolloutPacer pacer(kernel, options.rollout, automatic, todo.size());
        RolloutRun run{options.rollout, pacer.concurrency(options.concurrency), options.fail_fast, options.progress, "migrate"};
        run_rollout(
            tenants, todo, run, before, report.rollout,
            [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
                auto r = result_of(i, TenantOutcome::up_to_date);
                TenantRunner(kernel, folder, target, options, rebase, limit, first_no_transaction[i],
                             pacer.between(tenants.server(i)))
                    .run(conn, r);
                const bool ok = r.outcome != TenantOutcome::failed;
                finished(i, std::move(r), true);
                return ok;
            },
            [&](size_t i) { finished(i, result_of(i, TenantOutcome::skipped), false); }, pacer.pacing(tenants));
        pacer.finish(report.rollout, fixed);
    } else {
        for (size_t i : todo) finished(i, result_of(i, TenantOutcome::skipped), false);
    }
    report.duration_ms = ms_since(start);
    return report;
}

TenantMigrateResult create_tenant(const Kernel& kernel, const Tenant& tenant, const MigrationFolder& folder,
                                  bool migrate_after) {
    const auto start = Clock::now();
    const TrackingTarget target = TrackingTarget::tenants(kernel.manifest());
    const RebasePlan rebase = rebase_plan(folder, kernel.manifest().migrations);
    TenantMigrateResult result;
    result.tenant = tenant;
    auto conn = kernel.connect(tenant.server);
    const bool atomic = !std::any_of(folder.migrations.begin(), folder.migrations.end(),
                                     [](const Migration& m) { return m.no_transaction; });
    auto create_schema = [&](pqxx::transaction_base& tx) {
        begin_tenant_transaction(tx, kernel, tenant, kernel.manifest().migrations.lock_timeout);
        if (read_tables(tx, {tenant.schema}, target.table).at(0).schema_exists)
            throw OperationError("tenant " + tenant.id + " already exists (schema " + quote_ident(tenant.schema) +
                                 "); drop it first with mtctl tenant drop --id " + tenant.id + " --force");
        tx.exec(with_idents("CREATE SCHEMA {schema}", {{"schema", tenant.schema}}));
    };
    if (atomic || !migrate_after) {
        // Schema, tracking table and every migration in one transaction: a failure or a crash
        // leaves no schema behind.
        pqxx::work tx(*conn);
        create_schema(tx);
        const TrackingFormat& format = creation_format(kernel, target);
        result.format = format.label();
        SqlSession sql(tx);
        format.create(sql, TrackingTable{tenant.schema, target.table, {}});
        if (migrate_after && !folder.migrations.empty()) {
            const auto columns = read_tables(tx, {tenant.schema}, target.table).at(0).columns;
            std::vector<sdk::Record> records;
            for (const auto& m : folder.migrations) {
                try {
                    if (!m.statements.empty()) tx.exec(joined_statements(m, rebase, tenant.schema));
                } catch (const pqxx::sql_error& e) {
                    std::string error = e.what();
                    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
                    throw MigrationFailure(m.name, m.file.filename().string() + ": " + error + " (tenant " +
                                                       tenant.id + " not created)", e.sqlstate());
                }
                records.push_back(record_for(m));
                result.applied.push_back(m.name);
            }
            format.record(sql, TrackingTable{tenant.schema, target.table, columns}, records);
        }
        tx.commit();
        result.outcome = result.applied.empty() ? TenantOutcome::up_to_date : TenantOutcome::migrated;
    } else {
        {
            pqxx::work tx(*conn);
            create_schema(tx);
            tx.commit();
        }
        MigrateOptions options;
        options.concurrency = 1;
        options.lock_timeout = kernel.manifest().migrations.lock_timeout;
        auto report = migrate(kernel, {tenant}, folder, target, options);
        result = report.tenants.at(0);
        if (result.outcome == TenantOutcome::failed) {
            pqxx::work tx(*conn);
            tx.exec(with_idents("DROP SCHEMA IF EXISTS {schema} CASCADE", {{"schema", tenant.schema}}));
            tx.commit();
            throw MigrationFailure(result.failed_migration, result.error + " (tenant " + tenant.id + " not created)", result.sqlstate);
        }
    }
    result.duration_ms = ms_since(start);
    return result;
}

void drop_tenant(const Kernel& kernel, const Tenant& tenant) {
    auto conn = kernel.connect(tenant.server);
    pqxx::work tx(*conn);
    begin_tenant_transaction(tx, kernel, tenant, kernel.manifest().migrations.lock_timeout);
    if (!read_tables(tx, {tenant.schema}, kernel.manifest().migrations.table).at(0).schema_exists)
        throw OperationError("tenant " + tenant.id + " has no schema " + quote_ident(tenant.schema) + "; nothing dropped");
    tx.exec(with_idents("DROP SCHEMA {schema} CASCADE", {{"schema", tenant.schema}}));
    tx.commit();
}

}  // namespace mt
