// The cpp-httplib adapter end to end (SPEC §3.1): a real server on a loopback port, real requests,
// a real PostgreSQL. Tenant isolation, the 400/404/503 refusals, public routes, /health/db flipping
// to 503 while the database is stopped, /metrics scraped.
#include "support/http.hpp"
#include "support/wait.hpp"

#include <mt/adapter/httplib.hpp>
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace mt::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace adapter = mt::adapter::httplib;

namespace {

mt::TenantGateOptions fast_gate() {
    mt::TenantGateOptions o;
    o.directory.refresh_interval = std::chrono::seconds(30);
    o.directory.miss_refresh_interval = std::chrono::milliseconds(100);
    return o;
}

void list_tasks(const httplib::Request&, httplib::Response& res, mt::TenantContext& ctx) {
    const auto rows = ctx.lease.query("SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') FROM tasks t");
    res.set_content(rows[0][0].c_str(), "application/json");
}

void create_task(const httplib::Request& req, httplib::Response& res, mt::TenantContext& ctx) {
    const auto title = nlohmann::json::parse(req.body).at("title").get<std::string>();
    const auto rows = ctx.lease.query("INSERT INTO tasks (title) VALUES ($1) RETURNING to_jsonb(tasks)", {title});
    res.status = 201;
    res.set_content(rows[0][0].c_str(), "application/json");
}

// The service under test: the adapter's routes on a cpp-httplib server listening on a free port.
class HttplibService {
public:
    explicit HttplibService(const Project& p, mt::TenantGateOptions options = fast_gate())
        : kernel_(manifest_of(p)), manager_(kernel_), gate_(manager_, options) {
        server_.Get("/tasks", adapter::with_tenant(gate_, list_tasks));
        server_.Post("/tasks", adapter::with_tenant(gate_, create_task));
        // extract-path: /t/{tenant}/…; [\s\S]: cpp-httplib matches the decoded path, which may hold CR/LF.
        server_.Get(R"(/t/[\s\S]*)", adapter::with_tenant(gate_, list_tasks));
        server_.Get("/whoami", adapter::with_tenant(gate_, [](const httplib::Request&, httplib::Response& res,
                                                              mt::TenantContext& ctx) {
            const auto rows = ctx.lease.query("SELECT current_schema()");
            res.set_content(ctx.tenant_id + " " + rows[0][0].c_str(), "text/plain");
        }));
        // A handler that needs a second connection of its tenant's pool (PoolTimeout when it is full).
        server_.Get("/second-lease", adapter::with_tenant(gate_, [this](const httplib::Request&, httplib::Response& res,
                                                                        mt::TenantContext& ctx) {
            auto second = manager_.tenant(ctx.tenant_id);
            res.set_content(second.query("SELECT current_schema()")[0][0].c_str(), "text/plain");
        }));
        server_.Get("/", adapter::public_route([](const httplib::Request&, httplib::Response& res) {
            res.set_content("public", "text/plain");
        }));
        server_.Get("/tenant-count", adapter::public_route([this](const httplib::Request&, httplib::Response& res) {
            auto lease = manager_.shared();
            res.set_content(lease.query("SELECT count(*) FROM tenants")[0][0].c_str(), "text/plain");
        }));
        server_.Get("/health/db", adapter::health_handler(manager_, {true, std::chrono::seconds(2), {}}));
        server_.Get("/metrics", adapter::metrics_handler(manager_));
        port_ = server_.bind_to_any_port("127.0.0.1");
        REQUIRE(port_ > 0);
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        wait_until([this] { return server_.is_running(); }, "the httplib server to run", kDefaultDeadline,
                   std::chrono::milliseconds(1));
    }
    ~HttplibService() {
        server_.stop();
        thread_.join();
    }
    int port() const { return port_; }
    mt::TenantManager& manager() { return manager_; }
    mt::TenantGate& gate() { return gate_; }

private:
    mt::Kernel kernel_;
    mt::TenantManager manager_;
    mt::TenantGate gate_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

}  // namespace

TEST_CASE("httplib adapter: two tenants never see each other's rows", "[adapter][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared");
    Project p;
    configure_http(p);
    p.set("database.pool_mode", mode);
    tenants_with_tasks(p, {"acme", "globex"});
    HttplibService service(p);
    const int port = service.port();

    CHECK(tenant_get(port, "acme", "/whoami").body == "acme tenant_acme");
    CHECK(tenant_get(port, "globex", "/whoami").body == "globex tenant_globex");

    std::atomic<int> wrong{0}, failed{0};
    {
        std::vector<std::jthread> clients;
        for (int c = 0; c < 4; ++c)
            clients.emplace_back([&, c] {
                for (int i = 0; i < 15; ++i) {
                    const std::string id = (c + i) % 2 ? "acme" : "globex";
                    const auto created = http_post(port, "/tasks", nlohmann::json{{"title", id + " task " + std::to_string(c * 100 + i)}}.dump(),
                                                   {{"X-Tenant-Id", id}});
                    if (created.status != 201) ++failed;
                    // Read back through either extractor: the header, or the path prefix.
                    const auto listed = i % 2 ? tenant_get(port, id) : http_get(port, "/t/" + id + "/tasks");
                    if (listed.status != 200) ++failed;
                    for (const auto& title : titles(listed))
                        if (title.rfind(id, 0) != 0) ++wrong;
                }
            });
    }
    CHECK(failed == 0);
    CHECK(wrong == 0);
    CHECK(titles(tenant_get(port, "acme")).size() == 31);
    CHECK(titles(http_get(port, "/t/globex/tasks")).size() == 31);
    CHECK(p.scalar("SELECT count(*) FROM tenant_acme.tasks WHERE title NOT LIKE 'acme%'") == "0");
    CHECK(p.scalar("SELECT count(*) FROM tenant_globex.tasks WHERE title NOT LIKE 'globex%'") == "0");
}

TEST_CASE("httplib adapter: 400 without a tenant id or with an invalid one, 404 for an unknown tenant",
          "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme"});
    HttplibService service(p);
    const int port = service.port();

    auto r = http_get(port, "/tasks");
    CHECK(r.status == 400);
    CHECK(r.body == R"({"error":"tenant id required"})");

    for (const std::string& bad : std::vector<std::string>{"a b", "x'; DROP SCHEMA tenant_acme CASCADE; --", "-x", std::string(70, 'a')}) {
        INFO(bad);
        r = tenant_get(port, bad);
        CHECK(r.status == 400);
        CHECK(r.error() == "invalid tenant id");
    }
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'") == "1");

    SECTION("hostile input sent as raw bytes") {
        // CR/LF injection turns into a second X-Tenant-Id line with another value.
        r = raw_get(port, "/tasks", "X-Tenant-Id: acme\r\nX-Tenant-Id: globex\r\n");
        CHECK(r.status == 400);
        CHECK(r.error() == "invalid tenant id");
        CHECK_THAT(r.json().value("detail", ""), Contains("more than once"));
        r = raw_get(port, "/tasks", "X-Tenant-Id: acm\xc3\xa9\r\n");  // unicode
        CHECK(r.status == 400);
        CHECK(r.error() == "invalid tenant id");
        r = raw_get(port, "/tasks", "X-Tenant-Id: " + std::string(2000, 'a') + "\r\n");  // very long
        CHECK(r.status == 400);
        CHECK(r.error() == "invalid tenant id");
        CHECK(r.body.size() < 300);  // the value is not echoed back
        for (const char* target : {"/t/..%2Fglobex/tasks", "/t/a%2Fb/tasks", "/t/acme%0D%0AX:%20y/tasks",
                                   "/t/%2e%2e/tasks", "/t/%ZZ/tasks"}) {
            INFO(target);
            r = raw_get(port, target, "");
            CHECK(r.status == 400);
            CHECK(r.error() == "invalid tenant id");
        }
        r = raw_get(port, "/t/ac%6De/tasks", "");  // percent-encoded, but harmless
        CHECK(r.status == 200);
    }

    SECTION("an unknown tenant is 404 and gets no pool; once its schema exists it is served") {
        REQUIRE(tenant_get(port, "acme").status == 200);  // the directory and acme's pool exist now
        const auto pools_before = service.manager().stats().pools_created;
        r = tenant_get(port, "initech");
        CHECK(r.status == 404);
        CHECK(r.body == R"({"error":"unknown tenant"})");
        CHECK(http_get(port, "/t/initech/tasks").status == 404);
        CHECK(service.manager().stats().pools_created == pools_before);

        tenants_with_tasks(p, {"initech"});
        // A miss reloads the directory once miss_refresh_interval has passed; until then it is a 404.
        wait_until([&] { return (r = tenant_get(port, "initech")).status != 404; },
                   "a miss to reload the directory and find initech");
        CHECK(r.status == 200);
        CHECK(titles(r) == std::vector<std::string>{"initech's first task"});
    }
}

TEST_CASE("httplib adapter: public routes skip extraction", "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme"});
    HttplibService service(p);
    CHECK(http_get(service.port(), "/").body == "public");
    const auto r = raw_get(service.port(), "/", "X-Tenant-Id: \r\n");  // an empty id would be refused elsewhere
    CHECK(r.status == 200);
    CHECK(r.body == "public");
    CHECK(http_get(service.port(), "/tenant-count").body == "1");
    CHECK(http_get(service.port(), "/tasks", {{"X-Tenant-Id", ""}}).status == 400);
}

TEST_CASE("httplib adapter: 503 when no connection frees up within the wait timeout", "[adapter][pg]") {
    Project p;
    configure_http(p);
    p.set("database.pool_size", "1");
    p.set("database.connect_timeout", "300ms");
    tenants_with_tasks(p, {"acme"});
    HttplibService service(p);
    REQUIRE(tenant_get(service.port(), "acme").status == 200);
    {
        auto held = service.manager().tenant("acme");
        const auto r = tenant_get(service.port(), "acme");
        CHECK(r.status == 503);
        CHECK(r.body == R"({"error":"database unavailable"})");
    }
    CHECK(tenant_get(service.port(), "acme").status == 200);
    // Thrown by the handler itself: also 503, recognised by its type.
    const auto second = http_get(service.port(), "/second-lease", {{"X-Tenant-Id", "acme"}});
    CHECK(second.status == 503);
    CHECK(second.body == R"({"error":"database unavailable"})");
}

TEST_CASE("database unavailability is recognised by type and SQLSTATE, not by message text", "[adapter]") {
    CHECK(mt::is_database_unavailable(mt::PoolTimeout("acme", 4, 300)));
    CHECK(mt::is_database_unavailable(mt::PoolTimeout("", 4, 300)));
    CHECK(mt::is_database_unavailable(mt::DatabaseUnavailable("cannot connect")));
    CHECK(mt::is_database_unavailable(mt::OperationError("too many clients", "53300")));
    // The pool timeout's wording in another error is not a pool timeout.
    CHECK_FALSE(mt::is_database_unavailable(mt::OperationError("timed out after 5ms waiting for a connection")));
    CHECK_FALSE(mt::is_database_unavailable(mt::OperationError("duplicate key", "23505")));
    CHECK(mt::unavailable_refusal(mt::PoolTimeout("acme", 1, 10)).status == 503);
}

TEST_CASE("httplib adapter: /health/db and /metrics", "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme", "globex"});
    HttplibService service(p);
    const int port = service.port();
    for (int i = 0; i < 3; ++i) {
        REQUIRE(tenant_get(port, "acme").status == 200);
        REQUIRE(tenant_get(port, "globex").status == 200);
    }
    const auto health = http_get(port, "/health/db");
    CHECK(health.status == 200);
    const auto h = health.json();
    REQUIRE(h.is_object());
    CHECK(h["healthy"] == true);
    CHECK(h["shared"]["status"] == "ok");
    CHECK(h["total_pools"] == 2);

    const auto metrics = http_get(port, "/metrics");
    CHECK(metrics.status == 200);
    const auto samples = scrape(metrics.body);
    REQUIRE(samples.count("mt_queries_total{status=\"ok\"}"));
    CHECK(samples.at("mt_queries_total{status=\"ok\"}") >= 6);
    CHECK(samples.at("mt_pools_active") == 2);
    CHECK(samples.count("mt_pool_connections{state=\"idle\",tenant=\"acme\"}") +
              samples.count("mt_pool_connections{tenant=\"acme\",state=\"idle\"}") ==
          1);
}

TEST_CASE("httplib adapter: 503 while the database is stopped, /health/db flips, and both recover", "[adapter][pg][serial]") {
    PrivateServer server;
    Project p(server.admin_url());
    configure_http(p);
    p.set("database.connect_timeout", "1s");
    tenants_with_tasks(p, {"acme"});
    HttplibService service(p);
    const int port = service.port();
    REQUIRE(tenant_get(port, "acme").status == 200);
    REQUIRE(http_get(port, "/health/db").status == 200);

    server.stop();
    auto r = tenant_get(port, "acme");
    CHECK(r.status == 503);
    CHECK(r.body == R"({"error":"database unavailable"})");
    r = tenant_get(port, "initech");  // not in the directory: the reload fails, which is 503, not 404
    CHECK(r.status == 503);
    CHECK(http_get(port, "/tenant-count").status == 503);  // public routes map it too
    const auto health = http_get(port, "/health/db");
    CHECK(health.status == 503);
    CHECK(health.json()["healthy"] == false);
    CHECK(http_get(port, "/").status == 200);

    server.start();
    CHECK(tenant_get(port, "acme").status == 200);
    CHECK(http_get(port, "/health/db").status == 200);
}

TEST_CASE("httplib adapter: the request view keeps the raw target, the host and every header", "[adapter]") {
    httplib::Request req;
    req.method = "POST";
    req.target = "/t/a%2Fb/tasks?limit=5&x=%20";
    req.path = "/t/a/b/tasks";  // what cpp-httplib decoded
    req.headers.emplace("Host", "acme.app.example.com:8080");
    req.headers.emplace("X-Tenant-Id", "acme");
    req.headers.emplace("Accept", "application/json");
    const auto view = adapter::request_view(req);
    CHECK(view.method == "POST");
    CHECK(view.path == "/t/a%2Fb/tasks");
    CHECK(view.query == "limit=5&x=%20");
    CHECK(view.host == "acme.app.example.com:8080");
    CHECK(view.headers.size() == 3);
    CHECK(std::count(view.headers.begin(), view.headers.end(), std::pair<std::string, std::string>{"X-Tenant-Id", "acme"}) == 1);
}
