// Health tells the truth (SPEC §5.1, §11; issue 10 item 4): a tenant whose schema is missing, or
// whose server cannot be reached, is unhealthy in health_check, `mtctl health` and warmup alike;
// pending migrations make a tenant degraded only when the caller asks (HealthOptions::pending,
// `mtctl health --pending`).
#include "support/http.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/adapter/httplib.hpp>
#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <thread>

using namespace mt::test;

namespace {

const mt::PoolHealth& entry(const mt::HealthReport& report, const std::string& tenant) {
    for (const auto& p : report.pools)
        if (p.tenant == tenant) return p;
    FAIL("no health entry for tenant " << tenant);
    throw std::logic_error("unreachable");
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a tenant whose schema was dropped is unhealthy in health_check and fails warmup the same way, in every "
          "pool mode",
          "[health][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    p.set("database.pool_mode", mode);
    p.tenants({"a", "b"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto a = manager.tenant("a"); a.query("SELECT 1"); }
    { auto b = manager.tenant("b"); b.query("SELECT 1"); }
    CHECK(manager.health_check().healthy);

    p.exec("DROP SCHEMA tenant_b");
    // The default set: live pools (per-tenant mode) or the tenants leased so far (the other modes).
    const auto report = manager.health_check();
    CHECK_FALSE(report.healthy);
    CHECK(report.total_pools == 2);
    CHECK(report.unhealthy_pools == 1);
    CHECK(entry(report, "a").status == mt::HealthStatus::ok);
    const auto& b = entry(report, "b");
    CHECK(b.status == mt::HealthStatus::unhealthy);
    CHECK(b.schema == "tenant_b");
    CHECK(b.error == "schema \"tenant_b\" of tenant b does not exist on its server (database.url): create it with "
                     "`mtctl tenant create --id b`, or fix the tenant's server in discovery");
    CHECK(report.shared.status == mt::HealthStatus::ok);

    // Asked by name, the same answer.
    mt::HealthOptions named;
    named.tenants = {"b"};
    const auto only_b = manager.health_check(named);
    CHECK_FALSE(only_b.healthy);
    REQUIRE(only_b.pools.size() == 1);
    CHECK(only_b.pools[0].error == b.error);
    const auto json = nlohmann::json::parse(mt::to_json(only_b));
    CHECK(json["healthy"] == false);
    CHECK(json["pools"][0]["tenant"] == "b");
    CHECK(json["pools"][0]["status"] == "unhealthy");
    CHECK(json["pools"][0]["error"] == b.error);
    CHECK_FALSE(json["pools"][0].contains("pending_migrations"));  // not asked

    // Warmup reports the same failure with the same words.
    const auto warm = manager.warmup({"a", "b"});
    CHECK(warm.succeeded == 1);
    CHECK(warm.failed == 1);
    CHECK(warm.details[1].tenant == "b");
    CHECK_FALSE(warm.details[1].ok);
    CHECK(warm.details[1].error == b.error);
}

TEST_CASE("mtctl health --tenant names a tenant whose schema is missing and exits 1", "[health][mtctl][pg]") {
    Project p;
    p.tenants({"a", "b"});
    p.exec("DROP SCHEMA tenant_b");

    const auto table = p.mtctl("--no-color health --tenant b");
    INFO(table.out << table.err);
    CHECK(table.exit_code == 1);
    CHECK(contains(table.out, "unhealthy b (tenant_b) "));
    CHECK(contains(table.out, "schema \"tenant_b\" of tenant b does not exist on its server (database.url)"));
    CHECK(contains(table.out, "UNHEALTHY: 1 tenants checked, 0 degraded, 1 unhealthy"));

    const auto doc = run_json(p, "health --tenant b", 1);
    CHECK(doc["healthy"] == false);
    REQUIRE(doc["pools"].size() == 1);
    CHECK(doc["pools"][0]["tenant"] == "b");
    CHECK(doc["pools"][0]["schema"] == "tenant_b");
    CHECK(doc["pools"][0]["status"] == "unhealthy");
    CHECK(contains(doc["pools"][0]["error"].get<std::string>(), "does not exist"));

    const auto fine = run_json(p, "health --tenant a");
    CHECK(fine["healthy"] == true);
    CHECK(fine["pools"][0]["status"] == "ok");
    const auto all = run_json(p, "health --all", 1);
    CHECK(all["unhealthy_pools"] == 1);
    CHECK(all["total_pools"] == 2);
}

TEST_CASE("a tenant routed to a server that cannot be reached is unhealthy, and fails warmup", "[health][routing][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared");
    Project p;
    p.set("database.pool_mode", mode);
    p.set("database.connect_timeout", "1s");
    p.set("plugin.retry-exponential.max_attempts", "2");
    p.set("servers.far.url", "postgresql://postgres@127.0.0.1:1/nowhere");  // nothing listens on port 1
    p.set("plugin.discovery-sql.query", "SELECT id, server FROM public.tenants ORDER BY id");
    p.exec("CREATE TABLE public.tenants (id text PRIMARY KEY, server text); "
           "INSERT INTO public.tenants VALUES ('near', NULL), ('remote', 'far'); CREATE SCHEMA tenant_near");
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    mt::HealthOptions options;
    options.tenants = {"near", "remote"};
    const auto report = manager.health_check(options);
    CHECK_FALSE(report.healthy);
    CHECK(entry(report, "near").status == mt::HealthStatus::ok);
    const auto& remote = entry(report, "remote");
    CHECK(remote.status == mt::HealthStatus::unhealthy);
    CHECK(remote.server == std::optional<std::string>("far"));
    CHECK(contains(remote.error, "cannot connect to postgresql://postgres@127.0.0.1:1/nowhere"));
    const auto json = nlohmann::json::parse(mt::to_json(report));
    CHECK(json["pools"][1]["server"] == "far");

    const auto warm = manager.warmup({"remote"});
    CHECK(warm.failed == 1);
    CHECK(warm.details[0].error == remote.error);

    const auto doc = run_json(p, "health --tenant remote", 1);
    CHECK(doc["pools"][0]["status"] == "unhealthy");
    CHECK(contains(doc["pools"][0]["error"].get<std::string>(), "cannot connect"));
}

TEST_CASE("pending migrations make a tenant degraded only when asked", "[health][mtctl][pg]") {
    Project p;
    p.migration("0001_first", "CREATE TABLE one (id int)");
    p.migration("0002_second", "CREATE TABLE two (id int)");
    p.tenants({"current", "behind"});
    run_json(p, "migrate --tenant current");
    run_json(p, "migrate --tenant behind --to 0001_first");
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    mt::HealthOptions options;
    options.tenants = {"current", "behind"};

    const auto plain = manager.health_check(options);
    CHECK(plain.healthy);
    CHECK(plain.degraded_pools == 0);
    CHECK_FALSE(entry(plain, "behind").pending.has_value());

    options.pending = true;
    const auto asked = manager.health_check(options);
    CHECK(asked.healthy);  // degraded is still healthy
    CHECK(asked.degraded_pools == 1);
    CHECK(entry(asked, "current").status == mt::HealthStatus::ok);
    CHECK(entry(asked, "current").pending == std::optional<size_t>(0));
    const auto& behind = entry(asked, "behind");
    CHECK(behind.status == mt::HealthStatus::degraded);
    CHECK(behind.pending == std::optional<size_t>(1));
    CHECK(behind.error == "1 pending migration (run `mtctl migrate --tenant behind`)");
    const auto json = nlohmann::json::parse(mt::to_json(asked));
    CHECK(json["pools"][1]["pending_migrations"] == 1);
    CHECK(json["pools"][1]["status"] == "degraded");

    const auto doc = run_json(p, "health --tenants current,behind --pending");  // degraded: exit 0
    CHECK(doc["healthy"] == true);
    CHECK(doc["degraded_pools"] == 1);
    CHECK(doc["pools"][1]["tenant"] == "behind");
    CHECK(doc["pools"][1]["status"] == "degraded");
    CHECK(doc["pools"][1]["pending_migrations"] == 1);
    const auto quiet = run_json(p, "health --tenants current,behind");
    CHECK(quiet["degraded_pools"] == 0);
    CHECK_FALSE(quiet["pools"][1].contains("pending_migrations"));

    // A missing schema stays unhealthy (not merely "pending").
    p.exec("DROP SCHEMA tenant_behind CASCADE");
    const auto dropped = manager.health_check(options);
    CHECK(entry(dropped, "behind").status == mt::HealthStatus::unhealthy);
    CHECK_FALSE(entry(dropped, "behind").pending.has_value());
}

TEST_CASE("the adapter's /health/db answers 503 naming a tenant whose schema was dropped, in every pool mode",
          "[health][adapter][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    configure_http(p);
    p.set("database.pool_mode", mode);
    tenants_with_tasks(p, {"acme", "globex"});
    mt::Kernel kernel(manifest_of(p));
    mt::TenantManager manager(kernel);
    mt::TenantGate gate(manager);
    httplib::Server server;
    server.Get("/tasks", mt::adapter::httplib::with_tenant(gate, [](const httplib::Request&, httplib::Response& res,
                                                                     mt::TenantContext& ctx) {
        res.set_content(ctx.lease.query("SELECT count(*) FROM tasks")[0][0].c_str(), "text/plain");
    }));
    server.Get("/health/db", mt::adapter::httplib::health_handler(manager, {true, std::chrono::seconds(2), {}}));
    const int port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread thread([&] { server.listen_after_bind(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();

    CHECK(tenant_get(port, "acme").status == 200);
    CHECK(tenant_get(port, "globex").status == 200);
    CHECK(http_get(port, "/health/db").status == 200);
    p.exec("DROP SCHEMA tenant_globex CASCADE");
    const auto health = http_get(port, "/health/db");
    CHECK(health.status == 503);
    const auto doc = health.json();
    CHECK(doc["healthy"] == false);
    CHECK(doc["unhealthy_pools"] == 1);
    bool named = false;
    for (const auto& pool : doc["pools"])
        if (pool["tenant"] == "globex") {
            named = true;
            CHECK(pool["status"] == "unhealthy");
            CHECK(contains(pool["error"].get<std::string>(), "schema \"tenant_globex\" of tenant globex does not exist"));
        } else {
            CHECK(pool["status"] == "ok");
        }
    CHECK(named);
    server.stop();
    thread.join();
}
