// migrate's rollout controls against a real PostgreSQL (issue 14, SPEC §11): --canary, --waves
// (--seed), --max-failures. Failures are injected by a migration that raises for the schemas
// listed in public.fail_in; public.attempts counts every tenant that started (a sequence is not
// rolled back with the failed migration), so "no other tenant started" is checked on the server.
#include "support/daemon.hpp"
#include "support/gate.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>

using namespace mt::test;
using nlohmann::json;

namespace {

// Tenants with one migration that counts its start, fails where public.fail_in says so, and waits
// for the test's advisory lock 4242 where public.gate_in says so.
void rollout_fleet(const Project& p, const std::vector<std::string>& ids, const std::vector<std::string>& failing) {
    p.tenants(ids);
    p.exec("CREATE SEQUENCE public.attempts; CREATE TABLE public.fail_in (schema text PRIMARY KEY);"
           " CREATE TABLE public.gate_in (schema text PRIMARY KEY)");
    for (const auto& id : failing) p.exec("INSERT INTO public.fail_in VALUES ($1)", {"tenant_" + id});
    p.migration("0000_items",
                "SELECT nextval('public.attempts');\n"
                "CREATE TABLE items (id int);\n"
                "DO $$ BEGIN\n"
                "  IF EXISTS (SELECT 1 FROM public.gate_in WHERE schema = current_schema()) THEN\n"
                "    PERFORM pg_advisory_xact_lock(4242);\n"
                "  END IF;\n"
                "  IF EXISTS (SELECT 1 FROM public.fail_in WHERE schema = current_schema()) THEN\n"
                "    RAISE EXCEPTION 'injected failure in %', current_schema();\n"
                "  END IF;\n"
                "END $$;");
}

// Tenants started so far (successful or not).
using mt::test::Gate;

bool someone_waits_at_gate(const Project& p) {
    return p.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4242"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") == "1";
}

}  // namespace

TEST_CASE("migrate --canary 2 runs the first two tenants alone and a canary failure stops the run with exit 1",
          "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(5), {"b"});
    const auto doc = run_json(p, "migrate --all --canary 2", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{
                               {"a", "migrated"}, {"b", "failed"}, {"c", "skipped"}, {"d", "skipped"}, {"e", "skipped"}});
    CHECK(doc["summary"]["stopped"] == "canary-failed");
    CHECK(doc["summary"]["canary_failed"] == "b");
    CHECK(doc["summary"]["canaries"] == json({"a", "b"}));
    CHECK(doc["summary"]["held_back"] == 3);
    CHECK(doc["summary"]["stop_reason"] == "canary b failed; 3 tenants not started");
    CHECK(attempts(p) == 2);

    // The table output says the same, in one line after the summary.
    p.exec("DELETE FROM public.fail_in");
    p.exec("INSERT INTO public.fail_in VALUES ('tenant_c')");
    const auto r = p.mtctl("--no-color migrate --tenants c,d,e --canary 1");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("migrate: 3 tenants, 0 succeeded, 1 failed, 2 skipped; 0 migrations in") != std::string::npos);
    CHECK(r.out.find("stopped: canary c failed; 2 tenants not started\n") != std::string::npos);
    CHECK(r.err.find("FAIL c (tenant_c) at 0000_items: 0000_items.sql: ERROR:  injected failure in tenant_c") !=
          std::string::npos);
    CHECK(attempts(p) == 3);
}

TEST_CASE("migrate --canary with ids runs them one after another in the order given and stops at the first failure",
          "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(5), {"d"});
    const auto doc = run_json(p, "migrate --all --canary d,a", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{
                               {"a", "skipped"}, {"b", "skipped"}, {"c", "skipped"}, {"d", "failed"}, {"e", "skipped"}});
    CHECK(doc["summary"]["canary_failed"] == "d");
    CHECK(doc["summary"]["stop_reason"] == "canary d failed; 4 tenants not started");
    // a, the second canary, never started.
    CHECK(attempts(p) == 1);
}

TEST_CASE("migrate --canary that passes goes on with every other tenant", "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(4), {});
    const auto doc = run_json(p, "migrate --all --canary 1 --concurrency 3");
    CHECK(doc["summary"]["succeeded"] == 4);
    CHECK(doc["summary"]["stopped"] == nullptr);
    CHECK(doc["summary"]["stop_reason"] == nullptr);
    CHECK(doc["summary"]["canaries"] == json({"a"}));
    CHECK(attempts(p) == 4);
}

TEST_CASE("migrate --canary and --waves refuse bad values with exit 2 and change nothing", "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(3), {});
    auto refused = [&](const std::string& args, const std::string& message) {
        const auto r = p.mtctl("migrate --all " + args);
        INFO(args << "\n" << r.out << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(message) != std::string::npos);
    };
    refused("--canary zz", "--canary zz: not among the selected tenants; a canary must be one of the tenants the run "
                           "migrates (check the id with: mtctl tenant list)");
    refused("--waves 10%,5%", "--waves 10%,5%: wave sizes are cumulative, so each must be larger than the one before (10% then 5%)");
    refused("--waves 1,x", "--waves x: expected a number of tenants (3) or a percentage of them (10%)");
    refused("--waves 150%", "--waves 150%: a percentage is at most 100%");
    refused("--max-failures 0", "--max-failures 0: must be at least 1");
    refused("--seed 3", "--seed shuffles the order of --waves; give --waves too");
    CHECK(attempts(p) == 0);
    CHECK(p.scalar("SELECT to_regclass('public.mt_runs')::text").empty());
}

TEST_CASE("migrate --waves runs cumulative waves and a wave with a failure stops the later ones when no budget is set",
          "[rollout][pg]") {
    Project p;
    // 10 tenants: wave 1 = 1 tenant, wave 2 up to 30% = 2 more, wave 3 the other 7.
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) ids.push_back("t" + std::to_string(i));
    rollout_fleet(p, ids, {"t2"});
    const auto doc = run_json(p, "migrate --all --waves 1,30%,100% --concurrency 4", 1);
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["skipped"] == 7);
    CHECK(doc["summary"]["waves"] == json({{"planned", 3}, {"started", 2}}));
    CHECK(doc["summary"]["stopped"] == "wave-failed");
    CHECK(doc["summary"]["stop_reason"] == "wave 2 of 3 had failures and no --max-failures allows any; 7 tenants not started");
    const auto o = outcomes(doc);
    CHECK(o.at("t0") == "migrated");
    CHECK(o.at("t1") == "migrated");
    CHECK(o.at("t2") == "failed");
    for (int i = 3; i < 10; ++i) CHECK(o.at("t" + std::to_string(i)) == "skipped");
    CHECK(attempts(p) == 3);

    // With a budget the failure is allowed and the last wave runs.
    const auto again = run_json(p, "migrate --all --waves 1,30%,100% --max-failures 2", 1);
    CHECK(again["summary"]["succeeded"] == 9);
    CHECK(again["summary"]["failed"] == 1);
    CHECK(again["summary"]["stopped"] == nullptr);
    // t0 and t1 are up to date: the waves cut the 8 tenants left (1, then up to 3, then the rest).
    CHECK(again["summary"]["waves"] == json({{"planned", 3}, {"started", 3}}));
}

TEST_CASE("migrate --waves that end before 100% migrate only those tenants and exit 0", "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(10), {});
    const auto doc = run_json(p, "migrate --all --waves 1,20%");
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["summary"]["skipped"] == 8);
    CHECK(doc["summary"]["stopped"] == "waves-ended");
    CHECK(doc["summary"]["stop_reason"] ==
          "the last wave (20%) ends before every tenant; 8 tenants not started (continue with: mtctl migrate --resume)");
    CHECK(outcomes(doc).at("b") == "migrated");
    CHECK(attempts(p) == 2);
}

TEST_CASE("migrate --waves --seed shuffles the wave order the same way for the same seed", "[rollout][pg]") {
    Project p;
    const auto ids = letters(10);
    // Every tenant fails: the first wave's one tenant fails and no other starts, so the failed
    // tenant is the first of the order, and a rerun finds the fleet as it was.
    rollout_fleet(p, ids, ids);
    auto first_of = [&](const std::string& flags) {
        const auto doc = run_json(p, "migrate --all --waves 1,100% " + flags, 1);
        REQUIRE(doc["summary"]["failed"] == 1);
        for (const auto& t : doc["tenants"])
            if (t["outcome"] == "failed") return t["id"].get<std::string>();
        return std::string();
    };
    CHECK(first_of("") == "a");
    const auto with_7 = first_of("--seed 7");
    CHECK(first_of("--seed 7") == with_7);
    std::set<std::string> firsts;
    for (int seed = 1; seed <= 6; ++seed) firsts.insert(first_of("--seed " + std::to_string(seed)));
    CHECK(firsts.size() > 1);
    CHECK(attempts(p) == 9);
}

TEST_CASE("migrate --max-failures 2 at concurrency 1 stops after exactly 2 failures and skips the rest", "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(7), {"b", "c", "d", "e", "f"});
    const auto doc = run_json(p, "migrate --all --max-failures 2 --concurrency 1", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "failed"}, {"c", "failed"},
                                                              {"d", "skipped"}, {"e", "skipped"}, {"f", "skipped"},
                                                              {"g", "skipped"}});
    CHECK(doc["summary"]["failed"] == 2);
    CHECK(doc["summary"]["skipped"] == 4);
    CHECK(doc["summary"]["held_back"] == 4);
    CHECK(doc["summary"]["max_failures"] == 2);
    CHECK(doc["summary"]["stopped"] == "budget-spent");
    CHECK(doc["summary"]["stop_reason"] == "error budget spent: 2 failed (--max-failures 2 = 2); 4 tenants not started");
    CHECK(attempts(p) == 3);

    // A percentage of the tenants to migrate, rounded up: 20% of the 6 left is 2.
    const auto r = p.mtctl("--no-color migrate --all --max-failures 20% --concurrency 1");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("migrate: 7 tenants, 1 succeeded, 2 failed, 4 skipped; 0 migrations in") != std::string::npos);
    CHECK(r.out.find("stopped: error budget spent: 2 failed (--max-failures 20% = 2); 4 tenants not started\n") !=
          std::string::npos);
    CHECK(attempts(p) == 5);
}

TEST_CASE("migrate --max-failures at concurrency 2: a tenant running when the budget runs out finishes, no new one starts",
          "[rollout][pg]") {
    Project p;
    rollout_fleet(p, letters(5), {"b"});
    p.exec("INSERT INTO public.gate_in VALUES ('tenant_a')");
    Gate gate(p.url());
    Daemon run(shell_quote(MT_MTCTL) + " --no-progress --json migrate --all --concurrency 2 --max-failures 1", p.dir());
    // a waits at the gate while b, on the other worker, fails and spends the budget.
    wait_until([&] { return someone_waits_at_gate(p); }, "tenant a waiting at the gate");
    wait_until([&] { return attempts(p) == 2 && p.scalar("SELECT count(*) FROM public.mt_run_tenants WHERE outcome = 'failed'") == "1"; },
               "tenant b recorded as failed");
    gate.open();
    REQUIRE(run.wait() == 1);
    const auto doc = json::parse(run.out());
    CHECK(outcomes(doc) == std::map<std::string, std::string>{
                               {"a", "migrated"}, {"b", "failed"}, {"c", "skipped"}, {"d", "skipped"}, {"e", "skipped"}});
    CHECK(doc["summary"]["stop_reason"] == "error budget spent: 1 failed (--max-failures 1 = 1); 3 tenants not started");
    CHECK(attempts(p) == 2);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "0");
}

TEST_CASE("migrate --max-failures at concurrency 3 with every tenant failing fails at most budget + 2 and starts no other",
          "[rollout][pg]") {
    Project p;
    const auto ids = letters(12);
    rollout_fleet(p, ids, ids);
    const auto doc = run_json(p, "migrate --all --concurrency 3 --max-failures 2", 1);
    const int failed = doc["summary"]["failed"].get<int>();
    CHECK(failed >= 2);
    CHECK(failed <= 4);
    CHECK(doc["summary"]["skipped"] == 12 - failed);
    CHECK(attempts(p) == failed);
}
