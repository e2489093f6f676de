// The run ledger (mt/fleet/runs.hpp). The ledger lives in the shared schema on database.url; the
// process running a run holds a session advisory lock keyed on its id for as long as it runs, so
// that a run whose process died (kill -9) shows as interrupted and can be resumed, while one that
// still runs cannot be resumed twice. A ledger that cannot be written (no shared schema, no
// privilege, a lost connection) is logged and the migration goes on without it.
#include <mt/fleet/runs.hpp>

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/fleet/commands.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/tracking/status.hpp>

#include "fleet/translated.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>

namespace mt {

namespace {

// First key of the two-key advisory lock a running run holds (the second is its id): "mtru".
constexpr const char* kRunLockClass = "1836348021";

std::string idents(const std::string& sql, const Kernel& kernel) {
    return with_idents(sql, {{"shared", kernel.manifest().isolation.shared_schema}});
}

// The sentence that says why a run stopped starting tenants (issue 14: the throttle's timeout among
// them); added to a ledger an earlier mtctl created.
void add_stop_reason(pqxx::transaction_base& tx, const Kernel& kernel) {
    tx.exec(idents("ALTER TABLE {shared}.mt_runs ADD COLUMN IF NOT EXISTS stop_reason text", kernel));
}

// The tables, created under a transaction lock so that two first runs do not race on CREATE.
// mt_run_tenants has no foreign key to mt_runs: its per-row check would cost seconds when a run of
// 100,000 tenants starts.
void ensure_tables(pqxx::transaction_base& tx, const Kernel& kernel) {
    exec_params(tx, "SELECT pg_advisory_xact_lock($1::int, 0)", {kRunLockClass});
    tx.exec(idents("CREATE TABLE IF NOT EXISTS {shared}.mt_runs ("
                   " id bigserial PRIMARY KEY, command text NOT NULL, folder_fingerprint text NOT NULL,"
                   " started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, host text NOT NULL,"
                   " options text NOT NULL, outcome text NOT NULL DEFAULT 'running', resumed int NOT NULL DEFAULT 0)",
                   kernel));
    tx.exec(idents("CREATE TABLE IF NOT EXISTS {shared}.mt_run_tenants ("
                   " run_id bigint NOT NULL,"
                   " position int NOT NULL, tenant text NOT NULL, outcome text NOT NULL DEFAULT 'pending',"
                   " started_at timestamptz, finished_at timestamptz, error text, PRIMARY KEY (run_id, tenant))",
                   kernel));
    add_stop_reason(tx, kernel);
}

bool ledger_exists(pqxx::transaction_base& tx, const Kernel& kernel) {
    const auto r = exec_params(tx, "SELECT to_regclass(format('%I.mt_run_tenants', $1::text)) IS NOT NULL",
                               {kernel.manifest().isolation.shared_schema});
    return r[0][0].as<bool>();
}

std::string fingerprint(const MigrationFolder& folder) {
    std::string text;
    for (const auto& m : folder.migrations) text += m.name + '\0' + m.hash + '\n';
    return sha256_hex(text);
}

std::string hostname() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "?";
    return name;
}

// Tenants per statement when a run's rows are written: what the ledger holds as text at once,
// whatever the run's size.
constexpr size_t kLedgerChunk = 20000;

// The ids of tenants [begin, end), one a line (tenant ids hold no control characters).
std::string joined(const TenantList& tenants, size_t begin, size_t end) {
    std::string text;
    for (size_t i = begin; i < end; ++i) text.append(i == begin ? "" : "\n").append(tenants.id(i));
    return text;
}

std::string run_options_json(const command::MigrateRequest& request, const MigrateOptions& options) {
    nlohmann::json j;
    j["all"] = request.scope.selection.all;
    j["tenants"] = request.scope.selection.ids;
    j["concurrency"] = options.concurrency;
    j["mark_applied"] = options.mark_applied;
    j["to"] = options.to ? nlohmann::json(*options.to) : nlohmann::json(nullptr);
    j["fail_fast"] = options.fail_fast;
    const auto& ro = options.rollout;
    if (ro.canary_count) j["canary"] = *ro.canary_count;
    else if (!ro.canary_ids.empty()) j["canary"] = ro.canary_ids;
    if (!ro.waves.empty()) {
        std::string waves;
        for (const auto& w : ro.waves) waves += (waves.empty() ? "" : ",") + w.text();
        j["waves"] = waves;
    }
    if (ro.seed) j["seed"] = *ro.seed;
    if (ro.max_failures) j["max_failures"] = ro.max_failures->text();
    const auto& th = ro.throttle;
    if (th.concurrency_auto.value_or(false)) j["concurrency"] = "auto";
    if (th.max_replica_lag) j["max_replica_lag_ms"] = th.max_replica_lag->count();
    if (th.max_active_backends) j["max_active_backends"] = *th.max_active_backends;
    if (th.max_lock_waits) j["max_lock_waits"] = *th.max_lock_waits;
    if (th.timeout) j["throttle_timeout_ms"] = th.timeout->count();
    return j.dump();
}

const char* kRunColumns =
    "r.id, r.command, r.folder_fingerprint, to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), r.host, r.options,"
    " CASE WHEN r.finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
    "   AND l.granted AND l.classid = $1::int::oid AND l.objid = r.id::int::oid AND l.objsubid = 2"
    "   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    "  THEN 'interrupted' ELSE r.outcome END, r.resumed,"
    " (SELECT count(*) FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id),"
    " (SELECT count(*) FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id AND t.outcome NOT IN ('pending', 'skipped')),"
    " (SELECT count(*) FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id AND t.outcome = 'failed'),"
    " (SELECT count(*) FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id AND t.outcome IN ('pending', 'skipped'))";

RunRecord run_record(const pqxx::row& row) {
    RunRecord r;
    r.id = row[0].as<int64_t>();
    r.command = row[1].as<std::string>();
    r.folder_fingerprint = row[2].as<std::string>();
    r.started_at = row[3].as<std::string>();
    if (!row[4].is_null()) r.finished_at = row[4].as<std::string>();
    r.host = row[5].as<std::string>();
    r.options = row[6].as<std::string>();
    r.outcome = row[7].as<std::string>();
    r.resumed = row[8].as<int>();
    r.tenants = row[9].as<size_t>();
    r.finished = row[10].as<size_t>();
    r.failed = row[11].as<size_t>();
    r.remaining = row[12].as<size_t>();
    return r;
}

std::optional<RunRecord> find_run(pqxx::transaction_base& tx, const Kernel& kernel, int64_t id) {
    const auto r = exec_params(tx, idents(std::string("SELECT ") + kRunColumns + " FROM {shared}.mt_runs r WHERE r.id = $2", kernel),
                               {kRunLockClass, std::to_string(id)});
    if (r.empty()) return std::nullopt;
    return run_record(r[0]);
}

// The ledger of one run, kept on its own connection (which also holds the run's lock).
class Ledger {
public:
    explicit Ledger(const Kernel& kernel) : kernel_(kernel), conn_(kernel.connect()) {}

    int64_t start(const std::string& fingerprint, const std::string& options, const TenantList& tenants) {
        tenants_ = &tenants;
        pqxx::work tx(*conn_);
        ensure_tables(tx, kernel_);
        id_ = exec_params(tx, idents("INSERT INTO {shared}.mt_runs (command, folder_fingerprint, host, options)"
                                     " VALUES ('migrate', $1, $2, $3) RETURNING id", kernel_),
                          {fingerprint, hostname(), options})[0][0].as<int64_t>();
        for (size_t begin = 0; begin < tenants.size(); begin += kLedgerChunk)
            exec_params(tx, idents("INSERT INTO {shared}.mt_run_tenants (run_id, position, tenant)"
                                   " SELECT $1, $3::int + u.n, u.tenant"
                                   " FROM unnest(string_to_array($2, E'\\n')) WITH ORDINALITY AS u (tenant, n)",
                                   kernel_),
                        {std::to_string(id_), joined(tenants, begin, std::min(tenants.size(), begin + kLedgerChunk)),
                         std::to_string(begin)});
        tx.commit();
        lock();
        return id_;
    }

    // Takes over run id (already checked): its lock, and its remaining rows back to pending; tenants
    // are the ones it migrates now, in the order their results come.
    bool resume(int64_t id, const TenantList& tenants) {
        id_ = id;
        tenants_ = &tenants;
        pqxx::nontransaction probe(*conn_);
        if (!exec_params(probe, "SELECT pg_try_advisory_lock($1::int, $2::int)", {kRunLockClass, std::to_string(id)})[0][0].as<bool>())
            return false;
        probe.commit();
        pqxx::work tx(*conn_);
        add_stop_reason(tx, kernel_);
        exec_params(tx, idents("UPDATE {shared}.mt_runs SET outcome = 'running', finished_at = NULL, stop_reason = NULL,"
                               " resumed = resumed + 1 WHERE id = $1", kernel_), {std::to_string(id)});
        exec_params(tx, idents("UPDATE {shared}.mt_run_tenants SET outcome = 'pending', error = NULL"
                               " WHERE run_id = $1 AND outcome = 'skipped'", kernel_), {std::to_string(id)});
        tx.commit();
        return true;
    }

    // The ledger's backend: the throttle does not count it among the database's other backends.
    int backend_pid() const { return conn_ ? conn_->backendpid() : 0; }

    void tenant_finished(const TenantMigrateResult& r) {
        if (!conn_) return;
        try {
            pqxx::work tx(*conn_);
            exec_params(tx, idents("UPDATE {shared}.mt_run_tenants SET outcome = $3, error = $4, finished_at = now(),"
                                   " started_at = now() - $5::float8 * interval '1 millisecond'"
                                   " WHERE run_id = $1 AND tenant = $2", kernel_),
                        {std::to_string(id_), r.tenant.id, to_string(r.outcome),
                         r.error.empty() ? std::nullopt : std::optional<std::string>(r.error), std::to_string(r.duration_ms)});
            tx.commit();
        } catch (const std::exception& e) {
            give_up(e);
        }
    }

    // A run's result, kept for finish as one byte: results come in the order of the run's tenants.
    void result(const TenantMigrateResult& r) {
        if (!conn_) return;
        outcomes_.push_back(static_cast<uint8_t>(r.outcome));
    }

    // The outcomes of the tenants that never started (up to date, held back, failed their checks)
    // and the run's own.
    void finish(const MigrateReport& report) {
        if (!conn_) return;
        try {
            for (const auto& t : report.tenants) result(t);
            // A resumed run failed when any of its tenants failed, in this part of it or an earlier one.
            const std::string stop = report.rollout.stop != RolloutStop::none ? to_string(report.rollout.stop) : "";
            pqxx::work tx(*conn_);
            // The rows were inserted by this run, after the table's last ANALYZE: the planner would
            // take them for a few and join by nested loop, quadratic at 100,000 tenants.
            tx.exec("SET LOCAL enable_nestloop = off");
            const size_t n = std::min(outcomes_.size(), tenants_ ? tenants_->size() : 0);
            for (size_t begin = 0; begin < n; begin += kLedgerChunk) {
                const size_t end = std::min(n, begin + kLedgerChunk);
                std::string outcomes;
                for (size_t i = begin; i < end; ++i)
                    outcomes.append(i == begin ? "" : "\n").append(to_string(static_cast<TenantOutcome>(outcomes_[i])));
                exec_params(tx, idents("UPDATE {shared}.mt_run_tenants t SET outcome = u.outcome, finished_at = now()"
                                       " FROM unnest(string_to_array($2, E'\\n'), string_to_array($3, E'\\n')) AS u (tenant, outcome)"
                                       " WHERE t.run_id = $1 AND t.tenant = u.tenant AND t.outcome = 'pending'", kernel_),
                            {std::to_string(id_), joined(*tenants_, begin, end), outcomes});
            }
            exec_params(tx, idents("UPDATE {shared}.mt_run_tenants SET finished_at = NULL WHERE run_id = $1 AND outcome = 'skipped'", kernel_),
                        {std::to_string(id_)});
            exec_params(tx, idents("UPDATE {shared}.mt_runs SET finished_at = now(), outcome = CASE WHEN $2 <> '' THEN $2"
                                   " WHEN EXISTS (SELECT 1 FROM {shared}.mt_run_tenants WHERE run_id = $1 AND outcome = 'failed')"
                                   " THEN 'failed' ELSE 'succeeded' END, stop_reason = nullif($3, '') WHERE id = $1", kernel_),
                        {std::to_string(id_), stop, report.rollout.reason});
            tx.commit();
            pqxx::nontransaction unlock(*conn_);
            exec_params(unlock, "SELECT pg_advisory_unlock($1::int, $2::int)", {kRunLockClass, std::to_string(id_)});
        } catch (const std::exception& e) {
            give_up(e);
        }
    }

private:
    void lock() {
        pqxx::nontransaction tx(*conn_);
        exec_params(tx, "SELECT pg_advisory_lock($1::int, $2::int)", {kRunLockClass, std::to_string(id_)});
    }

    void give_up(const std::exception& e) {
        spdlog::warn("run {}: could not write the run ledger ({}); the migration goes on unrecorded", id_, e.what());
        conn_.reset();
    }

    const Kernel& kernel_;
    std::unique_ptr<pqxx::connection> conn_;
    int64_t id_ = 0;
    const TenantList* tenants_ = nullptr;  // the run's tenants (the caller's list, alive until finish)
    std::vector<uint8_t> outcomes_;        // per tenant, in their order: its TenantOutcome
};

// The run --resume continues: the one named, else the newest migrate run with unfinished tenants.
RunRecord run_to_resume(const Kernel& kernel, pqxx::transaction_base& tx, const std::optional<int64_t>& id) {
    if (!ledger_exists(tx, kernel))
        throw UsageError("--resume: no run was ever recorded (" + kernel.manifest().isolation.shared_schema +
                         ".mt_runs does not exist); start one with: mtctl migrate --all");
    std::optional<RunRecord> run;
    if (id) {
        run = find_run(tx, kernel, *id);
        if (!run) throw UsageError("--resume " + std::to_string(*id) + ": no such run; list them with: mtctl runs");
    } else {
        const auto r = exec_params(tx, idents("SELECT r.id FROM {shared}.mt_runs r WHERE r.command = 'migrate' AND EXISTS"
                                              " (SELECT 1 FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id"
                                              "  AND t.outcome IN ('pending', 'skipped')) ORDER BY r.id DESC LIMIT 1", kernel),
                                   {});
        if (r.empty()) throw UsageError("--resume: no unfinished run to resume; list runs with: mtctl runs");
        run = find_run(tx, kernel, r[0][0].as<int64_t>());
    }
    if (run->remaining == 0)
        throw UsageError("--resume " + std::to_string(run->id) + ": run " + std::to_string(run->id) +
                         " has no unfinished tenants (outcome " + run->outcome + "); nothing to resume");
    if (run->outcome == "running")
        throw UsageError("--resume " + std::to_string(run->id) + ": run " + std::to_string(run->id) + " is still running (host " +
                         run->host + ", started " + run->started_at + "); wait for it to finish or stop it first");
    return *run;
}

}  // namespace

namespace {

// A streamed run's results reach the ledger on their way to the caller's on_result.
void stream_to_ledger(MigrateOptions& options, std::optional<Ledger>& ledger) {
    if (!options.on_result) return;
    options.on_result = [&ledger, next = options.on_result](const TenantMigrateResult& r) {
        if (ledger) ledger->result(r);
        next(r);
    };
}

}  // namespace

MigrateReport migrate_recorded(const Kernel& kernel, const command::MigrateRequest& request, MigrateOptions options) {
    const auto& m = kernel.manifest();
    const MigrationFolder folder = read_migration_folder(m.migrations.tenant_dir);
    const TrackingTarget target = TrackingTarget::tenants(m);
    const std::string print = fingerprint(folder);
    TenantList tenants;
    std::optional<Ledger> ledger;
    if (request.resume) {
        auto conn = kernel.connect();
        RunRecord run;
        std::vector<std::string> ids;
        {
            pqxx::work tx(*conn);
            run = run_to_resume(kernel, tx, request.resume_run);
            if (run.folder_fingerprint != print)
                throw UsageError("--resume " + std::to_string(run.id) + ": the migration folder " + m.migrations.tenant_dir.string() +
                                 " changed since run " + std::to_string(run.id) + " started (fingerprint " +
                                 run.folder_fingerprint.substr(0, 12) + " then, " + print.substr(0, 12) +
                                 " now); a run resumes only with the migrations it started with: start a new run with "
                                 "mtctl migrate (--all | --tenants …)");
            for (const auto& row : exec_params(tx, idents("SELECT tenant FROM {shared}.mt_run_tenants WHERE run_id = $1"
                                                          " AND outcome IN ('pending', 'skipped') ORDER BY position", kernel),
                                               {std::to_string(run.id)}))
                ids.push_back(row[0].as<std::string>());
        }
        // The run's own --to, --mark-applied, --concurrency and budget, unless given again.
        const auto stored = nlohmann::json::parse(run.options, nullptr, false);
        if (stored.is_object()) {
            if (!options.to && stored.contains("to") && stored["to"].is_string()) options.to = stored["to"].get<std::string>();
            if (stored.value("mark_applied", false)) options.mark_applied = true;
            if (!request.concurrency && stored.contains("concurrency") && stored["concurrency"].is_number_integer())
                options.concurrency = std::max(1, stored["concurrency"].get<int>());
            if (!options.rollout.max_failures && stored.contains("max_failures") && stored["max_failures"].is_string())
                options.rollout.max_failures = parse_quota(stored["max_failures"].get<std::string>(), "--max-failures");
            // The throttle's limits too (the manifest's [rollout] keys apply as in any run).
            auto& th = options.rollout.throttle;
            if (!request.concurrency && !th.concurrency_auto && stored.contains("concurrency") &&
                stored["concurrency"].is_string() && stored["concurrency"].get<std::string>() == "auto")
                th.concurrency_auto = true;
            const auto ms = [&](const char* key, std::optional<std::chrono::milliseconds>& into) {
                if (!into && stored.contains(key) && stored[key].is_number_integer())
                    into = std::chrono::milliseconds(stored[key].get<int64_t>());
            };
            const auto count = [&](const char* key, std::optional<int>& into) {
                if (!into && stored.contains(key) && stored[key].is_number_integer()) into = stored[key].get<int>();
            };
            ms("max_replica_lag_ms", th.max_replica_lag);
            ms("throttle_timeout_ms", th.timeout);
            count("max_active_backends", th.max_active_backends);
            count("max_lock_waits", th.max_lock_waits);
        }
        tenants = kernel.select(TenantSelection{false, ids});
        check_canary_ids(tenants, options.rollout);
        ledger.emplace(kernel);
        if (!ledger->resume(run.id, tenants))
            throw UsageError("--resume " + std::to_string(run.id) + ": run " + std::to_string(run.id) +
                             " was taken over by another mtctl just now; wait for it to finish");
        MigrateReport report;
        options.tenant_finished = [&](const TenantMigrateResult& r) { ledger->tenant_finished(r); };
        options.rollout.throttle.own_backends.push_back(ledger->backend_pid());
        stream_to_ledger(options, ledger);
        report = mt::migrate(kernel, tenants, folder, target, options);
        report.run_id = run.id;
        ledger->finish(report);
        return report;
    }
    tenants = kernel.select(request.scope.selection);
    check_canary_ids(tenants, options.rollout);
    int64_t id = 0;
    try {
        ledger.emplace(kernel);
        id = ledger->start(print, run_options_json(request, options), tenants);
        options.tenant_finished = [&](const TenantMigrateResult& r) { ledger->tenant_finished(r); };
        options.rollout.throttle.own_backends.push_back(ledger->backend_pid());
        stream_to_ledger(options, ledger);
    } catch (const DatabaseUnavailable&) {
        throw;
    } catch (const pqxx::broken_connection&) {
        throw;
    } catch (const std::exception& e) {
        spdlog::warn("could not start the run ledger in schema {} ({}); this run is not recorded and cannot be resumed",
                     m.isolation.shared_schema, e.what());
        ledger.reset();
    }
    MigrateReport report = mt::migrate(kernel, tenants, folder, target, options);
    if (ledger) {
        report.run_id = id;
        ledger->finish(report);
    }
    return report;
}

namespace command {

std::vector<RunRecord> runs(const ManifestInput& input, size_t limit) {
    return translated([&] {
        const Kernel kernel(input);
        auto conn = kernel.connect();
        pqxx::read_transaction tx(*conn);
        std::vector<RunRecord> list;
        if (!ledger_exists(tx, kernel)) return list;
        for (const auto& row : exec_params(tx, idents(std::string("SELECT ") + kRunColumns +
                                                          " FROM {shared}.mt_runs r ORDER BY r.id DESC LIMIT $2", kernel),
                                           {kRunLockClass, std::to_string(limit)}))
            list.push_back(run_record(row));
        return list;
    });
}

RunDetail run_show(const ManifestInput& input, int64_t id) {
    return translated([&] {
        const Kernel kernel(input);
        auto conn = kernel.connect();
        pqxx::read_transaction tx(*conn);
        std::optional<RunRecord> run;
        if (ledger_exists(tx, kernel)) run = find_run(tx, kernel, id);
        if (!run) throw UsageError("runs show " + std::to_string(id) + ": no such run; list them with: mtctl runs");
        RunDetail detail{*run, {}};
        for (const auto& row : exec_params(
                 tx, idents("SELECT tenant, outcome,"
                            " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
                            " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), coalesce(error, '')"
                            " FROM {shared}.mt_run_tenants WHERE run_id = $1 ORDER BY position", kernel),
                 {std::to_string(id)})) {
            RunTenant t;
            t.tenant = row[0].as<std::string>();
            t.outcome = row[1].as<std::string>();
            if (!row[2].is_null()) t.started_at = row[2].as<std::string>();
            if (!row[3].is_null()) t.finished_at = row[3].as<std::string>();
            t.error = row[4].as<std::string>();
            detail.tenants.push_back(std::move(t));
        }
        return detail;
    });
}

}  // namespace command
}  // namespace mt
