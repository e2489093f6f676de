// Bounded waits for the tenant lock (issue 10 item 5): every command that takes a tenant's advisory
// lock gives up after migrations.lock_timeout with exit 1, names the session holding it, changes
// nothing for that tenant, and goes on with the others; once the lock is free a rerun succeeds.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>

using namespace mt::test;
using nlohmann::json;
using Catch::Matchers::Contains;

namespace {

constexpr const char* kHolderName = "lock-holder-test";

// Another session holding a tenant's lock under the key every mtctl command uses, at session
// level or inside an open transaction.
class LockHolder {
public:
    enum class Level { session, transaction };

    LockHolder(const Project& p, const std::string& schema, Level level = Level::session) : conn_(p.url()) {
        {
            pqxx::nontransaction tx(conn_);
            tx.exec0(std::string("SET application_name = '") + kHolderName + "'");
            pid_ = tx.exec1("SELECT pg_backend_pid()")[0].as<std::string>();
            if (level == Level::session)
                tx.exec_params1("SELECT pg_advisory_lock(hashtext(current_database()), hashtext($1))", schema);
        }
        if (level == Level::transaction) {
            xact_.emplace(conn_);
            xact_->exec_params1("SELECT pg_advisory_xact_lock(hashtext(current_database()), hashtext($1))", schema);
        }
    }

    const std::string& pid() const { return pid_; }

    void release() {
        if (xact_) {
            xact_->abort();
            xact_.reset();
        }
        pqxx::nontransaction tx(conn_);
        tx.exec1("SELECT pg_advisory_unlock_all()");
    }

private:
    pqxx::connection conn_;
    std::string pid_;
    std::optional<pqxx::work> xact_;
};

struct Timed {
    RunResult result;
    std::chrono::milliseconds elapsed;
};

// mtctl with a 300ms lock_timeout, killed by `timeout` (exit 124) if it waited without bound.
Timed mtctl_bounded(const Project& p, const std::string& args) {
    const auto start = std::chrono::steady_clock::now();
    auto r = run("cd " + shell_quote(p.dir().string()) + " && timeout 60 " + shell_quote(MT_MTCTL) +
                 " --no-color --migrations.lock_timeout=300ms " + args);
    return {std::move(r), std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)};
}

// The refusal names the tenant, its schema, the holder's pid and application_name, and the bound.
void check_names_holder(const std::string& message, const std::string& tenant, const LockHolder& holder) {
    CHECK_THAT(message, Contains("tenant " + tenant + ": schema \"tenant_" + tenant + "\" is locked by pid " +
                                 holder.pid() + " ("));
    CHECK_THAT(message, Contains(std::string("application_name \"") + kHolderName + "\""));
    CHECK_THAT(message, Contains("gave up after migrations.lock_timeout=300ms"));
    CHECK_THAT(message, Contains("raise migrations.lock_timeout"));
}

// Exit 1 within a few seconds (one 300ms wait, no retry), naming the holder.
void check_gave_up(const Timed& t, const std::string& tenant, const LockHolder& holder) {
    INFO("stdout: " << t.result.out << "\nstderr: " << t.result.err);
    REQUIRE(t.result.exit_code == 1);
    CHECK(t.elapsed < std::chrono::seconds(10));
    check_names_holder(t.result.out + t.result.err, tenant, holder);
}

void two_migrations(const Project& p) {
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);");
    p.migration("0001_users_name", "ALTER TABLE users ADD COLUMN name text;");
}

// Tracking rows of a schema; "none" when it has no tracking table.
std::string tracked_names_or_none(const Project& p, const std::string& schema) {
    if (p.scalar("SELECT to_regclass('" + schema + ".__drizzle_migrations')::text").empty()) return "none";
    return p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM " + schema + ".__drizzle_migrations");
}

}  // namespace

TEST_CASE("migrate --tenant gives up after lock_timeout and names the transaction holding the lock", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme"});
    LockHolder holder(p, "tenant_acme", LockHolder::Level::transaction);

    const auto t = mtctl_bounded(p, "migrate --tenant acme");
    check_gave_up(t, "acme", holder);
    CHECK_THAT(t.result.out + t.result.err, Contains("state \"idle in transaction\", held in a transaction open for "));
    CHECK(tracked_names_or_none(p, "tenant_acme") == "none");
    CHECK(p.scalar("SELECT to_regclass('tenant_acme.users')::text").empty());

    holder.release();
    const auto again = mtctl_bounded(p, "migrate --tenant acme");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users,0001_users_name");
}

TEST_CASE("migrate of several tenants migrates the others when one tenant is locked", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"a", "b", "c"});
    LockHolder holder(p, "tenant_b");

    const auto t = mtctl_bounded(p, "--json migrate --all");
    INFO("stdout: " << t.result.out << "\nstderr: " << t.result.err);
    REQUIRE(t.result.exit_code == 1);
    const auto doc = json::parse(t.result.out);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["tenants"][0]["outcome"] == "migrated");
    CHECK(doc["tenants"][2]["outcome"] == "migrated");
    CHECK(doc["tenants"][1]["id"] == "b");
    CHECK(doc["tenants"][1]["outcome"] == "failed");
    CHECK(doc["tenants"][1]["sqlstate"] == "55P03");
    CHECK(doc["tenants"][1]["failed_migration"].is_null());
    check_names_holder(doc["tenants"][1]["error"].get<std::string>(), "b", holder);
    CHECK_THAT(doc["tenants"][1]["error"].get<std::string>(), Contains("held at session level by a session connected "));
    CHECK(tracked_names_or_none(p, "tenant_a") == "0000_users,0001_users_name");
    CHECK(tracked_names_or_none(p, "tenant_b") == "none");
    CHECK(tracked_names_or_none(p, "tenant_c") == "0000_users,0001_users_name");

    holder.release();
    const auto again = run_json(p, "migrate --all");
    CHECK(again["tenants"][1]["outcome"] == "migrated");
    CHECK(tracked_names_or_none(p, "tenant_b") == "0000_users,0001_users_name");
}

TEST_CASE("migrate of a -- mt:no-transaction file gives up at the session-level lock", "[locks][pg]") {
    Project p;
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);");
    p.migration("0001_users_email_idx",
                "-- mt:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);");
    p.tenants({"acme"});
    run_json(p, "migrate --tenant acme --to 0000_users");
    LockHolder holder(p, "tenant_acme");

    const auto t = mtctl_bounded(p, "migrate --tenant acme");
    check_gave_up(t, "acme", holder);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users");
    CHECK(p.scalar("SELECT to_regclass('tenant_acme.users_email_idx')::text").empty());

    holder.release();
    const auto again = mtctl_bounded(p, "migrate --tenant acme");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users,0001_users_email_idx");
    CHECK(p.scalar("SELECT to_regclass('tenant_acme.users_email_idx')::text") == "tenant_acme.users_email_idx");
}

TEST_CASE("sync --mark-missing gives up on a locked tenant and records nothing", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme"});
    run_json(p, "migrate --tenant acme");
    p.exec("DELETE FROM tenant_acme.__drizzle_migrations WHERE name = '0001_users_name'");
    LockHolder holder(p, "tenant_acme");

    const auto t = mtctl_bounded(p, "sync --mark-missing --tenant acme");
    check_gave_up(t, "acme", holder);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users");

    holder.release();
    const auto again = mtctl_bounded(p, "sync --mark-missing --tenant acme");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users,0001_users_name");
}

TEST_CASE("seed --file gives up on a locked tenant and runs nothing there", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme", "globex"});
    run_json(p, "migrate --all");
    write_file(p.dir() / "seed.sql", "INSERT INTO users (email) VALUES ('seeded@example.com');\n");
    LockHolder holder(p, "tenant_globex");

    const auto t = mtctl_bounded(p, "seed --file seed.sql --tenants acme,globex");
    check_gave_up(t, "globex", holder);
    CHECK(p.scalar("SELECT count(*) FROM tenant_acme.users") == "1");
    CHECK(p.scalar("SELECT count(*) FROM tenant_globex.users") == "0");

    holder.release();
    const auto again = mtctl_bounded(p, "seed --file seed.sql --tenant globex");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(p.scalar("SELECT count(*) FROM tenant_globex.users") == "1");
}

TEST_CASE("tenant clone gives up when the target's lock is held and creates nothing", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme"});
    run_json(p, "migrate --tenant acme");
    LockHolder holder(p, "tenant_copy");

    const auto t = mtctl_bounded(p, "tenant clone --from acme --to copy");
    check_gave_up(t, "copy", holder);
    CHECK_FALSE(schema_exists(p, "tenant_copy"));

    holder.release();
    const auto again = mtctl_bounded(p, "tenant clone --from acme --to copy");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(tracked_names_or_none(p, "tenant_copy") == "0000_users,0001_users_name");
}

TEST_CASE("tenant create gives up when the new tenant's lock is held and creates no schema", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({});
    LockHolder holder(p, "tenant_newco");

    const auto t = mtctl_bounded(p, "tenant create --id newco");
    check_gave_up(t, "newco", holder);
    CHECK_FALSE(schema_exists(p, "tenant_newco"));

    holder.release();
    const auto again = mtctl_bounded(p, "tenant create --id newco");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(tracked_names_or_none(p, "tenant_newco") == "0000_users,0001_users_name");
}

TEST_CASE("convert-format gives up on a locked tenant and leaves its table in the old format", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme"});
    run_json(p, "migrate --tenant acme");
    LockHolder holder(p, "tenant_acme");

    const auto t = mtctl_bounded(p, "convert-format --to hash --tenant acme");
    check_gave_up(t, "acme", holder);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users,0001_users_name");

    holder.release();
    const auto again = mtctl_bounded(p, "convert-format --to hash --tenant acme");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK(p.scalar("SELECT count(*) FROM tenant_acme.__drizzle_migrations WHERE hash IS NOT NULL") == "2");
}

TEST_CASE("migrate --fail-fast stops at the locked tenant and skips the rest", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"a", "b", "c"});
    LockHolder holder(p, "tenant_b");

    const auto t = mtctl_bounded(p, "--json migrate --all --fail-fast --concurrency 1");
    INFO("stdout: " << t.result.out << "\nstderr: " << t.result.err);
    REQUIRE(t.result.exit_code == 1);
    const auto doc = json::parse(t.result.out);
    CHECK(doc["tenants"][0]["outcome"] == "migrated");
    CHECK(doc["tenants"][1]["outcome"] == "failed");
    check_names_holder(doc["tenants"][1]["error"].get<std::string>(), "b", holder);
    CHECK(doc["tenants"][2]["outcome"] == "skipped");
    CHECK(tracked_names_or_none(p, "tenant_c") == "none");
}

TEST_CASE("tenant drop gives up on a locked tenant and keeps its schema", "[locks][pg]") {
    Project p;
    two_migrations(p);
    p.tenants({"acme"});
    run_json(p, "migrate --tenant acme");
    LockHolder holder(p, "tenant_acme");

    const auto t = mtctl_bounded(p, "tenant drop --id acme --force");
    check_gave_up(t, "acme", holder);
    CHECK(tracked_names_or_none(p, "tenant_acme") == "0000_users,0001_users_name");

    holder.release();
    const auto again = mtctl_bounded(p, "tenant drop --id acme --force");
    INFO(again.result.out << again.result.err);
    CHECK(again.result.exit_code == 0);
    CHECK_FALSE(schema_exists(p, "tenant_acme"));
}
