// The run ledger against a real PostgreSQL (issue 14, SPEC §11): mt_runs / mt_run_tenants in the
// shared schema, `mtctl runs [show ID]`, and `migrate --resume [RUN]` after a budget stop and after
// kill -9 of mtctl, refused when the migration folder changed since.
#include "support/daemon.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>

using namespace mt::test;
using nlohmann::json;

namespace {

// Tenants a.. with one migration that logs itself in public.ran (in its own transaction, so only a
// committed run leaves a row), fails for the schemas in public.fail_in and waits for the test's
// advisory lock 4343 in the schemas in public.gate_in. The folder stays the same while the test
// changes which tenants fail or wait.
void ledger_fleet(const Project& p, size_t n) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < n; ++i) ids.push_back(std::string(1, static_cast<char>('a' + i)));
    p.tenants(ids);
    p.exec("CREATE TABLE public.ran (schema text NOT NULL); CREATE TABLE public.fail_in (schema text PRIMARY KEY);"
           " CREATE TABLE public.gate_in (schema text PRIMARY KEY)");
    p.migration("0000_logged",
                "INSERT INTO public.ran VALUES (current_schema());\n"
                "DO $$ BEGIN\n"
                "  IF EXISTS (SELECT 1 FROM public.gate_in WHERE schema = current_schema()) THEN\n"
                "    PERFORM pg_advisory_xact_lock(4343);\n"
                "  END IF;\n"
                "  IF EXISTS (SELECT 1 FROM public.fail_in WHERE schema = current_schema()) THEN\n"
                "    RAISE EXCEPTION 'injected failure in %', current_schema();\n"
                "  END IF;\n"
                "END $$;");
}

}  // namespace

TEST_CASE("every migrate run is recorded in mt_runs and mt_run_tenants and shown by mtctl runs", "[rollout][pg]") {
    Project p;
    ledger_fleet(p, 3);
    const auto doc = run_json(p, "migrate --all");
    REQUIRE(doc["summary"]["run_id"].is_number());
    const auto id = std::to_string(doc["summary"]["run_id"].get<int64_t>());
    CHECK(ledger_outcomes(p, id) == "a=migrated b=migrated c=migrated");
    CHECK(p.scalar("SELECT count(*) FROM public.mt_run_tenants WHERE run_id = " + id +
                   " AND started_at <= finished_at AND finished_at IS NOT NULL") == "3");

    const auto list = run_json(p, "runs");
    REQUIRE(list["runs"].size() == 1);
    const auto& run = list["runs"][0];
    CHECK(run["id"] == doc["summary"]["run_id"]);
    CHECK(run["command"] == "migrate");
    CHECK(run["outcome"] == "succeeded");
    CHECK(run["tenants"] == 3);
    CHECK(run["remaining"] == 0);
    CHECK(run["folder_fingerprint"].get<std::string>().size() == 64);
    CHECK(run["options"]["all"] == true);
    CHECK(!run["host"].get<std::string>().empty());
    CHECK(run["finished_at"].is_string());

    const auto shown = run_json(p, "runs show " + id);
    REQUIRE(shown["tenant_outcomes"].size() == 3);
    CHECK(shown["tenant_outcomes"][1]["tenant"] == "b");
    CHECK(shown["tenant_outcomes"][1]["outcome"] == "migrated");
    CHECK(shown["tenant_outcomes"][1]["started_at"].is_string());

    const auto table = p.mtctl("runs");
    CHECK(table.exit_code == 0);
    CHECK(table.out.rfind("RUN  COMMAND  OUTCOME    STARTED", 0) == 0);
    const auto text = p.mtctl("runs show " + id);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("3 tenants: 3 finished (0 failed), 0 remaining\n") != std::string::npos);

    const auto missing = p.mtctl("runs show 999");
    CHECK(missing.exit_code == 2);
    CHECK(missing.err.find("runs show 999: no such run; list them with: mtctl runs") != std::string::npos);
    // A dry run records nothing.
    run_json(p, "migrate --all --dry-run");
    CHECK(p.scalar("SELECT count(*) FROM public.mt_runs") == "1");
}

TEST_CASE("mtctl runs without any recorded run says so and migrate --resume refuses with exit 2", "[rollout][pg]") {
    Project p;
    ledger_fleet(p, 2);
    const auto r = p.mtctl("runs");
    CHECK(r.exit_code == 0);
    CHECK(r.out == "no runs recorded yet\n");
    const auto resume = p.mtctl("migrate --resume");
    CHECK(resume.exit_code == 2);
    CHECK(resume.err.find("--resume: no run was ever recorded (public.mt_runs does not exist); start one with: mtctl migrate --all") !=
          std::string::npos);
    const auto both = p.mtctl("migrate --all --resume");
    CHECK(both.exit_code == 2);
    CHECK(both.err.find("--resume continues a run with its own tenants: drop --all/--tenant/--tenants") != std::string::npos);
}

TEST_CASE("migrate --resume continues a budget-stopped run with exactly the tenants it had not started", "[rollout][pg]") {
    Project p;
    ledger_fleet(p, 6);
    p.exec("INSERT INTO public.fail_in VALUES ('tenant_b')");
    const auto first = run_json(p, "migrate --all --concurrency 1 --max-failures 1", 1);
    const auto id = std::to_string(first["summary"]["run_id"].get<int64_t>());
    CHECK(ledger_outcomes(p, id) == "a=migrated b=failed c=skipped d=skipped e=skipped f=skipped");
    CHECK(run_json(p, "runs")["runs"][0]["outcome"] == "budget-spent");

    // The cause is fixed outside the folder; resume takes the newest unfinished run by default.
    p.exec("DELETE FROM public.fail_in");
    const auto resumed = run_json(p, "migrate --resume");
    CHECK(resumed["summary"]["run_id"] == first["summary"]["run_id"]);
    CHECK(ids_of(resumed) == std::vector<std::string>{"c", "d", "e", "f"});
    CHECK(ids_of(resumed, "migrated") == std::vector<std::string>{"c", "d", "e", "f"});
    CHECK(ledger_outcomes(p, id) == "a=migrated b=failed c=migrated d=migrated e=migrated f=migrated");
    const auto run = run_json(p, "runs show " + id);
    CHECK(run["outcome"] == "failed");  // b failed in its first part
    CHECK(run["resumed"] == 1);
    CHECK(run["remaining"] == 0);
    CHECK(p.scalar("SELECT string_agg(schema, ',' ORDER BY schema) FROM public.ran") ==
          "tenant_a,tenant_c,tenant_d,tenant_e,tenant_f");

    const auto again = p.mtctl("migrate --resume " + id);
    CHECK(again.exit_code == 2);
    CHECK(again.err.find("--resume " + id + ": run " + id + " has no unfinished tenants (outcome failed); nothing to resume") !=
          std::string::npos);
    const auto none = p.mtctl("migrate --resume");
    CHECK(none.exit_code == 2);
    CHECK(none.err.find("--resume: no unfinished run to resume; list runs with: mtctl runs") != std::string::npos);
    const auto unknown = p.mtctl("migrate --resume 77");
    CHECK(unknown.exit_code == 2);
    CHECK(unknown.err.find("--resume 77: no such run; list them with: mtctl runs") != std::string::npos);
}

TEST_CASE("migrate --resume refuses with exit 2 when the migration folder changed since the run started", "[rollout][pg]") {
    Project p;
    ledger_fleet(p, 4);
    p.exec("INSERT INTO public.fail_in VALUES ('tenant_a')");
    const auto first = run_json(p, "migrate --all --concurrency 1 --max-failures 1", 1);
    const auto id = std::to_string(first["summary"]["run_id"].get<int64_t>());
    p.migration("0001_more", "CREATE TABLE more (id int);");
    const auto before = ledger_outcomes(p, id);
    const auto r = p.mtctl("migrate --resume " + id);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--resume " + id + ": the migration folder " + (p.dir() / "drizzle/tenant").string() + " changed since run " + id +
                     " started (fingerprint ") != std::string::npos);
    CHECK(r.err.find(" now); a run resumes only with the migrations it started with: start a new run with mtctl migrate "
                     "(--all | --tenants …)") != std::string::npos);
    CHECK(ledger_outcomes(p, id) == before);
    CHECK(p.scalar("SELECT count(*) FROM public.ran") == "0");
    CHECK(run_json(p, "runs show " + id)["resumed"] == 0);
}

TEST_CASE("migrate --resume after kill -9 of mtctl runs exactly the tenants the ledger had not recorded as finished",
          "[rollout][pg][crash]") {
    Project p;
    ledger_fleet(p, 6);
    p.exec("INSERT INTO public.gate_in VALUES ('tenant_c')");
    std::optional<pqxx::connection> gate(std::in_place, p.url());
    {
        pqxx::nontransaction tx(*gate);
        tx.exec("SELECT pg_advisory_lock(4343)");
    }
    Daemon run(shell_quote(MT_MTCTL) + " --no-progress --json migrate --all --concurrency 1", p.dir());
    // a and b are done and recorded; c waits inside its migration's transaction.
    wait_until([&] {
        return p.scalar("SELECT to_regclass('public.mt_run_tenants')::text") != "" &&
               p.scalar("SELECT string_agg(tenant, ',' ORDER BY position) FROM public.mt_run_tenants WHERE outcome = 'migrated'") == "a,b" &&
               p.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4343") == "1";
    }, "a and b recorded, c waiting at the gate");
    const auto id = p.scalar("SELECT max(id) FROM public.mt_runs");
    const auto waiting = p.scalar("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4343");
    CHECK(run.stop(SIGKILL) == 128 + SIGKILL);
    // The orphaned backend of c's transaction would finish once the gate opens and only then notice its
    // client is gone; ending it here rolls c back at a known point.
    p.scalar("SELECT pg_terminate_backend(" + waiting + ")");
    wait_until([&] { return p.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + waiting) == "0"; },
               "c's backend gone");
    wait_until([&] { return run_json(p, "runs")["runs"][0]["outcome"] == "interrupted"; }, "the run shown as interrupted");
    CHECK(ledger_outcomes(p, id) == "a=migrated b=migrated c=pending d=pending e=pending f=pending");
    gate.reset();

    const auto resumed = run_json(p, "migrate --resume");
    CHECK(resumed["summary"]["run_id"].get<int64_t>() == std::stoll(id));
    CHECK(ids_of(resumed) == std::vector<std::string>{"c", "d", "e", "f"});
    CHECK(ids_of(resumed, "migrated") == std::vector<std::string>{"c", "d", "e", "f"});
    // Every tenant's migration committed exactly once over the two processes.
    CHECK(p.scalar("SELECT string_agg(schema || ':' || n, ',' ORDER BY schema) FROM"
                   " (SELECT schema, count(*) n FROM public.ran GROUP BY schema) s") ==
          "tenant_a:1,tenant_b:1,tenant_c:1,tenant_d:1,tenant_e:1,tenant_f:1");
    CHECK(ledger_outcomes(p, id) == "a=migrated b=migrated c=migrated d=migrated e=migrated f=migrated");
    const auto shown = run_json(p, "runs show " + id);
    CHECK(shown["outcome"] == "succeeded");
    CHECK(shown["resumed"] == 1);
}

TEST_CASE("migrate --resume refuses with exit 2 while the run is still running", "[rollout][pg]") {
    Project p;
    ledger_fleet(p, 3);
    p.exec("INSERT INTO public.gate_in VALUES ('tenant_b')");
    std::optional<pqxx::connection> gate(std::in_place, p.url());
    {
        pqxx::nontransaction tx(*gate);
        tx.exec("SELECT pg_advisory_lock(4343)");
    }
    Daemon run(shell_quote(MT_MTCTL) + " --no-progress --json migrate --all --concurrency 1", p.dir());
    wait_until([&] { return p.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4343") == "1"; },
               "b waiting at the gate");
    const auto id = p.scalar("SELECT max(id) FROM public.mt_runs");
    CHECK(run_json(p, "runs")["runs"][0]["outcome"] == "running");
    const auto r = p.mtctl("migrate --resume " + id);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--resume " + id + ": run " + id + " is still running (host ") != std::string::npos);
    CHECK(r.err.find("); wait for it to finish or stop it first") != std::string::npos);
    gate.reset();
    CHECK(run.wait() == 0);
    CHECK(ledger_outcomes(p, id) == "a=migrated b=migrated c=migrated");
}
