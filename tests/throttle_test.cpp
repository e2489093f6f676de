// migrate's throttle (issue 14, docs/rollouts.md "Throttling") against a real PostgreSQL: replica
// lag from a real streaming replica (pg_basebackup -R, replay paused with pg_wal_replay_pause()),
// lock waits and active backends from pg_stat_activity, the throttle timeout and --resume, and
// --concurrency auto. The replica tests share one primary and one standby: they are the sections
// of one test case, so that ctest builds the pair once.
#include "support/blocked_backend.hpp"
#include "support/daemon.hpp"
#include "support/gate.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/replica.hpp"
#include "support/wait.hpp"

#include <mt/migrations/rollout.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <thread>

using namespace mt::test;
using nlohmann::json;

namespace {

// Tenants with one migration that counts its start in public.attempts (a sequence: not rolled
// back) and, for the schemas in public.gate_in, waits for the test's advisory lock 4242.
void throttle_fleet(const Project& p, const std::vector<std::string>& ids) {
    p.tenants(ids);
    p.exec("CREATE SEQUENCE public.attempts; CREATE TABLE public.gate_in (schema text PRIMARY KEY)");
    p.migration("0000_items",
                "SELECT nextval('public.attempts');\n"
                "CREATE TABLE items (id int);\n"
                "DO $$ BEGIN\n"
                "  IF EXISTS (SELECT 1 FROM public.gate_in WHERE schema = current_schema()) THEN\n"
                "    PERFORM pg_advisory_xact_lock(4242);\n"
                "  END IF;\n"
                "END $$;");
}

std::map<std::string, std::string> ledger(const Project& p) {
    std::map<std::string, std::string> m;
    pqxx::connection c(p.url());
    pqxx::nontransaction tx(c);
    for (const auto& row : tx.exec("SELECT tenant, outcome FROM public.mt_run_tenants WHERE run_id = (SELECT max(id) FROM public.mt_runs)"))
        m[row[0].as<std::string>()] = row[1].as<std::string>();
    return m;
}

using mt::test::Gate;

// The gated migration's backend has waited at the gate for longer than `seconds` (server clock).
bool gated_for_longer_than(const Project& p, double seconds) {
    pqxx::connection c(p.url());
    pqxx::nontransaction tx(c);
    return tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                          " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                          " AND now() - query_start > make_interval(secs => $1)",
                          seconds)[0][0].as<int>() == 1;
}

// The figure of "replica lag 3.4 s" / "replica lag ≥ 3.4 s" in a throttle reason.
double lag_seconds(const std::string& reason) {
    auto at = reason.find("replica lag ");
    REQUIRE(at != std::string::npos);
    at += 12;
    if (reason.compare(at, 4, "≥ ") == 0) at += 4;
    return std::stod(reason.substr(at));
}

struct ReplicatedServer {
    PrivateServer primary;
    Replica replica{primary};
    int databases = 0;
};

// One primary and one standby for every section of the replica test case (built on first use).
ReplicatedServer& replicated() {
    static ReplicatedServer server;
    return server;
}

// A project on a fresh database of the replicated primary, with the replica replaying and caught up.
std::unique_ptr<Project> replicated_project() {
    auto& server = replicated();
    server.replica.resume_replay();  // a failed section may have left it paused
    const std::string name = "throttle_" + std::to_string(++server.databases);
    {
        pqxx::connection admin(server.primary.admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec("CREATE DATABASE " + tx.quote_name(name));
    }
    auto p = std::make_unique<Project>(server.primary.url_for(name));
    return p;
}

const std::string kMtctl = shell_quote(MT_MTCTL) + " --no-color --no-progress";

}  // namespace

TEST_CASE("migrate throttles on the replay lag of a real streaming replica and proceeds when replay resumes",
          "[throttle][pg][replica]") {
    auto p = replicated_project();
    auto& replica = replicated().replica;

    SECTION("paused replay: no tenant starts while the lag grows past --max-replica-lag, all finish after resume") {
        throttle_fleet(*p, {"a", "b", "c", "d"});
        p->exec("INSERT INTO public.gate_in VALUES ('tenant_a')");
        replica.wait_caught_up();
        replica.pause_replay();
        Gate gate(p->url());
        Daemon run(kMtctl + " -v --json migrate --all --concurrency 1 --max-replica-lag 500ms", p->dir());
        // a runs (the replica is not behind yet) and writes WAL the paused replica does not
        // replay; once a has waited at the gate for over 0.7 s, that WAL is older than the limit.
        wait_until([&] { return gated_for_longer_than(*p, 0.7); }, "tenant a waiting at the gate for 0.7 s");
        gate.open();
        wait_until([&] { return run.err().find("[info] throttled: replica lag ") != std::string::npos; },
                   "mtctl saying it is throttled");
        INFO("stderr: " << run.err());
        // Throttled: a is done, no other tenant starts while replay stays paused.
        CHECK(!poll_until([&] { return attempts(*p) > 1; }, std::chrono::milliseconds(500)));
        CHECK(ledger(*p) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "pending"}, {"c", "pending"}, {"d", "pending"}});
        CHECK(run.running());

        replica.resume_replay();
        REQUIRE(run.wait() == 0);
        const auto doc = json::parse(run.out());
        CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "migrated"}, {"c", "migrated"}, {"d", "migrated"}});
        CHECK(attempts(*p) == 4);
        const auto& t = doc["summary"]["throttle"];
        CHECK(t["enabled"] == true);
        CHECK(t["max_replica_lag_ms"] == 500);
        CHECK(t["waits"].get<int>() >= 1);
        CHECK(t["waited_ms"].get<double>() >= 500);
        CHECK(t["stop_reason"].is_null());
        // The lag kept growing while replay was paused and the primary idle (replay_lag would not).
        const auto last = t["last_reason"].get<std::string>();
        CHECK(last.find("(limit 500ms; walreceiver at 127.0.0.1)") != std::string::npos);
        CHECK(lag_seconds(last) >= 1.2);
        CHECK(run.err().find("[info] throttle: resumed after ") != std::string::npos);
        CHECK(doc["summary"]["stopped"].is_null());
    }

    SECTION("--throttle-timeout while replay is paused stops with exit 1 and --resume finishes the rest") {
        throttle_fleet(*p, {"a", "b", "c"});
        p->exec("INSERT INTO public.gate_in VALUES ('tenant_a')");
        replica.wait_caught_up();
        replica.pause_replay();
        Gate gate(p->url());
        Daemon run(kMtctl + " migrate --all --concurrency 1 --max-replica-lag 500ms --throttle-timeout 500ms", p->dir());
        wait_until([&] { return gated_for_longer_than(*p, 0.7); }, "tenant a waiting at the gate for 0.7 s");
        gate.open();
        REQUIRE(run.wait() == 1);
        INFO("stdout: " << run.out() << "\nstderr: " << run.err());
        const std::string reason =
            "throttle timeout: throttled by replica lag for longer than 500ms; 2 tenants not started (continue with: mtctl migrate --resume)";
        CHECK(run.out().find("migrate: 3 tenants, 1 succeeded, 0 failed, 2 skipped; 1 migrations in") != std::string::npos);
        CHECK(run.out().find("\nstopped: " + reason + "\n") != std::string::npos);
        CHECK(attempts(*p) == 1);
        CHECK(p->scalar("SELECT outcome FROM public.mt_runs") == "throttle-timeout");
        CHECK(p->scalar("SELECT stop_reason FROM public.mt_runs") == reason);
        CHECK(ledger(*p) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "skipped"}, {"c", "skipped"}});

        replica.resume_replay();
        replica.wait_caught_up();
        const auto doc = run_json(*p, "migrate --resume");
        CHECK(outcomes(doc) == std::map<std::string, std::string>{{"b", "migrated"}, {"c", "migrated"}});
        // The run's own limit came back with it.
        CHECK(doc["summary"]["throttle"]["max_replica_lag_ms"] == 500);
        CHECK(attempts(*p) == 3);
        CHECK(p->scalar("SELECT outcome FROM public.mt_runs") == "succeeded");
        CHECK(p->scalar("SELECT coalesce(stop_reason, 'null') FROM public.mt_runs") == "null");
    }

    SECTION("a replica named in [rollout] replicas is asked directly, with the manifest's limits") {
        throttle_fleet(*p, {"a", "b"});
        replica.wait_caught_up();
        replica.pause_replay();
        // WAL the replica receives and does not replay, committed over 0.7 s ago by its own clock.
        p->exec("CREATE TABLE public.after_pause (x int)");
        wait_until(
            [&] {
                pqxx::connection standby(replica.url_for(p->scalar("SELECT current_database()")));
                pqxx::nontransaction tx(standby);
                return tx.exec1("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AND"
                                " now() - pg_last_xact_replay_timestamp() > interval '0.7 s'")[0]
                    .as<bool>();
            },
            "the replica to be 0.7 s behind by its own measure");
        const std::string url = replica.url_for("postgres");
        p->set("rollout.replicas", url);
        p->set("rollout.max_replica_lag", "500ms");
        p->set("rollout.throttle_timeout", "300ms");
        // The primary's view alone would let a and b start during the first 500 ms (it counts
        // from the first probe); the replica's own word stops them at once.
        const auto doc = run_json(*p, "migrate --all", 1);
        CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "skipped"}, {"b", "skipped"}});
        CHECK(attempts(*p) == 0);
        const auto& t = doc["summary"]["throttle"];
        CHECK(t["replicas"] == json({url}));
        CHECK(t["max_replica_lag_ms"] == 500);
        CHECK(t["timeout_ms"] == 300);
        const auto last = t["last_reason"].get<std::string>();
        CHECK(last.find("(limit 500ms; " + url + ")") != std::string::npos);
        CHECK(lag_seconds(last) > 0.7);
        CHECK(doc["summary"]["stop_reason"] ==
              "throttle timeout: throttled by replica lag for longer than 300ms; 2 tenants not started (continue with: mtctl "
              "migrate --resume)");
        CHECK(t["stop_reason"] == doc["summary"]["stop_reason"]);

        // A flag overrides the manifest: a limit far above the lag lets the run through.
        const auto through = run_json(*p, "migrate --all --max-replica-lag 1h");
        CHECK(outcomes(through) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "migrated"}});
        CHECK(through["summary"]["throttle"]["waits"] == 0);
        replica.resume_replay();
    }
}

TEST_CASE("an unreachable replica in [rollout] replicas throttles the run until the timeout", "[throttle][pg]") {
    Project p;
    throttle_fleet(p, {"a"});
    const std::string url = "postgresql://postgres@127.0.0.1:" + std::to_string(free_port_below_ephemeral_range()) + "/postgres";
    p.set("rollout.replicas", url);
    const auto doc = run_json(p, "migrate --all --max-replica-lag 10s --throttle-timeout 300ms", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "skipped"}});
    CHECK(doc["summary"]["throttle"]["last_reason"].get<std::string>().rfind("replica " + url + " unreachable: ", 0) == 0);
    CHECK(doc["summary"]["stopped"] == "throttle-timeout");
    CHECK(attempts(p) == 0);
}

TEST_CASE("migrate --max-lock-waits and --max-active-backends wait while another backend waits on a lock",
          "[throttle][pg]") {
    Project p;
    throttle_fleet(p, {"a", "b", "c"});
    p.exec("CREATE TABLE public.hot (id int)");
    // An application's long transaction holds a lock another backend of the database waits for:
    // that backend is 'active' and waits on a heavyweight lock.
    HeldTableLock holder(p.url(), "public", "hot", "ACCESS EXCLUSIVE");
    std::thread waiter([&] {
        try {
            pqxx::connection c(p.url());
            pqxx::work tx(c);
            tx.exec("LOCK TABLE public.hot IN ACCESS SHARE MODE");
        } catch (const std::exception&) {
        }
    });
    Observer observer(p.url());
    wait_until([&] { return !observer.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE public.hot%'").empty(); },
               "a backend waiting for the table lock");

    SECTION("--max-lock-waits 0") {
        Daemon run(kMtctl + " -v --json migrate --all --concurrency 2 --max-lock-waits 0", p.dir());
        wait_until([&] { return run.err().find("[info] throttled: lock waits 1 > 0") != std::string::npos; },
                   "mtctl throttled by the lock wait");
        CHECK(!poll_until([&] { return attempts(p) > 0; }, std::chrono::milliseconds(500)));
        holder.release();
        waiter.join();
        REQUIRE(run.wait() == 0);
        const auto doc = json::parse(run.out());
        CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "migrated"}, {"c", "migrated"}});
        CHECK(doc["summary"]["throttle"]["last_reason"] == "lock waits 1 > 0");
        CHECK(doc["summary"]["throttle"]["waits"] == 1);
        CHECK(run.err().find("[info] throttle: resumed after ") != std::string::npos);
    }
    SECTION("--max-active-backends 0, and mtctl's own workers do not count") {
        Daemon run(kMtctl + " -v --json migrate --all --concurrency 3 --max-active-backends 0", p.dir());
        wait_until([&] { return run.err().find("[info] throttled: active backends 1 > 0") != std::string::npos; },
                   "mtctl throttled by the active backend");
        CHECK(!poll_until([&] { return attempts(p) > 0; }, std::chrono::milliseconds(500)));
        holder.release();
        waiter.join();
        REQUIRE(run.wait() == 0);
        const auto doc = json::parse(run.out());
        CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "migrated"}, {"c", "migrated"}});
        // The test's own queries may have been running at a probe: "1 > 0" or "2 > 0".
        const auto last = doc["summary"]["throttle"]["last_reason"].get<std::string>();
        CHECK(last.rfind("active backends ", 0) == 0);
        CHECK(last.substr(last.size() - 4) == " > 0");
        // Three workers ran at once against a limit of 0: their own backends were not counted.
        CHECK(doc["summary"]["throttle"]["waits"] == 1);
    }
}

TEST_CASE("malformed throttle values exit 2 naming the flag or the manifest key and change nothing", "[throttle][pg]") {
    Project p;
    throttle_fleet(p, {"a"});
    const auto refused = [&](const std::string& args, const std::string& message) {
        const auto r = p.mtctl(args);
        INFO(args << "\n" << r.out << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(message) != std::string::npos);
    };
    refused("migrate --all --max-replica-lag 2x",
            "--max-replica-lag 2x: expected a duration: a whole number with ms, s, m or h (for example 2s, 500ms)");
    refused("migrate --all --throttle-timeout soon",
            "--throttle-timeout soon: expected a duration: a whole number with ms, s, m or h (for example 2s, 500ms)");
    refused("migrate --all --max-lock-waits -1",
            "--max-lock-waits -1: expected a whole number of backends, 0 or more (for example 20)");
    refused("migrate --all --max-active-backends many",
            "--max-active-backends many: expected a whole number of backends, 0 or more (for example 20)");
    refused("migrate --all --concurrency fast", "--concurrency fast: expected a number of workers of at least 1, or auto");
    p.set("rollout.max_replica_lag", "soon");
    refused("migrate --all", "rollout.max_replica_lag");
    p.set("rollout.max_replica_lag", "2s");
    p.set("rollout.max_lock_waits", "-3");
    refused("migrate --all", "rollout.max_lock_waits");
    p.set("rollout.max_lock_waits", "3");
    p.set("migrations.concurrency", "lots");
    refused("migrate --all", "migrations.concurrency");
    CHECK(attempts(p) == 0);
    CHECK(p.scalar("SELECT to_regclass('public.mt_runs')::text").empty());
}

TEST_CASE("migrate --concurrency auto migrates a whole fleet and reports the worker counts it used",
          "[throttle][concurrency][pg]") {
    Project p;
    std::vector<std::string> ids;
    for (int i = 0; i < 24; ++i) ids.push_back("t" + std::to_string(100 + i));
    throttle_fleet(p, ids);
    p.migration("0001_more", "ALTER TABLE items ADD COLUMN note text;\nSELECT nextval('public.attempts');");
    const auto doc = run_json(p, "migrate --all --concurrency auto --max-lock-waits 50");
    for (const auto& [id, outcome] : outcomes(doc)) CHECK(outcome == "migrated");
    CHECK(outcomes(doc).size() == 24);
    CHECK(attempts(p) == 48);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid WHERE c.relname = 'items'") == "24");
    const auto& c = doc["summary"]["concurrency"];
    CHECK(c["mode"] == "auto");
    CHECK(c["start"] == 2);
    CHECK(c["max"].get<int>() >= 2);
    CHECK(c["max"].get<int>() <= 24);
    CHECK(c["final"].get<int>() >= 1);
    CHECK(c["final"].get<int>() <= c["max"].get<int>());
    CHECK(c["peak"].get<int>() >= c["start"].get<int>());

    // The manifest's `concurrency = auto` does the same; a flag with a number overrides it.
    p.set("migrations.concurrency", "auto");
    p.migration("0002_again", "SELECT nextval('public.attempts') AS two;");
    CHECK(run_json(p, "migrate --all")["summary"]["concurrency"]["mode"] == "auto");
    p.migration("0003_again", "SELECT nextval('public.attempts') AS three;");
    const auto fixed = run_json(p, "migrate --all --concurrency 3")["summary"]["concurrency"];
    CHECK(fixed == json({{"mode", "fixed"}, {"start", 3}, {"max", 3}, {"final", 3}, {"peak", 3}, {"adjustments", 0}}));
}

TEST_CASE("the --concurrency auto controller raises while throughput rises and backs off on throttling and latency",
          "[throttle]") {
    using Obs = mt::ConcurrencyController::Observation;
    mt::ConcurrencyController c(2, 16);
    CHECK(c.target() == 2);
    // Raised by half (at least one) while tenants per second rise by 10 % or more.
    CHECK(c.observe(Obs{10, 5, false}) == 3);
    CHECK(c.observe(Obs{15, 5, false}) == 4);
    CHECK(c.observe(Obs{20, 5, false}) == 6);
    // No gain from the last raise: back to where it was, and held there for five windows.
    CHECK(c.observe(Obs{21, 5, false}) == 4);
    for (int i = 0; i < 5; ++i) CHECK(c.observe(Obs{20, 5, false}) == 4);
    CHECK(c.observe(Obs{20, 5, false}) == 6);
    CHECK(c.observe(Obs{30, 5, false}) == 9);
    CHECK(c.peak() == 9);
    // A limit hit during the window halves it.
    CHECK(c.observe(Obs{30, 5, true}) == 4);
    for (int i = 0; i < 3; ++i) CHECK(c.observe(Obs{30, 5, false}) == 4);
    // The probe's latency more than doubled (and 20 ms above the best seen): one fewer.
    CHECK(c.observe(Obs{30, 40, false}) == 3);
    CHECK(c.observe(Obs{30, 40, false}) == 2);
    CHECK(c.observe(Obs{30, 40, false}) == 1);
    CHECK(c.observe(Obs{30, 40, false}) == 1);  // never below one
    CHECK(c.observe(Obs{30, 5, true}) == 1);

    // Never above the maximum.
    mt::ConcurrencyController small(2, 3);
    CHECK(small.observe(Obs{10, 1, false}) == 3);
    CHECK(small.observe(Obs{20, 1, false}) == 3);
    CHECK(small.observe(Obs{40, 1, false}) == 3);
    CHECK(small.max() == 3);
    mt::ConcurrencyController one(2, 1);
    CHECK(one.target() == 1);
}

TEST_CASE("throttle flags parse like the manifest's durations and counts", "[throttle]") {
    CHECK(mt::parse_duration_flag("2s", "--max-replica-lag") == std::chrono::seconds(2));
    CHECK(mt::parse_duration_flag("250ms", "--max-replica-lag") == std::chrono::milliseconds(250));
    CHECK(mt::parse_duration_flag("2m", "--throttle-timeout") == std::chrono::minutes(2));
    CHECK(mt::parse_duration_flag("1h", "--throttle-timeout") == std::chrono::hours(1));
    CHECK(mt::parse_limit("0", "--max-lock-waits") == 0);
    CHECK(mt::parse_limit("25", "--max-active-backends") == 25);
    CHECK_THROWS_WITH(mt::parse_limit("2.5", "--max-lock-waits"),
                      "--max-lock-waits 2.5: expected a whole number of backends, 0 or more (for example 20)");
    CHECK_THROWS_WITH(mt::parse_duration_flag("", "--throttle-timeout"),
                      "--throttle-timeout : expected a duration: a whole number with ms, s, m or h (for example 2s, 500ms)");
}
