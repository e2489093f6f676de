// Chaos harness (issue 10, item 9): worker threads lease tenants through TenantManager and run a
// random mix of reads, writes, transactions and hostile session statements while a fault thread
// injects faults (backend terminations, cancels, statement timeouts, pool evictions, and, through
// --fault-exec, PostgreSQL restarts, PgBouncer restarts and primary failovers). Afterwards it checks
// the invariants against what is stored and prints one table; exit 0 only when nothing was violated.
//
// Every tenant schema holds a table `items(op_id, tenant, payload)` without a unique constraint, so a
// write that ran twice is visible, and every schema (and public) has one, so a lease whose session
// points at the wrong schema reads rows whose `tenant` column is not its own.
//
// tools/chaos/run.sh sets up the servers and calls this program; see docs/reliability.md.
#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace po = boost::program_options;

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point g_epoch = Clock::now();

// Milliseconds since the program started: every time in the ledgers is on this one clock.
double now_ms() { return std::chrono::duration<double, std::milli>(Clock::now() - g_epoch).count(); }

const char* const kAllFaults[] = {"terminate", "cancel", "timeout", "evict", "restart", "pgbouncer-restart", "failover"};
const char* const kAllModes[] = {"per-tenant", "shared", "transaction"};
constexpr int kFaultSkipped = 75;  // --fault-exec exit code: this fault is not possible right now

struct Options {
    std::string manifest;
    std::string url;         // direct URL (both hosts, target_session_attrs=read-write)
    std::string pooler_url;  // through PgBouncer, for transaction mode
    std::string admin_url;   // for faults and verification; default: url
    std::vector<std::string> modes;
    std::vector<std::string> faults;
    double duration_s = 60;
    int threads = 8;
    int tenants = 12;
    int max_pools = 0;  // per-tenant mode; 0: tenants / 3 (eviction pressure)
    unsigned seed = 1;
    std::string fault_exec;
    std::string report_json;
    double hostile_rate = 0.15;
    int think_ms = 2;
    double lease_deadline_s = 10;
    double recovery_bound_s = 15;
    double fault_window_s = 3;
    double fault_gap_min_s = 1, fault_gap_max_s = 3;
    bool require_all_faults = false;
    bool setup = true;
};

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

// ---- ledgers ----------------------------------------------------------------------------------

enum class WriteState : uint8_t { pending, acked, unknown, failed };

struct WriteRecord {
    long long op;
    int tenant;
    int mode;
    WriteState state;
};

struct OpSample {
    float start_ms;
    float duration_ms;
    uint16_t worker;
    uint8_t mode;
    bool ok;
};

struct FaultRecord {
    std::string kind;
    int mode;
    double start_ms = 0, end_ms = 0;
    bool injected = false;
    std::string detail;
    // Filled after the run.
    std::optional<double> recovery_ms;      // to the first successful op of the service
    std::optional<double> recovery_all_ms;  // to the first successful op of every worker
};

struct Violation {
    std::string kind;
    int mode;
    std::string detail;
};

// Counters of one pool-mode phase.
struct ModeCounters {
    std::atomic<long long> ops{0}, ok{0}, errors{0}, reads{0}, writes{0}, transactions{0}, hostile{0},
        hostile_errors{0}, timeout_writes{0};
};

struct Shared {
    Options opt;
    std::vector<std::string> ids, schemas;
    std::atomic<long long> next_op{1};
    std::map<long long, int> phase_first_op;  // first op id of each phase -> its mode
    std::atomic<bool> stop{false};
    std::atomic<double> timeout_storm_until{-1};
    std::atomic<double> last_success_ms{0};

    std::mutex mutex;  // guards the vectors below
    std::vector<Violation> violations;
    std::vector<FaultRecord> faults;
    std::map<std::string, long long> hostile_counts;
    ModeCounters counters[3];

    void violate(std::string kind, int mode, std::string detail) {
        std::lock_guard lock(mutex);
        violations.push_back({std::move(kind), mode, std::move(detail)});
    }
};

int mode_index(const std::string& mode) {
    for (int i = 0; i < 3; ++i)
        if (mode == kAllModes[i]) return i;
    return -1;
}

// ---- outcome of a failed write ----------------------------------------------------------------

// What a failed call says about a write it carried: a connection lost after send leaves the outcome
// unknown (present at most once); every other error means it did not run (must be absent).
WriteState classify(const std::exception& e) {
    if (dynamic_cast<const mt::OutcomeUnknown*>(&e)) return WriteState::unknown;
    if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) return WriteState::unknown;
    if (dynamic_cast<const pqxx::broken_connection*>(&e)) return WriteState::unknown;
    const std::string state = mt::sqlstate_of(e);
    if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03") return WriteState::unknown;
    return WriteState::failed;
}

std::string short_what(const std::exception& e) {
    std::string text = e.what();
    const auto nl = text.find('\n');
    if (nl != std::string::npos) text.resize(nl);
    if (text.size() > 160) text.resize(160);
    return text;
}

// ---- workers ----------------------------------------------------------------------------------

class Worker {
public:
    Worker(Shared& shared, mt::TenantManager& manager, int index, int mode, unsigned seed)
        : s_(shared), manager_(manager), index_(index), mode_(mode), rng_(seed) {}

    void run() {
        while (!s_.stop.load(std::memory_order_relaxed)) {
            one_op();
            if (s_.opt.think_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(s_.opt.think_ms));
        }
    }

    std::vector<WriteRecord> writes;
    std::vector<OpSample> samples;

private:
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    double chance() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

    size_t begin_write(int tenant) {
        writes.push_back({s_.next_op.fetch_add(1), tenant, mode_, WriteState::pending});
        return writes.size() - 1;
    }

    void check_rows(const pqxx::result& r, int tenant, const char* how) {
        for (const auto& row : r) {
            const std::string seen = row[0].is_null() ? "(null)" : row[0].c_str();
            if (seen != s_.ids[static_cast<size_t>(tenant)])
                s_.violate("cross-tenant read", mode_,
                           std::string(how) + ": a lease of tenant " + s_.ids[static_cast<size_t>(tenant)] +
                               " read a row of tenant " + seen + " (op_id " + (row[1].is_null() ? "null" : row[1].c_str()) + ")");
        }
    }

    void one_op() {
        auto& c = s_.counters[mode_];
        const int tenant = pick(static_cast<int>(s_.ids.size()));
        const std::string& id = s_.ids[static_cast<size_t>(tenant)];
        const double start = now_ms();
        bool ok = false;
        try {
            auto lease = manager_.tenant(id);
            const double waited = now_ms() - start;
            if (waited > s_.opt.lease_deadline_s * 1000)
                s_.violate("lease past deadline", mode_,
                           "tenant " + id + ": the lease took " + std::to_string(static_cast<long>(waited)) + "ms");
            const double roll = chance();
            const bool storm = now_ms() < s_.timeout_storm_until.load();
            if (storm && roll < 0.5) timeout_write(lease, tenant);
            else if (roll < 0.40) read(lease, tenant);
            else if (roll < 0.80) write(lease, tenant);
            else transaction(lease, tenant);
            ok = true;
            if (chance() < s_.opt.hostile_rate) hostile(lease, tenant);
        } catch (const std::exception& e) {
            c.errors.fetch_add(1);
            if (errors_shown_ < 3 && std::getenv("MT_CHAOS_VERBOSE")) {
                ++errors_shown_;
                std::cerr << "mt_chaos: worker " << index_ << " (" << kAllModes[mode_] << ", tenant " << id
                          << "): " << short_what(e) << "\n";
            }
        }
        const double end = now_ms();
        c.ops.fetch_add(1);
        if (ok) {
            c.ok.fetch_add(1);
            double last = s_.last_success_ms.load();
            while (last < end && !s_.last_success_ms.compare_exchange_weak(last, end)) {
            }
        }
        samples.push_back({static_cast<float>(start), static_cast<float>(end - start), static_cast<uint16_t>(index_),
                           static_cast<uint8_t>(mode_), ok});
    }

    void read(mt::TenantLease& lease, int tenant) {
        s_.counters[mode_].reads.fetch_add(1);
        // Unqualified on purpose: the lease's search path alone decides which `items` is read.
        if (chance() < 0.5) {
            check_rows(lease.query("SELECT tenant, op_id FROM items ORDER BY op_id DESC LIMIT 10"), tenant, "read");
        } else {
            check_rows(lease.query("SELECT tenant, op_id FROM items WHERE op_id > $1 ORDER BY op_id DESC LIMIT 10", {"-100"}),
                       tenant, "read with a parameter");
        }
    }

    void write(mt::TenantLease& lease, int tenant) {
        s_.counters[mode_].writes.fetch_add(1);
        const size_t w = begin_write(tenant);
        try {
            lease.query("INSERT INTO items (op_id, tenant, payload) VALUES ($1, $2, $3)",
                        {std::to_string(writes[w].op), s_.ids[static_cast<size_t>(tenant)], "write"});
            writes[w].state = WriteState::acked;
        } catch (const std::exception& e) {
            writes[w].state = classify(e);
            throw;
        }
    }

    void transaction(mt::TenantLease& lease, int tenant) {
        s_.counters[mode_].transactions.fetch_add(1);
        const size_t a = begin_write(tenant);
        const size_t b = begin_write(tenant);
        const std::string& id = s_.ids[static_cast<size_t>(tenant)];
        const std::string op_a = std::to_string(writes[a].op), op_b = std::to_string(writes[b].op);
        try {
            lease.transaction([&](pqxx::work& tx) {
                mt::exec_params(tx, "INSERT INTO items (op_id, tenant, payload) VALUES ($1, $2, 'tx')", {op_a, id});
                mt::exec_params(tx, "INSERT INTO items (op_id, tenant, payload) VALUES ($1, $2, 'tx')", {op_b, id});
                check_rows(tx.exec("SELECT tenant, op_id FROM items ORDER BY op_id DESC LIMIT 10"), tenant,
                           "read in a transaction");
            });
            writes[a].state = writes[b].state = WriteState::acked;
        } catch (const std::exception& e) {
            writes[a].state = writes[b].state = classify(e);
            throw;
        }
    }

    // A write that the server times out (statement_timeout inside its own transaction): it must
    // never be stored.
    void timeout_write(mt::TenantLease& lease, int tenant) {
        s_.counters[mode_].timeout_writes.fetch_add(1);
        const size_t w = begin_write(tenant);
        try {
            lease.transaction([&](pqxx::work& tx) {
                tx.exec("SET LOCAL statement_timeout = '30ms'");
                mt::exec_params(tx, "INSERT INTO items (op_id, tenant, payload) SELECT $1, $2, 'timeout' FROM pg_sleep(0.2)",
                                {std::to_string(writes[w].op), s_.ids[static_cast<size_t>(tenant)]});
            });
            writes[w].state = WriteState::acked;
        } catch (const std::exception& e) {
            writes[w].state = classify(e);
            throw;
        }
    }

    // Session state an application may leave on a pooled connection (issue 10, item 1). Errors are
    // part of the game (DISCARD ALL inside an open transaction fails, the aborted transaction is
    // aborted on purpose) and never count against the service.
    void hostile(mt::TenantLease& lease, int tenant) {
        static const char* const names[] = {"set search_path", "reset all",        "discard all",   "set role",
                                            "temp table",      "prepare",          "listen",        "advisory lock",
                                            "open transaction", "aborted transaction", "timed-out statement",
                                            "cancelled statement", "set through query"};
        constexpr int count = static_cast<int>(std::size(names));
        const int h = pick(count);
        s_.counters[mode_].hostile.fetch_add(1);
        {
            std::lock_guard lock(s_.mutex);
            ++s_.hostile_counts[names[h]];
        }
        const std::string& id = s_.ids[static_cast<size_t>(tenant)];
        const std::string& other = s_.schemas[static_cast<size_t>((tenant + 1) % static_cast<int>(s_.ids.size()))];
        try {
            if (h == 12) {
                lease.query("SET search_path TO " + mt::quote_ident(other));
                return;
            }
            pqxx::connection& conn = lease.connection();
            if (h == 11) {
                // Cancelled from another thread while it runs, as a client-side timeout would.
                std::jthread canceller([&conn] {
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    try {
                        conn.cancel_query();
                    } catch (...) {  // nothing to cancel any more
                    }
                });
                pqxx::nontransaction tx(conn);
                tx.exec("SELECT pg_sleep(0.2)");
                return;
            }
            pqxx::nontransaction tx(conn);
            switch (h) {
            case 0: tx.exec("SET search_path TO " + mt::quote_ident(other)); break;
            case 1: tx.exec("RESET ALL"); break;
            case 2: tx.exec("DISCARD ALL"); break;
            case 3: tx.exec("SET ROLE chaos_intruder"); break;
            case 4:
                tx.exec("CREATE TEMP TABLE IF NOT EXISTS items (op_id bigint, tenant text, payload text)");
                mt::exec_params(tx, "INSERT INTO pg_temp.items (op_id, tenant, payload) VALUES (-1, $1, 'temp')", {id});
                break;
            case 5: tx.exec("PREPARE " + mt::quote_ident("chaos_p" + std::to_string(tenant)) + " AS SELECT tenant FROM items"); break;
            case 6: tx.exec("LISTEN chaos_channel"); break;
            case 7: mt::exec_params(tx, "SELECT pg_try_advisory_lock($1)", {std::to_string(7000 + tenant)}); break;
            case 8: tx.exec("BEGIN"); break;
            case 9:
                tx.exec("BEGIN");
                tx.exec("SELECT 1/0");
                break;
            case 10:
                tx.exec("SET statement_timeout = '10ms'");
                tx.exec("SELECT pg_sleep(0.1)");
                break;
            default: break;
            }
        } catch (const std::exception&) {
            s_.counters[mode_].hostile_errors.fetch_add(1);
        }
    }

    Shared& s_;
    mt::TenantManager& manager_;
    int index_;
    int mode_;
    std::mt19937_64 rng_;
    int errors_shown_ = 0;
};

// ---- admin connection (faults, verification) ---------------------------------------------------

class Admin {
public:
    explicit Admin(std::string url) : url_(std::move(url)) {}

    // Runs fn on a live connection to the primary, reconnecting until the deadline.
    template <class F>
    auto with_connection(F&& fn, std::chrono::seconds deadline = std::chrono::seconds(60)) {
        const auto until = Clock::now() + deadline;
        for (;;) {
            try {
                if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(url_);
                return fn(*conn_);
            } catch (const pqxx::broken_connection&) {
                conn_.reset();
                if (Clock::now() > until) throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            } catch (const pqxx::sql_error& e) {
                // The server in recovery or shutting down answers with an error, not a broken link.
                const std::string state = e.sqlstate();
                if (state.rfind("57", 0) != 0 && state.rfind("08", 0) != 0 && state != "25006") throw;
                conn_.reset();
                if (Clock::now() > until) throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
        }
    }

private:
    std::string url_;
    std::unique_ptr<pqxx::connection> conn_;
};

void setup_database(Admin& admin, const std::vector<std::string>& ids, const std::vector<std::string>& schemas) {
    admin.with_connection([&](pqxx::connection& c) {
        pqxx::work tx(c);
        if (tx.exec("SELECT 1 FROM pg_roles WHERE rolname = 'chaos_intruder'").empty())
            tx.exec("CREATE ROLE chaos_intruder NOLOGIN");
        tx.exec("DROP TABLE IF EXISTS public.items");
        tx.exec("CREATE TABLE public.items (op_id bigint, tenant text, payload text)");
        tx.exec("INSERT INTO public.items VALUES (0, 'public', 'seed')");
        for (size_t i = 0; i < ids.size(); ++i) {
            const std::string s = mt::quote_ident(schemas[i]);
            tx.exec("DROP SCHEMA IF EXISTS " + s + " CASCADE");
            tx.exec("CREATE SCHEMA " + s);
            tx.exec("CREATE TABLE " + s + ".items (op_id bigint, tenant text, payload text)");
            tx.exec("CREATE INDEX ON " + s + ".items (op_id)");
            mt::exec_params(tx, "INSERT INTO " + s + ".items VALUES (0, $1, 'seed')", {ids[i]});
        }
        tx.commit();
        return 0;
    });
}

// ---- faults -----------------------------------------------------------------------------------

class FaultInjector {
public:
    FaultInjector(Shared& shared, Admin& admin, mt::TenantManager& manager, int mode, unsigned seed)
        : s_(shared), admin_(admin), manager_(manager), mode_(mode), rng_(seed) {}

    void run(double phase_end_ms) {
        std::vector<std::string> kinds;
        for (const auto& k : s_.opt.faults) {
            if (k == "evict" && mode_ != 0) continue;  // only per-tenant mode has pools to evict
            if (k == "pgbouncer-restart" && mode_ != 2) continue;  // only transaction mode goes through it
            kinds.push_back(k);
        }
        if (kinds.empty()) return;
        std::shuffle(kinds.begin(), kinds.end(), rng_);
        // Kinds not injected yet in this run go first, those only this mode can take before them,
        // so a short run over several modes sees each kind.
        {
            std::lock_guard lock(s_.mutex);
            std::stable_partition(kinds.begin(), kinds.end(), [&](const std::string& k) {
                return std::none_of(s_.faults.begin(), s_.faults.end(), [&](const FaultRecord& f) { return f.injected && f.kind == k; });
            });
            std::stable_partition(kinds.begin(), kinds.end(), [&](const std::string& k) {
                return (k == "evict" || k == "pgbouncer-restart") &&
                       std::none_of(s_.faults.begin(), s_.faults.end(), [&](const FaultRecord& f) { return f.injected && f.kind == k; });
            });
        }
        size_t next = 0;
        // The last stretch of a phase is kept free of new faults so each one can show its recovery.
        const double last_start = phase_end_ms - std::max(3000.0, s_.opt.fault_window_s * 1000);
        double at = now_ms() + gap();
        while (!s_.stop.load()) {
            if (!sleep_until(at)) return;
            if (now_ms() > last_start) return;
            bool injected = false;
            for (size_t tries = 0; tries < kinds.size() && !injected; ++tries)
                injected = inject(kinds[next++ % kinds.size()]);
            if (!injected) {
                at = now_ms() + 500;
                continue;
            }
            // The next fault waits until the service answered again (or the bound passed).
            double end;
            {
                std::lock_guard lock(s_.mutex);
                end = s_.faults.back().end_ms;
            }
            while (!s_.stop.load() && s_.last_success_ms.load() < end && now_ms() < end + s_.opt.recovery_bound_s * 1000)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            at = now_ms() + gap();
        }
    }

private:
    double gap() {
        return 1000 * std::uniform_real_distribution<double>(s_.opt.fault_gap_min_s, s_.opt.fault_gap_max_s)(rng_);
    }

    bool sleep_until(double at) {
        while (now_ms() < at) {
            if (s_.stop.load()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return true;
    }

    // Injects one fault; false when it was not possible right now (e.g. no replica to promote yet).
    bool inject(const std::string& kind) {
        FaultRecord f;
        f.kind = kind;
        f.mode = mode_;
        f.start_ms = now_ms();
        try {
            if (kind == "terminate" || kind == "cancel") {
                const int n = std::uniform_int_distribution<int>(1, 3)(rng_);
                const std::string fn = kind == "terminate" ? "pg_terminate_backend" : "pg_cancel_backend";
                const auto hit = admin_.with_connection([&](pqxx::connection& c) {
                    pqxx::nontransaction tx(c);
                    // Cancels aim at statements in flight; terminations at any backend of the service,
                    // busy ones first (a commit waiting for the replica is the case that tells whether
                    // a lost answer leads to a second write).
                    return mt::exec_params(tx,
                                           "SELECT count(*) FILTER (WHERE " + fn + "(pid)) FROM (SELECT pid FROM pg_stat_activity "
                                           "WHERE datname = current_database() AND backend_type = 'client backend' "
                                           "AND pid <> pg_backend_pid() AND application_name <> 'mt_chaos_admin' "
                                           "AND ($1 = 'terminate' OR state = 'active') "
                                           "ORDER BY state = 'active' DESC, random() LIMIT $2) s",
                                           {kind, std::to_string(n)})[0][0].as<long>();
                }, std::chrono::seconds(10));
                f.detail = std::to_string(hit) + " backends";
            } else if (kind == "timeout") {
                s_.timeout_storm_until.store(now_ms() + 1000);
                f.detail = "1s of writes under statement_timeout";
            } else if (kind == "evict") {
                const auto& id = s_.ids[static_cast<size_t>(
                    std::uniform_int_distribution<int>(0, static_cast<int>(s_.ids.size()) - 1)(rng_))];
                manager_.evict(id);
                f.detail = "tenant " + id;
            } else {
                if (s_.opt.fault_exec.empty()) throw std::runtime_error("needs --fault-exec");
                const int status = std::system((s_.opt.fault_exec + " " + kind).c_str());
                const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
                if (code == kFaultSkipped) return false;
                if (code != 0) throw std::runtime_error("'" + s_.opt.fault_exec + " " + kind + "' exited with " + std::to_string(code));
            }
            f.injected = true;
        } catch (const std::exception& e) {
            f.detail = std::string("injection failed: ") + short_what(e);
            std::cerr << "mt_chaos: fault " << kind << ": " << f.detail << "\n";
        }
        f.end_ms = now_ms();
        std::lock_guard lock(s_.mutex);
        s_.faults.push_back(std::move(f));
        return true;
    }

    Shared& s_;
    Admin& admin_;
    mt::TenantManager& manager_;
    int mode_;
    std::mt19937_64 rng_;
};

// ---- one phase per pool mode ------------------------------------------------------------------

struct PhaseResult {
    std::vector<WriteRecord> writes;
    std::vector<OpSample> samples;
    bool hung = false;
};

PhaseResult run_phase(Shared& s, Admin& admin, int mode, double seconds, unsigned seed) {
    const auto& o = s.opt;
    mt::ManifestInput input;
    if (!o.manifest.empty()) input.file = o.manifest;
    input.use_environment = false;
    const std::string url = mode == 2 && !o.pooler_url.empty() ? o.pooler_url : o.url;
    input.overrides = {"database.url=" + url, std::string("database.pool_mode=") + kAllModes[mode],
                       "database.max_pools=" + std::to_string(o.max_pools > 0 ? o.max_pools : std::max(1, o.tenants / 3)),
                       "database.application_name=mt_chaos"};
    mt::Kernel kernel(input);
    mt::TenantManager manager(kernel);

    s.stop = false;
    s.phase_first_op[s.next_op.load()] = mode;
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < o.threads; ++i)
        workers.push_back(std::make_unique<Worker>(s, manager, i, mode, seed * 7919u + static_cast<unsigned>(i)));
    const double phase_end = now_ms() + seconds * 1000;
    std::mutex done_mutex;
    std::condition_variable done_cv;
    int done = 0;
    std::vector<std::thread> threads;
    for (auto& w : workers)
        threads.emplace_back([&, worker = w.get()] {
            worker->run();
            std::lock_guard lock(done_mutex);
            ++done;
            done_cv.notify_all();
        });
    FaultInjector injector(s, admin, manager, mode, seed);
    std::thread fault_thread([&] { injector.run(phase_end); });
    while (now_ms() < phase_end) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s.stop = true;
    fault_thread.join();

    // A worker stuck in a statement is cancelled, then terminated; one that still does not come
    // back is a hang, reported as a violation (the process cannot unwind it).
    PhaseResult result;
    std::unique_lock lock(done_mutex);
    for (const char* fn : {"", "pg_cancel_backend", "pg_terminate_backend"}) {
        if (*fn) {
            lock.unlock();
            try {
                admin.with_connection([&](pqxx::connection& c) {
                    pqxx::nontransaction tx(c);
                    tx.exec(std::string("SELECT ") + fn + "(pid) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'mt_chaos_admin' "
                            "AND state = 'active'");
                    return 0;
                }, std::chrono::seconds(10));
            } catch (const std::exception&) {
            }
            lock.lock();
        }
        if (done_cv.wait_for(lock, std::chrono::seconds(20), [&] { return done == o.threads; })) break;
    }
    if (done != o.threads) {
        result.hung = true;
        s.violate("hung worker", mode, std::to_string(o.threads - done) + " workers still inside a call 40s after the end");
        for (auto& t : threads) t.detach();
        return result;
    }
    lock.unlock();
    for (auto& t : threads) t.join();
    for (auto& w : workers) {
        result.writes.insert(result.writes.end(), w->writes.begin(), w->writes.end());
        result.samples.insert(result.samples.end(), w->samples.begin(), w->samples.end());
    }
    return result;
}

// ---- verification ----------------------------------------------------------------------------

struct Stored {
    int schema;  // index into the schema list; -1: public
    std::string tenant;
    long long count;
};

void verify(Shared& s, Admin& admin, const std::vector<WriteRecord>& writes, std::map<std::string, long long>& outcome) {
    std::unordered_map<long long, std::vector<Stored>> stored;
    admin.with_connection([&](pqxx::connection& c) {
        stored.clear();
        pqxx::work tx(c);
        for (int i = -1; i < static_cast<int>(s.schemas.size()); ++i) {
            const std::string table = mt::quote_qualified(i < 0 ? "public" : s.schemas[static_cast<size_t>(i)], "items");
            for (const auto& row : tx.exec("SELECT op_id, tenant, count(*) FROM " + table + " WHERE op_id > 0 GROUP BY 1, 2"))
                stored[row[0].as<long long>()].push_back({i, row[1].is_null() ? "(null)" : row[1].c_str(), row[2].as<long long>()});
        }
        return 0;
    });
    for (const auto& w : writes) {
        const char* state = w.state == WriteState::acked ? "acked" : w.state == WriteState::failed ? "failed" : "unknown";
        ++outcome[state];
        long long own = 0;
        const std::string& id = s.ids[static_cast<size_t>(w.tenant)];
        const auto it = stored.find(w.op);
        if (it != stored.end()) {
            for (const auto& st : it->second) {
                if (st.schema == w.tenant && st.tenant == id) own += st.count;
                else
                    s.violate("write misplaced", w.mode,
                              "op " + std::to_string(w.op) + " of tenant " + id + " is stored in " +
                                  (st.schema < 0 ? std::string("public") : s.schemas[static_cast<size_t>(st.schema)]) +
                                  " as tenant " + st.tenant);
            }
            stored.erase(it);
        }
        const std::string what = "op " + std::to_string(w.op) + " of tenant " + id + " (" + state + ") is stored " +
                                 std::to_string(own) + " times";
        if (own > 1) s.violate("duplicate write", w.mode, what);
        else if (w.state == WriteState::acked && own == 0) s.violate("acknowledged write missing", w.mode, what);
        else if (w.state == WriteState::failed && own == 1) s.violate("failed write stored", w.mode, what);
    }
    for (const auto& [op, rows] : stored) {
        auto phase = s.phase_first_op.upper_bound(op);
        const int mode = phase == s.phase_first_op.begin() ? 0 : std::prev(phase)->second;
        s.violate("unknown write stored", mode, "op " + std::to_string(op) + " is stored but no worker wrote it");
    }
}

// ---- report ------------------------------------------------------------------------------------

double percentile(std::vector<float> v, double p) {
    if (v.empty()) return -1;
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

std::string ms(double v) {
    if (v < 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2fms" : v < 1000 ? "%.0fms" : "%.2fs", v < 1000 ? v : v / 1000);
    return buf;
}

void parse_options(int argc, char** argv, Options& o) {
    std::string modes = "all", faults = "all";
    po::options_description desc("mt_chaos: chaos harness for the tenant runtime (issue 10)");
    desc.add_options()
        ("help,h", "this help")
        ("manifest", po::value(&o.manifest), "manifest file (pool sizes, plugins); url, pool_mode and max_pools are set per phase")
        ("url", po::value(&o.url)->required(), "database URL for per-tenant and shared modes (list both hosts with target_session_attrs=read-write)")
        ("pooler-url", po::value(&o.pooler_url), "URL through PgBouncer (transaction mode); default: --url")
        ("admin-url", po::value(&o.admin_url), "URL for fault injection and verification; default: --url")
        ("pool-mode", po::value(&modes), "per-tenant, shared, transaction, a comma list, or all")
        ("faults", po::value(&faults), "comma list of terminate,cancel,timeout,evict,restart,pgbouncer-restart,failover, all, or none")
        ("duration", po::value(&o.duration_s), "seconds in total (split over the pool modes)")
        ("threads", po::value(&o.threads), "worker threads")
        ("tenants", po::value(&o.tenants), "tenants (schemas tenant_c0 …)")
        ("max-pools", po::value(&o.max_pools), "per-tenant mode: live pool cap (default tenants/3: eviction pressure)")
        ("seed", po::value(&o.seed), "random seed")
        ("fault-exec", po::value(&o.fault_exec), "command run as `CMD KIND` for restart, pgbouncer-restart and failover (exit 75: not possible now)")
        ("hostile-rate", po::value(&o.hostile_rate), "share of ops followed by a hostile session statement")
        ("think-ms", po::value(&o.think_ms), "pause between a worker's ops")
        ("lease-deadline", po::value(&o.lease_deadline_s), "seconds a lease may wait before it is a violation")
        ("recovery-bound", po::value(&o.recovery_bound_s), "seconds the service may take to answer again after a fault")
        ("fault-gap-min", po::value(&o.fault_gap_min_s), "least seconds between a recovery and the next fault")
        ("fault-gap-max", po::value(&o.fault_gap_max_s), "most seconds between a recovery and the next fault")
        ("fault-window", po::value(&o.fault_window_s), "seconds after a fault whose ops count as 'during faults'")
        ("require-all-faults", po::bool_switch(&o.require_all_faults), "fail unless every listed fault kind was injected")
        ("no-setup", "keep the existing tenant tables (default: recreate them)")
        ("report-json", po::value(&o.report_json), "write the figures as JSON to this file");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
        std::cout << desc << "\n";
        std::exit(0);
    }
    po::notify(vm);
    o.setup = !vm.count("no-setup");
    if (o.admin_url.empty()) o.admin_url = o.url;
    if (modes == "all") o.modes.assign(std::begin(kAllModes), std::end(kAllModes));
    else o.modes = split_list(modes);
    for (const auto& m : o.modes)
        if (mode_index(m) < 0) throw std::invalid_argument("--pool-mode: unknown mode '" + m + "' (per-tenant, shared, transaction, all)");
    if (faults == "all") o.faults.assign(std::begin(kAllFaults), std::end(kAllFaults));
    else if (faults != "none") o.faults = split_list(faults);
    for (const auto& f : o.faults)
        if (std::find(std::begin(kAllFaults), std::end(kAllFaults), f) == std::end(kAllFaults))
            throw std::invalid_argument("--faults: unknown fault '" + f + "'");
    if (o.threads < 1 || o.tenants < 2 || o.duration_s <= 0) throw std::invalid_argument("--threads ≥ 1, --tenants ≥ 2, --duration > 0");
}

}  // namespace

int main(int argc, char** argv) {
    Shared s;
    try {
        parse_options(argc, argv, s.opt);
    } catch (const std::exception& e) {
        std::cerr << "mt_chaos: " << e.what() << " (see --help)\n";
        return 2;
    }
    const Options& o = s.opt;
    const std::string admin_url = o.admin_url + (o.admin_url.find('?') == std::string::npos ? "?" : "&") + "application_name=mt_chaos_admin";
    Admin admin(admin_url);
    {
        mt::ManifestInput input;
        if (!o.manifest.empty()) input.file = o.manifest;
        input.use_environment = false;
        input.overrides = {"database.url=" + o.url};
        try {
            mt::Kernel kernel(input);
            for (int i = 0; i < o.tenants; ++i) {
                s.ids.push_back("c" + std::to_string(i));
                s.schemas.push_back(kernel.namer().schema_name(s.ids.back()));
            }
        } catch (const std::exception& e) {
            std::cerr << "mt_chaos: " << e.what() << "\n";
            return 2;
        }
    }
    try {
        if (o.setup) setup_database(admin, s.ids, s.schemas);
    } catch (const std::exception& e) {
        std::cerr << "mt_chaos: setting up the tenant tables failed: " << e.what() << "\n";
        return 2;
    }

    std::vector<WriteRecord> writes;
    std::vector<OpSample> samples;
    bool hung = false;
    const double per_phase = o.duration_s / static_cast<double>(o.modes.size());
    unsigned seed = o.seed;
    for (const auto& m : o.modes) {
        std::cerr << "mt_chaos: " << m << " for " << per_phase << "s, " << o.threads << " threads, " << o.tenants << " tenants\n";
        try {
            auto r = run_phase(s, admin, mode_index(m), per_phase, seed++);
            writes.insert(writes.end(), r.writes.begin(), r.writes.end());
            samples.insert(samples.end(), r.samples.begin(), r.samples.end());
            if (r.hung) {
                hung = true;
                break;
            }
        } catch (const std::exception& e) {
            std::cerr << "mt_chaos: phase " << m << " failed to start: " << e.what() << "\n";
            return 2;
        }
    }

    std::map<std::string, long long> outcome;
    try {
        if (!hung) verify(s, admin, writes, outcome);
    } catch (const std::exception& e) {
        std::cerr << "mt_chaos: verification could not read the tables: " << e.what() << "\n";
        return 2;
    }

    // Recovery per fault, from the op ledger: the first success completed after the injection.
    std::sort(samples.begin(), samples.end(), [](const OpSample& a, const OpSample& b) {
        return a.start_ms + a.duration_ms < b.start_ms + b.duration_ms;
    });
    std::vector<float> calm[3], during[3];
    std::vector<std::pair<double, double>> windows[3];
    for (auto& f : s.faults)
        if (f.injected) windows[f.mode].push_back({f.start_ms, std::max(f.end_ms, f.start_ms + o.fault_window_s * 1000)});
    for (const auto& sm : samples) {
        if (!sm.ok) continue;
        bool in = false;
        for (const auto& [a, b] : windows[sm.mode])
            if (sm.start_ms >= a && sm.start_ms <= b) in = true;
        (in ? during : calm)[sm.mode].push_back(sm.duration_ms);
    }
    // Every worker's successes, to find when each answered again after a fault.
    for (auto& f : s.faults) {
        if (!f.injected) continue;
        for (const auto& sm : samples)
            if (sm.ok && sm.mode == f.mode && sm.start_ms + sm.duration_ms >= f.end_ms) {
                f.recovery_ms = sm.start_ms + sm.duration_ms - f.start_ms;
                break;
            }
        if (!f.recovery_ms || *f.recovery_ms > o.recovery_bound_s * 1000)
            s.violate("recovery past bound", f.mode,
                      f.kind + " at " + ms(f.start_ms) + ": " + (f.recovery_ms ? "answered after " + ms(*f.recovery_ms) : "never answered again"));
    }

    // Every worker answered again: the latest of each worker's first success after the injection.
    for (auto& f : s.faults) {
        if (!f.injected) continue;
        std::vector<double> first(static_cast<size_t>(o.threads), -1);
        int seen = 0;
        for (const auto& sm : samples) {
            const double end = sm.start_ms + sm.duration_ms;
            if (sm.ok && sm.mode == f.mode && end >= f.end_ms && first[sm.worker] < 0) {
                first[sm.worker] = end - f.start_ms;
                if (++seen == o.threads) {
                    f.recovery_all_ms = *std::max_element(first.begin(), first.end());
                    break;
                }
            }
        }
    }

    std::map<std::string, std::map<int, long long>> fault_counts;
    std::map<std::string, std::vector<float>> recovery_by_kind;
    long long fault_errors = 0;
    for (const auto& f : s.faults) {
        if (!f.injected) {
            ++fault_errors;
            continue;
        }
        ++fault_counts[f.kind][f.mode];
        if (f.recovery_ms) recovery_by_kind[f.kind].push_back(static_cast<float>(*f.recovery_ms));
    }
    std::map<std::string, std::map<int, long long>> violation_counts;
    long long total_violations = 0;
    for (const auto& v : s.violations) {
        ++violation_counts[v.kind][v.mode];
        ++total_violations;
    }
    std::vector<std::string> missing_faults;
    if (o.require_all_faults) {
        const bool per_tenant = std::find(o.modes.begin(), o.modes.end(), "per-tenant") != o.modes.end();
        const bool transaction = std::find(o.modes.begin(), o.modes.end(), "transaction") != o.modes.end();
        for (const auto& k : o.faults) {
            if ((k == "evict" && !per_tenant) || (k == "pgbouncer-restart" && !transaction)) continue;
            if (!fault_counts.count(k)) missing_faults.push_back(k);
        }
    }

    // One table: a row per figure, a column per pool mode and the total.
    std::vector<int> cols;
    for (const auto& m : o.modes) cols.push_back(mode_index(m));
    std::vector<std::vector<std::string>> rows;
    auto row = [&](std::string label, auto value_of, bool total = true) {
        std::vector<std::string> r{std::move(label)};
        long long sum = 0;
        for (int m : cols) {
            const long long v = value_of(m);
            sum += v;
            r.push_back(std::to_string(v));
        }
        r.push_back(total ? std::to_string(sum) : "");
        rows.push_back(std::move(r));
    };
    auto text_row = [&](std::string label, auto text_of, std::string total) {
        std::vector<std::string> r{std::move(label)};
        for (int m : cols) r.push_back(text_of(m));
        r.push_back(std::move(total));
        rows.push_back(std::move(r));
    };
    auto counter = [&](std::atomic<long long> ModeCounters::*field) { return [&s, field](int m) { return (s.counters[m].*field).load(); }; };
    row("ops", counter(&ModeCounters::ops));
    row("  succeeded", counter(&ModeCounters::ok));
    row("  failed (error returned)", counter(&ModeCounters::errors));
    row("  reads", counter(&ModeCounters::reads));
    row("  writes", counter(&ModeCounters::writes));
    row("  transactions (2 writes)", counter(&ModeCounters::transactions));
    row("  writes under a timeout", counter(&ModeCounters::timeout_writes));
    row("  hostile session statements", counter(&ModeCounters::hostile));
    for (const char* st : {"acked", "unknown", "failed"}) {
        row(std::string("writes ") + st, [&](int m) {
            long long n = 0;
            for (const auto& w : writes)
                if (w.mode == m && std::string(w.state == WriteState::acked ? "acked" : w.state == WriteState::failed ? "failed" : "unknown") == st) ++n;
            return n;
        });
    }
    for (const char* k : kAllFaults)
        if (std::find(o.faults.begin(), o.faults.end(), k) != o.faults.end())
            row(std::string("faults: ") + k, [&](int m) { return fault_counts[k][m]; });
    for (const char* k : {"cross-tenant read", "acknowledged write missing", "duplicate write", "failed write stored",
                          "write misplaced", "unknown write stored", "lease past deadline", "recovery past bound", "hung worker"})
        row(std::string("violations: ") + k, [&](int m) { return violation_counts[k][m]; });
    row("VIOLATIONS (must be 0)", [&](int m) {
        long long n = 0;
        for (const auto& [k, by] : violation_counts) n += by.count(m) ? by.at(m) : 0;
        return n;
    });
    std::vector<float> all_calm, all_during;
    for (int m : cols) {
        all_calm.insert(all_calm.end(), calm[m].begin(), calm[m].end());
        all_during.insert(all_during.end(), during[m].begin(), during[m].end());
    }
    text_row("latency p50 / p99, no fault", [&](int m) { return ms(percentile(calm[m], 0.5)) + " / " + ms(percentile(calm[m], 0.99)); },
             ms(percentile(all_calm, 0.5)) + " / " + ms(percentile(all_calm, 0.99)));
    text_row("latency p50 / p99, during faults", [&](int m) { return ms(percentile(during[m], 0.5)) + " / " + ms(percentile(during[m], 0.99)); },
             ms(percentile(all_during, 0.5)) + " / " + ms(percentile(all_during, 0.99)));
    for (const auto& [kind, v] : recovery_by_kind) {
        auto mx = *std::max_element(v.begin(), v.end());
        text_row("recovery " + kind + " p50 / max", [&](int m) {
            std::vector<float> mv;
            for (const auto& f : s.faults)
                if (f.injected && f.kind == kind && f.mode == m && f.recovery_ms) mv.push_back(static_cast<float>(*f.recovery_ms));
            if (mv.empty()) return std::string("-");
            return ms(percentile(mv, 0.5)) + " / " + ms(*std::max_element(mv.begin(), mv.end()));
        }, ms(percentile(v, 0.5)) + " / " + ms(mx));
    }
    {
        std::vector<float> all;
        for (const auto& f : s.faults)
            if (f.recovery_all_ms) all.push_back(static_cast<float>(*f.recovery_all_ms));
        text_row("recovery of every worker p50 / max", [&](int m) {
            std::vector<float> mv;
            for (const auto& f : s.faults)
                if (f.mode == m && f.recovery_all_ms) mv.push_back(static_cast<float>(*f.recovery_all_ms));
            return mv.empty() ? std::string("-") : ms(percentile(mv, 0.5)) + " / " + ms(*std::max_element(mv.begin(), mv.end()));
        }, all.empty() ? "-" : ms(percentile(all, 0.5)) + " / " + ms(*std::max_element(all.begin(), all.end())));
    }

    std::vector<std::string> header{"figure"};
    for (int m : cols) header.push_back(kAllModes[m]);
    header.push_back("total");
    std::vector<size_t> width(header.size(), 0);
    for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    auto print_row = [&](const std::vector<std::string>& r) {
        std::cout << "| " << r[0] << std::string(width[0] - r[0].size(), ' ');
        for (size_t i = 1; i < r.size(); ++i) std::cout << " | " << std::string(width[i] - r[i].size(), ' ') << r[i];
        std::cout << " |\n";
    };
    print_row(header);
    std::cout << "|" << std::string(width[0] + 2, '-');
    for (size_t i = 1; i < width.size(); ++i) std::cout << "|" << std::string(width[i] + 1, '-') << ":";
    std::cout << "|\n";
    for (const auto& r : rows) print_row(r);

    // The first few of each kind, so a violation can be looked into.
    std::map<std::string, int> shown;
    for (const auto& v : s.violations)
        if (shown[v.kind]++ < 3)
            std::cout << "violation: " << v.kind << " [" << (v.mode >= 0 ? kAllModes[v.mode] : "any") << "]: " << v.detail << "\n";
    for (const auto& f : s.faults)
        if (!f.injected) std::cout << "fault error: " << f.kind << " [" << kAllModes[f.mode] << "]: " << f.detail << "\n";
    for (const auto& k : missing_faults) std::cout << "fault never injected: " << k << "\n";

    if (!o.report_json.empty()) {
        nlohmann::json j;
        j["seed"] = o.seed;
        j["duration_s"] = o.duration_s;
        j["threads"] = o.threads;
        j["tenants"] = o.tenants;
        j["modes"] = o.modes;
        j["violations"] = total_violations;
        j["fault_errors"] = fault_errors;
        j["write_outcomes"] = outcome;
        j["hostile_statements"] = s.hostile_counts;
        for (const auto& r : rows) {
            nlohmann::json cells = nlohmann::json::object();
            for (size_t i = 1; i + 1 < r.size(); ++i) cells[header[i]] = r[i];
            cells["total"] = r.back();
            j["table"][r[0].substr(r[0].find_first_not_of(' '))] = cells;
        }
        for (const auto& f : s.faults) {
            nlohmann::json fj{{"kind", f.kind}, {"mode", kAllModes[f.mode]}, {"start_ms", f.start_ms}, {"end_ms", f.end_ms},
                              {"injected", f.injected}, {"detail", f.detail}};
            if (f.recovery_ms) fj["recovery_ms"] = *f.recovery_ms;
            if (f.recovery_all_ms) fj["recovery_all_workers_ms"] = *f.recovery_all_ms;
            j["faults"].push_back(fj);
        }
        for (const auto& v : s.violations) {
            if (j["violation_details"].size() >= 200) break;
            j["violation_details"].push_back({{"kind", v.kind}, {"mode", v.mode >= 0 ? kAllModes[v.mode] : "any"}, {"detail", v.detail}});
        }
        std::ofstream(o.report_json) << j.dump(2) << "\n";
    }
    std::cout.flush();
    if (hung) std::_Exit(1);  // threads still inside libpq calls: no orderly unwinding is possible
    if (fault_errors > 0 || !missing_faults.empty()) return total_violations > 0 ? 1 : 2;
    return total_violations > 0 ? 1 : 0;
}
