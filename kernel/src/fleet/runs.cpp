// The run ledger (mt/fleet/runs.hpp), shared by migrate, seed, convert-format and sync's repairs:
// each command says what its run depends on (a fingerprint) and what its tenants' outcomes are
// called; starting, resuming and finishing a run is the same for all. The ledger lives in the shared schema on database.url; the
// process running a run holds a session advisory lock keyed on its id for as long as it runs, so
// that a run whose process died (kill -9) shows as interrupted and can be resumed, while one that
// still runs cannot be resumed twice. A ledger that cannot be written (no shared schema, no
// privilege, a lost connection) is logged and the migration goes on without it.
#include <mt/fleet/runs.hpp>

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/fleet/commands.hpp>
#include <mt/fleet/seed.hpp>
#include <mt/fleet/sync.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/tracking/status.hpp>

#include "fleet/translated.hpp"
#include "tracking/tables.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <mutex>

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
    " (SELECT count(*) FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id AND t.outcome IN ('pending', 'skipped')),"
    // A ledger created before stop_reason existed has no such column: read through to_jsonb.
    " to_jsonb(r)->>'stop_reason'";

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
    if (!row[13].is_null()) r.stop_reason = row[13].as<std::string>();
    return r;
}

std::optional<RunRecord> find_run(pqxx::transaction_base& tx, const Kernel& kernel, int64_t id) {
    const auto r = exec_params(tx, idents(std::string("SELECT ") + kRunColumns + " FROM {shared}.mt_runs r WHERE r.id = $2", kernel),
                               {kRunLockClass, std::to_string(id)});
    if (r.empty()) return std::nullopt;
    return run_record(r[0]);
}

// The ledger of one run, kept on its own connection (which also holds the run's lock). Its
// callers serialise the calls.
class Ledger {
public:
    explicit Ledger(const Kernel& kernel) : kernel_(kernel), conn_(kernel.connect()) {}

    int64_t start(const std::string& command, const std::string& fingerprint, const std::string& options,
                  const TenantList& tenants) {
        pqxx::work tx(*conn_);
        ensure_tables(tx, kernel_);
        id_ = exec_params(tx, idents("INSERT INTO {shared}.mt_runs (command, folder_fingerprint, host, options)"
                                     " VALUES ($1, $2, $3, $4) RETURNING id", kernel_),
                          {command, fingerprint, hostname(), options})[0][0].as<int64_t>();
        // One buffer of ids per statement, not a string per tenant, and kResultsPerWrite tenants a
        // statement, so that the buffers stay small at 100,000 tenants (peak RSS, docs/benchmarks.md).
        for (size_t begin = 0; begin < tenants.size(); begin += kResultsPerWrite) {
            std::string ids;
            for (size_t i = begin; i < std::min(tenants.size(), begin + kResultsPerWrite); ++i) {
                if (i > begin) ids += '\n';
                ids += tenants.id(i);
            }
            exec_params(tx, idents("INSERT INTO {shared}.mt_run_tenants (run_id, position, tenant)"
                                   " SELECT $1, $3::bigint + u.n, u.tenant"
                                   " FROM unnest(string_to_array($2, E'\\n')) WITH ORDINALITY AS u (tenant, n)",
                                   kernel_),
                        {std::to_string(id_), ids, std::to_string(begin)});
        }
        tx.commit();
        lock();
        return id_;
    }

    // Takes over run id (already checked): its lock, and its remaining rows back to pending.
    bool resume(int64_t id) {
        id_ = id;
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

    int64_t id() const { return id_; }

    // The ledger's backend: the throttle does not count it among the database's other backends.
    int backend_pid() const { return conn_ ? conn_->backendpid() : 0; }

    // A tenant the run started, as soon as it finished.
    void tenant_finished(const std::string& tenant, const std::string& outcome, const std::string& error,
                         double duration_ms) {
        std::lock_guard lock(*mutex_);
        if (!conn_) return;
        try {
            pqxx::work tx(*conn_);
            exec_params(tx, idents("UPDATE {shared}.mt_run_tenants SET outcome = $3, error = $4, finished_at = now(),"
                                   " started_at = now() - $5::float8 * interval '1 millisecond'"
                                   " WHERE run_id = $1 AND tenant = $2", kernel_),
                        {std::to_string(id_), tenant, outcome,
                         error.empty() ? std::nullopt : std::optional<std::string>(error), std::to_string(duration_ms)});
            tx.commit();
        } catch (const std::exception& e) {
            give_up(e);
        }
    }

    // Any tenant's final outcome, written where the row is still pending (the tenant never started),
    // kResultsPerWrite tenants a statement: kept until then as two lines of text (about 20 bytes a
    // tenant).
    void result(const std::string& tenant, const std::string& outcome) {
        std::lock_guard lock(*mutex_);
        if (!conn_) return;
        ids_ += (ids_.empty() ? "" : "\n") + tenant;
        outcomes_ += (outcomes_.empty() ? "" : "\n") + outcome;
        if (++kept_ >= kResultsPerWrite) write_results();
    }

    // The outcomes of the tenants that never started (up to date, held back, failed their checks)
    // and the run's own.
    void finish(const RolloutSummary& rollout) {
        std::lock_guard lock(*mutex_);
        write_results();
        if (!conn_) return;
        try {
            // A resumed run failed when any of its tenants failed, in this part of it or an earlier one.
            const std::string stop = rollout.stop != RolloutStop::none ? to_string(rollout.stop) : "";
            pqxx::work tx(*conn_);
            exec_params(tx, idents("UPDATE {shared}.mt_run_tenants SET finished_at = NULL WHERE run_id = $1 AND outcome = 'skipped'", kernel_),
                        {std::to_string(id_)});
            exec_params(tx, idents("UPDATE {shared}.mt_runs SET finished_at = now(), outcome = CASE WHEN $2 <> '' THEN $2"
                                   " WHEN EXISTS (SELECT 1 FROM {shared}.mt_run_tenants WHERE run_id = $1 AND outcome = 'failed')"
                                   " THEN 'failed' ELSE 'succeeded' END, stop_reason = nullif($3, '') WHERE id = $1", kernel_),
                        {std::to_string(id_), stop, rollout.reason});
            tx.commit();
            pqxx::nontransaction unlock(*conn_);
            exec_params(unlock, "SELECT pg_advisory_unlock($1::int, $2::int)", {kRunLockClass, std::to_string(id_)});
        } catch (const std::exception& e) {
            give_up(e);
        }
    }

private:
    // Tenants per statement that lists them (the run's tenants, results): a few hundred kB of text.
    static constexpr size_t kResultsPerWrite = 20000;

    // Writes the kept results (mutex_ held).
    void write_results() {
        if (!conn_ || kept_ == 0) return;
        try {
            pqxx::work tx(*conn_);
            // The rows were inserted by this run, after the table's last ANALYZE: the planner would
            // take them for a few and join by nested loop, quadratic at 100,000 tenants.
            tx.exec("SET LOCAL enable_nestloop = off");
            exec_params(tx, idents("UPDATE {shared}.mt_run_tenants t SET outcome = u.outcome, finished_at = now()"
                                   " FROM unnest(string_to_array($2, E'\\n'), string_to_array($3, E'\\n')) AS u (tenant, outcome)"
                                   " WHERE t.run_id = $1 AND t.tenant = u.tenant AND t.outcome = 'pending'", kernel_),
                        {std::to_string(id_), ids_, outcomes_});
            tx.commit();
        } catch (const std::exception& e) {
            give_up(e);
        }
        ids_.clear();
        outcomes_.clear();
        kept_ = 0;
    }

    void lock() {
        pqxx::nontransaction tx(*conn_);
        exec_params(tx, "SELECT pg_advisory_lock($1::int, $2::int)", {kRunLockClass, std::to_string(id_)});
    }

    void give_up(const std::exception& e) {
        spdlog::warn("run {}: could not write the run ledger ({}); the run goes on unrecorded", id_, e.what());
        conn_.reset();
    }

    const Kernel& kernel_;
    std::unique_ptr<pqxx::connection> conn_;
    int64_t id_ = 0;
    // Guards the connection: workers report finished tenants while results stream in (a pointer: the
    // ledger is moved).
    std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
    std::string ids_, outcomes_;  // results not yet written: tenant ids and outcomes, one a line
    size_t kept_ = 0;
};

// The run --resume continues: the one named, else the newest run of `command` with unfinished
// tenants. start_hint: how to start a run of the command, for the message when none was recorded.
RunRecord run_to_resume(const Kernel& kernel, pqxx::transaction_base& tx, const std::optional<int64_t>& id,
                        const std::string& command, const std::string& start_hint) {
    if (!ledger_exists(tx, kernel))
        throw UsageError("--resume: no run was ever recorded (" + kernel.manifest().isolation.shared_schema +
                         ".mt_runs does not exist); start one with: " + start_hint);
    std::optional<RunRecord> run;
    if (id) {
        run = find_run(tx, kernel, *id);
        if (!run) throw UsageError("--resume " + std::to_string(*id) + ": no such run; list them with: mtctl runs");
        if (run->command != command)
            throw UsageError("--resume " + std::to_string(*id) + ": run " + std::to_string(*id) + " is a " + run->command +
                             " run, not a " + command + " run; continue it with: mtctl " + run->command + " --resume " +
                             std::to_string(*id));
    } else {
        const auto r = exec_params(tx, idents("SELECT r.id FROM {shared}.mt_runs r WHERE r.command = $1 AND EXISTS"
                                              " (SELECT 1 FROM {shared}.mt_run_tenants t WHERE t.run_id = r.id"
                                              "  AND t.outcome IN ('pending', 'skipped')) ORDER BY r.id DESC LIMIT 1", kernel),
                                   {command});
        if (r.empty())
            throw UsageError("--resume: no unfinished " + (command == "migrate" ? std::string() : command + " ") +
                             "run to resume; list runs with: mtctl runs");
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

// What a command tells the ledger about its run.
struct RunSpec {
    std::string command;      // mt_runs.command
    std::string start_hint;   // "mtctl migrate --all"
    std::string fingerprint;  // what a resume must find unchanged (migrate: the folder's)
    std::string options;      // the flags, JSON
    bool resume = false;
    std::optional<int64_t> resume_run;
    std::function<TenantList()> select;  // a new run's tenants
    // Refuses (UsageError) a resume whose inputs changed since the run started; stored: its options.
    std::function<void(const RunRecord&, const nlohmann::json& stored)> check_resume;
    // Checks the tenants before anything is written (e.g. --canary ids).
    std::function<void(const TenantList&)> validate;
};

struct RunStart {
    TenantList tenants;
    std::optional<Ledger> ledger;  // empty when the ledger cannot be written: the run goes on unrecorded
    nlohmann::json stored;         // a resumed run's options (an object); null for a new run
};

// Starts a run in the ledger, or takes over the run to resume (refused, exit 2 and nothing
// changed, when it is unknown, another command's, finished, still running or its inputs changed).
RunStart begin_run(const Kernel& kernel, const RunSpec& spec) {
    RunStart out;
    if (spec.resume) {
        auto conn = kernel.connect();
        RunRecord run;
        std::vector<std::string> ids;
        {
            pqxx::work tx(*conn);
            run = run_to_resume(kernel, tx, spec.resume_run, spec.command, spec.start_hint);
            out.stored = nlohmann::json::parse(run.options, nullptr, false);
            if (!out.stored.is_object()) out.stored = nlohmann::json::object();
            if (spec.check_resume) spec.check_resume(run, out.stored);
            for (const auto& row : exec_params(tx, idents("SELECT tenant FROM {shared}.mt_run_tenants WHERE run_id = $1"
                                                          " AND outcome IN ('pending', 'skipped') ORDER BY position", kernel),
                                               {std::to_string(run.id)}))
                ids.push_back(row[0].as<std::string>());
        }
        out.tenants = kernel.select(TenantSelection{false, ids});
        if (spec.validate) spec.validate(out.tenants);
        out.ledger.emplace(kernel);
        if (!out.ledger->resume(run.id))
            throw UsageError("--resume " + std::to_string(run.id) + ": run " + std::to_string(run.id) +
                             " was taken over by another mtctl just now; wait for it to finish");
        return out;
    }
    out.tenants = spec.select();
    if (spec.validate) spec.validate(out.tenants);
    try {
        out.ledger.emplace(kernel);
        out.ledger->start(spec.command, spec.fingerprint, spec.options, out.tenants);
    } catch (const DatabaseUnavailable&) {
        throw;
    } catch (const pqxx::broken_connection&) {
        throw;
    } catch (const std::exception& e) {
        spdlog::warn("could not start the run ledger in schema {} ({}); this run is not recorded and cannot be resumed",
                     kernel.manifest().isolation.shared_schema, e.what());
        out.ledger.reset();
    }
    return out;
}

// The options every command with rollout controls stores, and takes back on resume.
void rollout_options_json(const RolloutOptions& ro, nlohmann::json& j) {
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
}

// A resumed run keeps its own --concurrency, budget and throttle limits unless given again
// (concurrency_given: --concurrency was).
void adopt_rollout_options(const nlohmann::json& stored, bool concurrency_given, int& concurrency, RolloutOptions& ro) {
    if (!concurrency_given && stored.contains("concurrency") && stored["concurrency"].is_number_integer())
        concurrency = std::max(1, stored["concurrency"].get<int>());
    if (!ro.max_failures && stored.contains("max_failures") && stored["max_failures"].is_string())
        ro.max_failures = parse_quota(stored["max_failures"].get<std::string>(), "--max-failures");
    // The throttle's limits too (the manifest's [rollout] keys apply as in any run).
    auto& th = ro.throttle;
    if (!concurrency_given && !th.concurrency_auto && stored.contains("concurrency") && stored["concurrency"].is_string() &&
        stored["concurrency"].get<std::string>() == "auto")
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

std::string run_options_json(const command::MigrateRequest& request, const MigrateOptions& options) {
    nlohmann::json j;
    j["all"] = request.scope.selection.all;
    j["tenants"] = request.scope.selection.ids;
    j["concurrency"] = options.concurrency;
    j["mark_applied"] = options.mark_applied;
    j["to"] = options.to ? nlohmann::json(*options.to) : nlohmann::json(nullptr);
    j["fail_fast"] = options.fail_fast;
    rollout_options_json(options.rollout, j);
    return j.dump();
}

std::string changed_folder(const RunRecord& run, const std::string& now, const std::string& folder,
                           const std::string& restart) {
    return "--resume " + std::to_string(run.id) + ": the migration folder " + folder + " changed since run " +
           std::to_string(run.id) + " started (fingerprint " + run.folder_fingerprint.substr(0, 12) + " then, " +
           now.substr(0, 12) + " now); a run resumes only with the migrations it started with: start a new run with " +
           restart;
}

// A streamed run's results reach the ledger on their way to the caller's on_result.
void stream_to_ledger(MigrateOptions& options, std::optional<Ledger>& ledger) {
    if (!options.on_result) return;
    options.on_result = [&ledger, next = options.on_result](const TenantMigrateResult& r) {
        if (ledger) ledger->result(r.tenant.id, to_string(r.outcome));
        next(r);
    };
}

// Hooks a run's ledger into a command's options: each tenant's outcome is written as it finishes,
// and the ledger's own backend is not counted by the throttle. outcome_of names a result's outcome.
template <class Options, class OutcomeOf>
void hook_ledger(std::optional<Ledger>& ledger, Options& options, OutcomeOf outcome_of) {
    if (!ledger) return;
    options.tenant_finished = [&ledger, outcome_of](const auto& r) {
        ledger->tenant_finished(r.tenant.id, outcome_of(r), r.error, r.duration_ms);
    };
    options.rollout.throttle.own_backends.push_back(ledger->backend_pid());
}

// Closes a run's ledger with the report: the run id, the outcomes of the tenants that never started
// a transaction, and why the run stopped.
template <class Report, class OutcomeOf>
void close_ledger(std::optional<Ledger>& ledger, Report& report, OutcomeOf outcome_of) {
    if (!ledger) return;
    report.run_id = ledger->id();
    for (const auto& t : report.tenants) ledger->result(t.tenant.id, outcome_of(t));
    ledger->finish(report.rollout);
}

const auto outcome_text = [](const auto& r) { return to_string(r.outcome); };

}  // namespace

MigrateReport migrate_recorded(const Kernel& kernel, const command::MigrateRequest& request, MigrateOptions options) {
    const auto& m = kernel.manifest();
    const MigrationFolder folder = read_migration_folder(m.migrations.tenant_dir);
    const TrackingTarget target = TrackingTarget::tenants(m);
    const std::string print = fingerprint(folder);
    RunSpec spec{"migrate", "mtctl migrate --all", print, run_options_json(request, options), request.resume,
                 request.resume_run, [&] { return kernel.select(request.scope.selection); },
                 [&](const RunRecord& run, const nlohmann::json&) {
                     if (run.folder_fingerprint != print)
                         throw UsageError(changed_folder(run, print, m.migrations.tenant_dir.string(),
                                                         "mtctl migrate (--all | --tenants …)"));
                 },
                 [&](const TenantList& tenants) { check_canary_ids(tenants, options.rollout); }};
    RunStart run = begin_run(kernel, spec);
    if (run.stored.is_object()) {
        // The run's own --to, --mark-applied, --concurrency, budget and throttle, unless given again.
        const auto& stored = run.stored;
        if (!options.to && stored.contains("to") && stored["to"].is_string()) options.to = stored["to"].get<std::string>();
        if (stored.value("mark_applied", false)) options.mark_applied = true;
        adopt_rollout_options(stored, request.concurrency.has_value(), options.concurrency, options.rollout);
    }
    auto& ledger = run.ledger;
    hook_ledger(ledger, options, outcome_text);
    if (ledger) stream_to_ledger(options, ledger);
    MigrateReport report = mt::migrate(kernel, run.tenants, folder, target, options);
    close_ledger(ledger, report, outcome_text);
    return report;
}

namespace {

void selection_json(const TenantSelection& selection, nlohmann::json& j) {
    j["all"] = selection.all;
    j["tenants"] = selection.ids;
}

// convert-format's outcomes in the ledger: a tenant with no tracking table had nothing to convert.
std::string convert_outcome(const TenantMigrateResult& r) {
    return r.outcome == TenantOutcome::skipped && !r.error.empty() ? "up-to-date" : to_string(r.outcome);
}

std::string seed_outcome(const TenantSeedResult& r) { return r.skipped ? "skipped" : r.ok ? "ok" : "failed"; }

}  // namespace

SeedReport seed_recorded(const Kernel& kernel, const command::SeedRequest& request, SeedOptions options) {
    std::filesystem::path file = request.file;
    nlohmann::json j;
    std::optional<RunRecord> resumed;
    // The file of the run resumed, unless named again: read it first, so that the fingerprint is
    // the text that will run.
    if (request.resume && file.empty()) {
        auto conn = kernel.connect();
        pqxx::work tx(*conn);
        const auto run = run_to_resume(kernel, tx, request.resume_run, "seed", "mtctl seed --file F --all");
        const auto stored = nlohmann::json::parse(run.options, nullptr, false);
        if (!stored.is_object() || !stored.contains("file") || !stored["file"].is_string())
            throw UsageError("--resume " + std::to_string(run.id) + ": run " + std::to_string(run.id) +
                             " does not name its seed file; give it with --file F");
        file = stored["file"].get<std::string>();
    }
    const std::string sql = read_seed_file(file);
    const std::string print = sha256_hex(sql);
    selection_json(request.selection, j);
    j["file"] = std::filesystem::absolute(file).string();
    j["concurrency"] = options.concurrency;
    rollout_options_json(options.rollout, j);
    RunSpec spec{"seed", "mtctl seed --file F --all", print, j.dump(), request.resume, request.resume_run,
                 [&] { return kernel.select(request.selection); },
                 [&](const RunRecord& run, const nlohmann::json&) {
                     if (run.folder_fingerprint != print)
                         throw UsageError("--resume " + std::to_string(run.id) + ": the seed file " + file.string() +
                                          " changed since run " + std::to_string(run.id) + " started (fingerprint " +
                                          run.folder_fingerprint.substr(0, 12) + " then, " + print.substr(0, 12) +
                                          " now); a run resumes only with the file it started with: start a new run "
                                          "with mtctl seed --file F (--all | --tenants …)");
                 },
                 // An unreachable server is refused (exit 3) before the ledger records a run.
                 [&](const TenantList& tenants) {
                     check_canary_ids(tenants, options.rollout);
                     require_reachable(kernel, tenants);
                 }};
    RunStart run = begin_run(kernel, spec);
    if (run.stored.is_object())
        adopt_rollout_options(run.stored, request.concurrency.has_value(), options.concurrency, options.rollout);
    hook_ledger(run.ledger, options, seed_outcome);
    SeedReport report = mt::seed(kernel, run.tenants.to_vector(), file, options);
    close_ledger(run.ledger, report, seed_outcome);
    return report;
}

MigrateReport convert_recorded(const Kernel& kernel, const command::ConvertRequest& request, ConvertOptions options) {
    const auto& m = kernel.manifest();
    const MigrationFolder folder = read_migration_folder(m.migrations.tenant_dir);
    const TrackingTarget target = TrackingTarget::tenants(m);
    const std::string folder_print = fingerprint(folder);
    // The target format, --from and the folder the records are completed from.
    const auto print_of = [&](const std::string& to, const std::optional<std::string>& from) {
        return sha256_hex("to=" + to + "\nfrom=" + from.value_or("") + "\n" + folder_print);
    };
    if (request.resume && options.to.empty()) {
        auto conn = kernel.connect();
        pqxx::work tx(*conn);
        const auto run = run_to_resume(kernel, tx, request.resume_run, "convert-format", "mtctl convert-format --to FORMAT --all");
        const auto stored = nlohmann::json::parse(run.options, nullptr, false);
        if (stored.is_object() && stored.contains("to") && stored["to"].is_string()) options.to = stored["to"].get<std::string>();
        if (!options.from && stored.is_object() && stored.contains("from") && stored["from"].is_string())
            options.from = stored["from"].get<std::string>();
        kernel.tracking_format(options.to);
    }
    const std::string print = print_of(options.to, options.from);
    nlohmann::json j;
    selection_json(request.scope.selection, j);
    j["to"] = options.to;
    j["from"] = options.from ? nlohmann::json(*options.from) : nlohmann::json(nullptr);
    j["concurrency"] = options.concurrency;
    rollout_options_json(options.rollout, j);
    RunSpec spec{"convert-format", "mtctl convert-format --to FORMAT --all", print, j.dump(), request.resume,
                 request.resume_run, [&] { return kernel.select(request.scope.selection); },
                 [&](const RunRecord& run, const nlohmann::json& stored) {
                     const std::string then_to = stored.value("to", std::string());
                     const std::string then_from =
                         stored.contains("from") && stored["from"].is_string() ? stored["from"].get<std::string>() : "";
                     if (then_to != options.to || then_from != options.from.value_or(""))
                         throw UsageError("--resume " + std::to_string(run.id) + ": run " + std::to_string(run.id) +
                                          " converts to " + then_to + (then_from.empty() ? "" : " from " + then_from) +
                                          ", not to " + options.to + (options.from ? " from " + *options.from : "") +
                                          "; a run resumes only with the target format it started with: drop --to/--from, "
                                          "or start a new run with mtctl convert-format --to " + options.to +
                                          " (--all | --tenants …)");
                     if (run.folder_fingerprint != print)
                         throw UsageError(changed_folder(run, folder_print, m.migrations.tenant_dir.string(),
                                                         "mtctl convert-format --to " + options.to + " (--all | --tenants …)"));
                 },
                 // An unreachable server is refused (exit 3) before the ledger records a run.
                 [&](const TenantList& tenants) {
                     check_canary_ids(tenants, options.rollout);
                     require_reachable(kernel, tenants);
                 }};
    RunStart run = begin_run(kernel, spec);
    if (run.stored.is_object())
        adopt_rollout_options(run.stored, request.concurrency.has_value(), options.concurrency, options.rollout);
    hook_ledger(run.ledger, options, convert_outcome);
    MigrateReport report = mt::convert_format(kernel, run.tenants.to_vector(), folder, target, options);
    close_ledger(run.ledger, report, convert_outcome);
    return report;
}

SyncReport sync_recorded(const Kernel& kernel, const command::SyncRequest& request, SyncOptions options) {
    const auto& m = kernel.manifest();
    const MigrationFolder folder = read_migration_folder(m.migrations.tenant_dir);
    const TrackingTarget target = TrackingTarget::tenants(m);
    const std::string print = fingerprint(folder);
    nlohmann::json j;
    selection_json(request.scope.selection, j);
    j["mark_missing"] = options.mark_missing;
    j["clean_orphans"] = options.clean_orphans;
    rollout_options_json(options.rollout, j);
    RunSpec spec{"sync", "mtctl sync --mark-missing --all", print, j.dump(), request.resume, request.resume_run,
                 [&] { return kernel.select(request.scope.selection.empty() ? TenantSelection{true, {}} : request.scope.selection); },
                 [&](const RunRecord& run, const nlohmann::json& stored) {
                     if (run.folder_fingerprint != print)
                         throw UsageError(changed_folder(run, print, m.migrations.tenant_dir.string(),
                                                         "mtctl sync --mark-missing/--clean-orphans"));
                     // The run's own repairs; flags given again must be the same.
                     const bool mark = stored.value("mark_missing", false), clean = stored.value("clean_orphans", false);
                     if ((options.mark_missing && !mark) || (options.clean_orphans && !clean))
                         throw UsageError("--resume " + std::to_string(run.id) + ": run " + std::to_string(run.id) +
                                          " repairs with" + (mark ? " --mark-missing" : "") + (clean ? " --clean-orphans" : "") +
                                          "; a run resumes only with its own repairs: drop --mark-missing/--clean-orphans");
                     options.mark_missing = mark;
                     options.clean_orphans = clean;
                 },
                 {}};
    RunStart run = begin_run(kernel, spec);
    if (run.stored.is_object()) {
        int unused = options.concurrency;
        adopt_rollout_options(run.stored, true, unused, options.rollout);
    }
    auto& ledger = run.ledger;
    hook_ledger(ledger, options, outcome_text);
    if (ledger) {
        if (options.on_tenant)
            options.on_tenant = [&ledger, next = options.on_tenant](const TenantSync& t) {
                ledger->result(t.tenant.id, to_string(t.outcome));
                next(t);
            };
    }
    if (request.on_repairs) request.on_repairs(options.mark_missing, options.clean_orphans);
    if (request.on_start) request.on_start(run.tenants, folder.migrations.size());
    SyncReport report = sync_tracking(kernel, run.tenants, folder, target, options);
    close_ledger(ledger, report, outcome_text);
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
