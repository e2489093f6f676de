// The Boost.Beast adapter end to end (SPEC §3.1): a synchronous Beast server on a loopback port,
// real requests, a real PostgreSQL. Tenant isolation, the 400/404/503 refusals, public routes,
// /health/db flipping to 503 while the database is stopped, /metrics scraped.
#include "support/http.hpp"
#include "support/wait.hpp"

#include <mt/adapter/beast.hpp>
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

using namespace mt::test;
using Catch::Matchers::Contains;
namespace mtb = mt::adapter::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

mtb::Response beast_list_tasks(const mtb::Request& req, mt::TenantContext& ctx) {
    const auto rows = ctx.lease.query("SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') FROM tasks t");
    return mtb::make_response(req, http::status::ok, rows[0][0].c_str());
}

mtb::Response beast_create_task(const mtb::Request& req, mt::TenantContext& ctx) {
    const auto title = nlohmann::json::parse(req.body()).at("title").get<std::string>();
    const auto rows = ctx.lease.query("INSERT INTO tasks (title) VALUES ($1) RETURNING to_jsonb(tasks)", {title});
    return mtb::make_response(req, http::status::created, rows[0][0].c_str());
}

// The service under test: a thread per connection, Beast's synchronous read/write.
class BeastService {
public:
    explicit BeastService(const Project& p) : kernel_(manifest_of(p)), manager_(kernel_), gate_(manager_, gate_options()) {
        acceptor_.open(tcp::v4());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind({net::ip::address_v4::loopback(), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        accept_thread_ = std::thread([this] { accept_loop(); });
    }
    ~BeastService() {
        stopping_ = true;
        {
            tcp::socket wake(ioc_);  // unblocks accept()
            boost::system::error_code ec;
            wake.connect({net::ip::address_v4::loopback(), static_cast<unsigned short>(port_)}, ec);
        }
        accept_thread_.join();
        std::lock_guard lock(sessions_mutex_);
        for (auto& t : sessions_) t.join();
    }
    int port() const { return port_; }
    mt::TenantManager& manager() { return manager_; }

private:
    static mt::TenantGateOptions gate_options() {
        mt::TenantGateOptions o;
        o.directory.miss_refresh_interval = std::chrono::milliseconds(100);
        return o;
    }

    mtb::Response route(const mtb::Request& req) {
        const std::string target(req.target().data(), req.target().size());
        const std::string path = target.substr(0, target.find('?'));
        if (path == "/health/db") return mtb::health_response(manager_, req, {true, std::chrono::seconds(2), {}});
        if (path == "/metrics") return mtb::metrics_response(manager_, req);
        if (path == "/")
            return mtb::public_route(req, [](const mtb::Request& r) {
                return mtb::make_response(r, http::status::ok, "public", "text/plain");
            });
        if (path == "/tenant-count")
            return mtb::public_route(req, [this](const mtb::Request& r) {
                auto lease = manager_.shared();
                return mtb::make_response(r, http::status::ok, lease.query("SELECT count(*) FROM tenants")[0][0].c_str(),
                                          "text/plain");
            });
        if (path == "/tasks" && req.method() == http::verb::post) return mtb::with_tenant(gate_, req, beast_create_task);
        if (path == "/tasks" || path.rfind("/t/", 0) == 0) return mtb::with_tenant(gate_, req, beast_list_tasks);
        if (path == "/second-lease")  // needs a second connection of the tenant's pool
            return mtb::with_tenant(gate_, req, [this](const mtb::Request& r, mt::TenantContext& ctx) {
                auto second = manager_.tenant(ctx.tenant_id);
                return mtb::make_response(r, http::status::ok, second.query("SELECT current_schema()")[0][0].c_str(),
                                          "text/plain");
            });
        if (path == "/whoami")
            return mtb::with_tenant(gate_, req, [](const mtb::Request& r, mt::TenantContext& ctx) {
                return mtb::make_response(r, http::status::ok,
                                          ctx.tenant_id + " " + ctx.lease.query("SELECT current_schema()")[0][0].c_str(),
                                          "text/plain");
            });
        return mtb::make_response(req, http::status::not_found, R"({"error":"no such route"})");
    }

    void accept_loop() {
        for (;;) {
            tcp::socket socket(ioc_);
            boost::system::error_code ec;
            acceptor_.accept(socket, ec);
            if (stopping_) return;
            if (ec) continue;
            std::lock_guard lock(sessions_mutex_);
            sessions_.emplace_back([this, s = std::move(socket)]() mutable { session(std::move(s)); });
        }
    }

    void session(tcp::socket socket) {
        boost::beast::flat_buffer buffer;
        boost::system::error_code ec;
        for (;;) {
            mtb::Request req;
            http::read(socket, buffer, req, ec);
            if (ec) break;
            mtb::Response res;
            try {
                res = route(req);
            } catch (const std::exception&) {
                res = mtb::make_response(req, http::status::internal_server_error, R"({"error":"internal error"})");
            }
            const bool close = res.need_eof();
            http::write(socket, res, ec);
            if (ec || close) break;
        }
        socket.shutdown(tcp::socket::shutdown_send, ec);
    }

    mt::Kernel kernel_;
    mt::TenantManager manager_;
    mt::TenantGate gate_;
    net::io_context ioc_;
    tcp::acceptor acceptor_{ioc_};
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread accept_thread_;
    std::mutex sessions_mutex_;
    std::vector<std::thread> sessions_;
};

}  // namespace

TEST_CASE("beast adapter: the request view keeps the raw target, the host and every header", "[adapter]") {
    mtb::Request req{http::verb::get, "/t/a%2Fb/tasks?limit=5", 11};
    req.set(http::field::host, "acme.app.example.com:8080");
    req.set("X-Tenant-Id", "acme");
    req.set(http::field::accept, "application/json");
    const auto view = mtb::request_view(req);
    CHECK(view.method == "GET");
    CHECK(view.path == "/t/a%2Fb/tasks");
    CHECK(view.query == "limit=5");
    CHECK(view.host == "acme.app.example.com:8080");
    REQUIRE(view.headers.size() == 3);
    CHECK(view.headers[1] == std::pair<std::string, std::string>{"X-Tenant-Id", "acme"});
}

TEST_CASE("beast adapter: two tenants never see each other's rows", "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme", "globex"});
    BeastService service(p);
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
}

TEST_CASE("beast adapter: 400 without or with an invalid tenant id, 404 for an unknown tenant, public routes",
          "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme"});
    BeastService service(p);
    const int port = service.port();

    auto r = http_get(port, "/tasks");
    CHECK(r.status == 400);
    CHECK(r.body == R"({"error":"tenant id required"})");
    r = tenant_get(port, "a b");
    CHECK(r.status == 400);
    CHECK(r.error() == "invalid tenant id");
    r = raw_get(port, "/tasks", "X-Tenant-Id: acme\r\nX-Tenant-Id: globex\r\n");
    CHECK(r.status == 400);
    CHECK_THAT(r.json().value("detail", ""), Contains("more than once"));
    r = raw_get(port, "/tasks", "X-Tenant-Id: " + std::string(2000, 'a') + "\r\n");
    CHECK(r.status == 400);
    CHECK(r.body.size() < 300);
    r = raw_get(port, "/tasks", "X-Tenant-Id: acm\xc3\xa9\r\n");
    CHECK(r.status == 400);
    for (const char* target : {"/t/..%2Fglobex/tasks", "/t/../tasks", "/t/a%00/tasks"}) {
        INFO(target);
        r = raw_get(port, target, "");
        CHECK(r.status == 400);
        CHECK(r.error() == "invalid tenant id");
    }

    r = tenant_get(port, "initech");
    CHECK(r.status == 404);
    CHECK(r.body == R"({"error":"unknown tenant"})");
    tenants_with_tasks(p, {"initech"});
    // A miss reloads the directory once miss_refresh_interval has passed; until then it is a 404.
    wait_until([&] { return (r = tenant_get(port, "initech")).status != 404; },
               "a miss to reload the directory and find initech");
    CHECK(r.status == 200);
    CHECK(titles(r) == std::vector<std::string>{"initech's first task"});

    CHECK(http_get(port, "/").body == "public");
    CHECK(raw_get(port, "/", "X-Tenant-Id: \r\n").status == 200);
    CHECK(http_get(port, "/tenant-count").body == "2");
}

TEST_CASE("beast adapter: 503 when no connection frees up within the wait timeout", "[adapter][pg]") {
    Project p;
    configure_http(p);
    p.set("database.pool_size", "1");
    p.set("database.connect_timeout", "300ms");
    tenants_with_tasks(p, {"acme"});
    BeastService service(p);
    REQUIRE(tenant_get(service.port(), "acme").status == 200);
    {
        auto held = service.manager().tenant("acme");
        const auto r = tenant_get(service.port(), "acme");  // the gate's lease times out
        CHECK(r.status == 503);
        CHECK(r.body == R"({"error":"database unavailable"})");
    }
    CHECK(tenant_get(service.port(), "acme").status == 200);
    // Thrown by the handler itself (mt::PoolTimeout): also 503.
    const auto second = http_get(service.port(), "/second-lease", {{"X-Tenant-Id", "acme"}});
    CHECK(second.status == 503);
    CHECK(second.body == R"({"error":"database unavailable"})");
}

TEST_CASE("beast adapter: /health/db and /metrics", "[adapter][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"acme"});
    BeastService service(p);
    REQUIRE(tenant_get(service.port(), "acme").status == 200);
    const auto health = http_get(service.port(), "/health/db");
    CHECK(health.status == 200);
    CHECK(health.json()["healthy"] == true);
    const auto samples = scrape(http_get(service.port(), "/metrics").body);
    REQUIRE(samples.count("mt_queries_total{status=\"ok\"}"));
    CHECK(samples.at("mt_queries_total{status=\"ok\"}") >= 1);
    CHECK(samples.at("mt_pools_active") == 1);
}

TEST_CASE("beast adapter: 503 while the database is stopped, /health/db flips, and both recover", "[adapter][pg][serial]") {
    PrivateServer server;
    Project p(server.admin_url());
    configure_http(p);
    p.set("database.connect_timeout", "1s");
    tenants_with_tasks(p, {"acme"});
    BeastService service(p);
    const int port = service.port();
    REQUIRE(tenant_get(port, "acme").status == 200);
    REQUIRE(http_get(port, "/health/db").status == 200);

    server.stop();
    auto r = tenant_get(port, "acme");
    CHECK(r.status == 503);
    CHECK(r.body == R"({"error":"database unavailable"})");
    CHECK(http_get(port, "/tenant-count").status == 503);
    CHECK(http_get(port, "/health/db").status == 503);
    CHECK(http_get(port, "/").status == 200);

    server.start();
    CHECK(tenant_get(port, "acme").status == 200);
    CHECK(http_get(port, "/health/db").status == 200);
}
