// The rollout controls of seed, convert-format and sync's repairs against a real PostgreSQL
// (issue 14, docs/rollouts.md "Which command takes which control"): the canary, the error budget,
// the run ledger with --resume (after a budget stop and after kill -9), refused when the seed file
// or the target format changed or the run is another command's; and a rollout flag on an
// invocation that only reads is a usage error. Failures are deterministic: a seed fails where the
// tenant has a table fail_marker, a conversion --from name fails where the table is already in the
// hash format, a sync repair fails where a trigger refuses inserts into the tracking table.
#include "support/daemon.hpp"
#include "support/gate.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <map>

using namespace mt::test;
using nlohmann::json;

namespace {

std::string run_id(const json& doc) { return std::to_string(doc["summary"]["run_id"].get<int64_t>()); }

// The seed counts every tenant it starts in public.attempts (a sequence: not rolled back with a
// failed seed), logs the ones that commit in public.seeded, waits for the test's Gate (4242) where
// public.gate_in says so and fails where the tenant has a table fail_marker.
const std::string kSeed =
    "SELECT nextval('public.attempts');\n"
    "INSERT INTO public.seeded VALUES (current_schema());\n"
    "DO $$ BEGIN\n"
    "  IF EXISTS (SELECT 1 FROM public.gate_in WHERE schema = current_schema()) THEN\n"
    "    PERFORM pg_advisory_xact_lock(4242);\n"
    "  END IF;\n"
    "  IF to_regclass(format('%I.fail_marker', current_schema())) IS NOT NULL THEN\n"
    "    RAISE EXCEPTION 'seed refused in %', current_schema();\n"
    "  END IF;\n"
    "END $$;\n";

void seed_fleet(const Project& p, size_t n, const std::vector<std::string>& failing) {
    p.tenants(letters(n));
    p.exec("CREATE SEQUENCE public.attempts; CREATE TABLE public.seeded (schema text NOT NULL);"
           " CREATE TABLE public.gate_in (schema text PRIMARY KEY)");
    for (const auto& id : failing) p.exec("CREATE TABLE tenant_" + id + ".fail_marker ()");
    write_file(p.dir() / "seed.sql", kSeed);
}

std::string seeded(const Project& p) {
    return p.scalar("SELECT string_agg(schema, ',' ORDER BY schema) FROM public.seeded");
}

// Tenants migrated with one migration, in the name format; `in_hash` converted to hash first, so
// that a conversion --from name fails for them.
void convert_fleet(const Project& p, size_t n, const std::vector<std::string>& in_hash) {
    p.tenants(letters(n));
    p.migration("0000_one", "CREATE TABLE one (id int);");
    run_json(p, "migrate --all");
    for (const auto& id : in_hash) run_json(p, "convert-format --to hash --tenant " + id);
}

std::string format_of(const Project& p, const std::string& id) {
    return p.scalar("SELECT CASE WHEN EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'tenant_" + id +
                    "' AND table_name = '__drizzle_migrations' AND column_name = 'name') THEN 'name' ELSE 'hash' END");
}

}  // namespace

TEST_CASE("seed --canary 2: a canary failure stops the run with exit 1 and the summary says which", "[rollout][seed][pg]") {
    Project p;
    seed_fleet(p, 5, {"b"});
    const auto doc = run_json(p, "seed --file seed.sql --all --canary 2", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{
                               {"a", "ok"}, {"b", "failed"}, {"c", "skipped"}, {"d", "skipped"}, {"e", "skipped"}});
    CHECK(doc["summary"]["stopped"] == "canary-failed");
    CHECK(doc["summary"]["canary_failed"] == "b");
    CHECK(doc["summary"]["canaries"] == json({"a", "b"}));
    CHECK(doc["summary"]["held_back"] == 3);
    CHECK(doc["summary"]["skipped"] == 3);
    CHECK(doc["summary"]["stop_reason"] == "canary b failed; 3 tenants not started");
    CHECK(attempts(p) == 2);
    CHECK(seeded(p) == "tenant_a");

    // The table output: the summary line, then why it stopped.
    const auto r = p.mtctl("--no-color seed --file seed.sql --tenants c,b,d --canary b");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("seed seed.sql: 3 tenants, 0 succeeded, 1 failed, 2 skipped in ") != std::string::npos);
    CHECK(r.out.find("stopped: canary b failed; 2 tenants not started\n") != std::string::npos);
    CHECK(r.err.find("FAIL b (tenant_b) [P0001]: ERROR:  seed refused in tenant_b") != std::string::npos);
    CHECK(attempts(p) == 3);
}

TEST_CASE("seed --max-failures 2 at concurrency 1 stops after exactly 2 failures and --resume seeds exactly the rest",
          "[rollout][seed][runs][pg]") {
    Project p;
    seed_fleet(p, 7, {"b", "c", "d", "e", "f"});
    const auto first = run_json(p, "seed --file seed.sql --all --max-failures 2 --concurrency 1", 1);
    CHECK(outcomes(first) == std::map<std::string, std::string>{{"a", "ok"}, {"b", "failed"}, {"c", "failed"},
                                                                {"d", "skipped"}, {"e", "skipped"}, {"f", "skipped"},
                                                                {"g", "skipped"}});
    CHECK(first["summary"]["max_failures"] == 2);
    CHECK(first["summary"]["stopped"] == "budget-spent");
    const std::string reason = "error budget spent: 2 failed (--max-failures 2 = 2); 4 tenants not started";
    CHECK(first["summary"]["stop_reason"] == reason);
    CHECK(attempts(p) == 3);
    const auto id = run_id(first);
    CHECK(ledger_outcomes(p, id) == "a=ok b=failed c=failed d=skipped e=skipped f=skipped g=skipped");

    // The ledger: the command, the outcome and why it stopped (runs show, table and --json).
    const auto shown = run_json(p, "runs show " + id);
    CHECK(shown["command"] == "seed");
    CHECK(shown["outcome"] == "budget-spent");
    CHECK(shown["stop_reason"] == reason);
    CHECK(shown["remaining"] == 4);
    const auto text = p.mtctl("runs show " + id);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("\nstopped: " + reason + "\n") != std::string::npos);

    // Refused, exit 2 and nothing changed: a changed seed file, another command's resume.
    for (const auto& id_of_c : {"d", "e", "f"}) p.exec(std::string("DROP TABLE tenant_") + id_of_c + ".fail_marker");
    write_file(p.dir() / "seed.sql", kSeed + "SELECT 1;\n");
    const auto changed = p.mtctl("seed --resume " + id);
    INFO(changed.err);
    CHECK(changed.exit_code == 2);
    CHECK(changed.err.find("--resume " + id + ": the seed file " + (p.dir() / "seed.sql").string() + " changed since run " +
                           id + " started (fingerprint ") != std::string::npos);
    CHECK(changed.err.find(" now); a run resumes only with the file it started with: start a new run with mtctl seed "
                           "--file F (--all | --tenants …)") != std::string::npos);
    const auto other = p.mtctl("migrate --resume " + id);
    CHECK(other.exit_code == 2);
    CHECK(other.err.find("--resume " + id + ": run " + id + " is a seed run, not a migrate run; continue it with: mtctl seed --resume " +
                         id) != std::string::npos);
    CHECK(attempts(p) == 3);
    CHECK(run_json(p, "runs show " + id)["resumed"] == 0);

    // With the file as it was, the newest unfinished seed run resumes: d..g, not the failed b and c.
    write_file(p.dir() / "seed.sql", kSeed);
    const auto resumed = run_json(p, "seed --resume");
    CHECK(resumed["summary"]["run_id"] == first["summary"]["run_id"]);
    CHECK(ids_of(resumed) == std::vector<std::string>{"d", "e", "f", "g"});
    CHECK(ids_of(resumed, "ok") == std::vector<std::string>{"d", "e", "f", "g"});
    CHECK(ledger_outcomes(p, id) == "a=ok b=failed c=failed d=ok e=ok f=ok g=ok");
    CHECK(seeded(p) == "tenant_a,tenant_d,tenant_e,tenant_f,tenant_g");
    CHECK(run_json(p, "runs show " + id)["stop_reason"] == nullptr);
}

TEST_CASE("seed --resume after kill -9 of mtctl seeds exactly the tenants the ledger had not recorded as finished",
          "[rollout][seed][pg][crash]") {
    Project p;
    seed_fleet(p, 5, {});
    p.exec("INSERT INTO public.gate_in VALUES ('tenant_c')");
    Gate gate(p.url());
    Daemon run(shell_quote(MT_MTCTL) + " --no-progress --json seed --file seed.sql --all --concurrency 1", p.dir());
    // a and b are done and recorded; c waits inside its transaction.
    wait_until([&] {
        return p.scalar("SELECT to_regclass('public.mt_run_tenants')::text") != "" &&
               p.scalar("SELECT string_agg(tenant, ',' ORDER BY position) FROM public.mt_run_tenants WHERE outcome = 'ok'") == "a,b" &&
               p.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4242") == "1";
    }, "a and b recorded, c waiting at the gate");
    const auto id = p.scalar("SELECT max(id) FROM public.mt_runs");
    const auto waiting = p.scalar("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4242");
    CHECK(run.stop(SIGKILL) == 128 + SIGKILL);
    // c's orphaned backend is ended here, so that its transaction rolls back at a known point.
    p.scalar("SELECT pg_terminate_backend(" + waiting + ")");
    wait_until([&] { return p.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + waiting) == "0"; },
               "c's backend gone");
    wait_until([&] { return run_json(p, "runs")["runs"][0]["outcome"] == "interrupted"; }, "the run shown as interrupted");
    CHECK(ledger_outcomes(p, id) == "a=ok b=ok c=pending d=pending e=pending");
    gate.open();

    const auto resumed = run_json(p, "seed --resume " + id);
    CHECK(ids_of(resumed) == std::vector<std::string>{"c", "d", "e"});
    CHECK(ids_of(resumed, "ok") == std::vector<std::string>{"c", "d", "e"});
    // Every tenant seeded exactly once over the two processes.
    CHECK(seeded(p) == "tenant_a,tenant_b,tenant_c,tenant_d,tenant_e");
    CHECK(ledger_outcomes(p, id) == "a=ok b=ok c=ok d=ok e=ok");
    CHECK(run_json(p, "runs show " + id)["outcome"] == "succeeded");
}

TEST_CASE("convert-format --canary 2: a canary failure stops the run with exit 1 and converts no other tenant",
          "[rollout][convert][pg]") {
    Project p;
    convert_fleet(p, 5, {"b"});
    const auto doc = run_json(p, "convert-format --from name --to hash --all --canary 2", 1);
    CHECK(outcomes(doc) == std::map<std::string, std::string>{
                               {"a", "migrated"}, {"b", "failed"}, {"c", "skipped"}, {"d", "skipped"}, {"e", "skipped"}});
    CHECK(doc["summary"]["stopped"] == "canary-failed");
    CHECK(doc["summary"]["canary_failed"] == "b");
    CHECK(doc["summary"]["stop_reason"] == "canary b failed; 3 tenants not started");
    CHECK(format_of(p, "a") == "hash");
    for (const char* id : {"c", "d", "e"}) CHECK(format_of(p, id) == "name");

    const auto r = p.mtctl("--no-color convert-format --from name --to hash --tenants b,c --canary b");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("convert-format: 2 tenants, 0 succeeded, 1 failed, 1 skipped; 0 migrations in ") != std::string::npos);
    CHECK(r.out.find("stopped: canary b failed; 1 tenant not started\n") != std::string::npos);
    CHECK(format_of(p, "c") == "name");
}

TEST_CASE("convert-format --max-failures 2 at concurrency 1 stops after exactly 2 failures and --resume converts exactly the rest",
          "[rollout][convert][runs][pg]") {
    Project p;
    convert_fleet(p, 6, {"b", "c"});
    const auto first = run_json(p, "convert-format --from name --to hash --all --max-failures 2 --concurrency 1", 1);
    CHECK(outcomes(first) == std::map<std::string, std::string>{{"a", "migrated"}, {"b", "failed"}, {"c", "failed"},
                                                                {"d", "skipped"}, {"e", "skipped"}, {"f", "skipped"}});
    CHECK(first["summary"]["stop_reason"] == "error budget spent: 2 failed (--max-failures 2 = 2); 3 tenants not started");
    const auto id = run_id(first);
    CHECK(ledger_outcomes(p, id) == "a=migrated b=failed c=failed d=skipped e=skipped f=skipped");
    CHECK(run_json(p, "runs show " + id)["command"] == "convert-format");

    // Another target format is refused (exit 2, nothing changed).
    const auto changed = p.mtctl("convert-format --resume " + id + " --to name");
    INFO(changed.err);
    CHECK(changed.exit_code == 2);
    CHECK(changed.err.find("--resume " + id + ": run " + id + " converts to hash from name, not to name; a run resumes only "
                           "with the target format it started with: drop --to/--from, or start a new run with "
                           "mtctl convert-format --to name (--all | --tenants …)") != std::string::npos);
    for (const char* t : {"d", "e", "f"}) CHECK(format_of(p, t) == "name");

    // The run's own target format and --from: d, e and f; the failed b and c are not retried.
    const auto resumed = run_json(p, "convert-format --resume");
    CHECK(ids_of(resumed) == std::vector<std::string>{"d", "e", "f"});
    CHECK(ids_of(resumed, "migrated") == std::vector<std::string>{"d", "e", "f"});
    for (const char* t : {"d", "e", "f"}) CHECK(format_of(p, t) == "hash");
    CHECK(ledger_outcomes(p, id) == "a=migrated b=failed c=failed d=migrated e=migrated f=migrated");
    CHECK(run_json(p, "runs show " + id)["outcome"] == "failed");
}

TEST_CASE("sync --mark-missing --max-failures 2 at concurrency 1 stops after exactly 2 failed repairs and --resume repairs "
          "exactly the rest",
          "[rollout][sync][runs][pg]") {
    Project p;
    const auto ids = letters(7);
    p.tenants(ids);
    p.migration("0000_one", "CREATE TABLE one (id int);");
    run_json(p, "migrate --all");
    p.migration("0001_two", "CREATE TABLE two (id int);");
    p.exec("CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS"
           " $$ BEGIN RAISE EXCEPTION 'record refused in %', TG_TABLE_SCHEMA; END $$");
    for (const char* id : {"b", "c", "d", "e", "f"})
        p.exec(std::string("CREATE TRIGGER refuse BEFORE INSERT ON tenant_") + id +
               ".__drizzle_migrations FOR EACH ROW EXECUTE FUNCTION public.refuse()");
    const auto first = run_json(p, "--migrations.concurrency=1 sync --mark-missing --all --max-failures 2", 1);
    CHECK(outcomes(first) == std::map<std::string, std::string>{{"a", "repaired"}, {"b", "failed"}, {"c", "failed"},
                                                                {"d", "skipped"}, {"e", "skipped"}, {"f", "skipped"},
                                                                {"g", "skipped"}});
    CHECK(first["summary"]["skipped"] == 4);
    CHECK(first["summary"]["marked"] == 1);
    CHECK(first["summary"]["stopped"] == "budget-spent");
    CHECK(first["summary"]["stop_reason"] == "error budget spent: 2 failed (--max-failures 2 = 2); 4 tenants not started");
    const auto id = run_id(first);
    CHECK(ledger_outcomes(p, id) == "a=repaired b=failed c=failed d=skipped e=skipped f=skipped g=skipped");
    CHECK(p.scalar("SELECT count(*) FROM tenant_d.__drizzle_migrations") == "1");

    const auto text = p.mtctl("--no-color sync --resume " + id + " --clean-orphans");
    CHECK(text.exit_code == 2);
    CHECK(text.err.find("--resume " + id + ": run " + id + " repairs with --mark-missing; a run resumes only with its own "
                        "repairs: drop --mark-missing/--clean-orphans") != std::string::npos);

    for (const char* t : {"d", "e", "f"}) p.exec(std::string("DROP TRIGGER refuse ON tenant_") + t + ".__drizzle_migrations");
    const auto resumed = run_json(p, "sync --resume");
    CHECK(ids_of(resumed) == std::vector<std::string>{"d", "e", "f", "g"});
    CHECK(ids_of(resumed, "repaired") == std::vector<std::string>{"d", "e", "f", "g"});
    CHECK(resumed["summary"]["marked"] == 4);
    CHECK(ledger_outcomes(p, id) == "a=repaired b=failed c=failed d=repaired e=repaired f=repaired g=repaired");
    CHECK(p.scalar("SELECT count(*) FROM tenant_d.__drizzle_migrations") == "2");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "1");
    CHECK(run_json(p, "runs show " + id)["command"] == "sync");
}

TEST_CASE("a rollout flag on an invocation that only reads is a usage error naming the flag (exit 2)", "[rollout][sync][convert][pg]") {
    Project p;
    p.tenants({"a", "b"});
    p.migration("0000_one", "CREATE TABLE one (id int);");
    auto refused = [&](const std::string& args, const std::string& message) {
        const auto r = p.mtctl(args);
        INFO(args << "\n" << r.out << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(message) != std::string::npos);
    };
    refused("sync --max-failures 1", "--max-failures: sync without --mark-missing / --clean-orphans only reads; the rollout "
                                     "flags apply to a repair of tenants (nothing was changed)");
    refused("sync --status --max-replica-lag 2s", "--max-replica-lag: sync without --mark-missing / --clean-orphans only reads");
    refused("sync --mark-missing --dry-run --max-lock-waits 3", "--max-lock-waits: sync --dry-run changes nothing; the rollout "
                                                                "flags apply to a repair of tenants (nothing was changed)");
    refused("sync --status --resume", "--resume continues a repair run: drop --status (nothing was changed)");
    refused("sync --mark-missing --canary 1", "mtctl sync: unrecognised option '--canary' (see mtctl sync --help)");
    refused("convert-format --to hash --all --dry-run --canary 1",
            "--canary: convert-format --dry-run changes nothing; the rollout flags apply to a conversion of tenants "
            "(nothing was changed)");
    refused("convert-format --to hash --all --dry-run --max-failures 1", "--max-failures: convert-format --dry-run changes nothing");
    refused("migrate --all --dry-run --waves 1,100%", "--waves: migrate --dry-run changes nothing; the rollout flags apply "
                                                       "to a run that migrates (nothing was changed)");
    refused("seed --all --canary 1", "--file F is required: the SQL file to run in each tenant (nothing was run)");
    CHECK(p.scalar("SELECT to_regclass('public.mt_runs')::text").empty());
    CHECK(p.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = '__drizzle_migrations'") == "0");
}
