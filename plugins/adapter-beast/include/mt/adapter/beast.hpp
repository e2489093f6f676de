// Boost.Beast adapter (SPEC §3.1): the same tenant routes as the cpp-httplib adapter, for
// http::request<string_body>. A session loop calls with_tenant for tenant routes:
//
//   mt::TenantGate gate(manager);
//   namespace mtb = mt::adapter::beast;
//   mtb::Response res = req.target() == "/health/db" ? mtb::health_response(manager, req)
//                     : mtb::with_tenant(gate, req, [](const mtb::Request& req, mt::TenantContext& ctx) {
//                           auto rows = ctx.lease.query("SELECT id, title FROM tasks");
//                           return mtb::json_response(req, boost::beast::http::status::ok, "...");
//                       });
//
// Refusals are JSON (see mt/tenant_context.hpp): 400 tenant id required / invalid tenant id,
// 404 unknown tenant, 503 database unavailable. A handler that throws a database-unavailable error
// (mt::DatabaseUnavailable, a broken connection, mt::PoolTimeout) also yields 503, one that throws
// mt::InvalidParameter 400 naming the parameter; any other exception propagates to the caller
// (mtb::Server answers it with 500 {"error":"internal error"}).
//
// mtb::Server is a complete front door with safe limits (ServerOptions, docs/http.md):
//
//   mtb::Server server([&](const mtb::Request& req) { return route(req); });
//   const auto port = server.listen("127.0.0.1", 8080);
//   server.run();  // until server.stop() Every response produced here has the request's HTTP version
// and keep-alive, and its payload prepared.
#pragma once

#include <mt/runtime/request.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <boost/beast/http.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace mt::adapter::beast {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Limits of an HTTP front door; the defaults are safe for a service on the open network, and the
// same as the cpp-httplib adapter's.
struct ServerOptions {
    size_t max_body_bytes = 1024 * 1024;  // a larger request body: 413, the handler never runs
    size_t max_header_bytes = 16 * 1024;  // request line plus headers; larger: 431
    // A whole request (head and body) must arrive within this from its first byte.
    std::chrono::milliseconds read_timeout{5000};
    std::chrono::milliseconds write_timeout{5000};  // a whole response must be taken up within this
    std::chrono::milliseconds idle_timeout{5000};   // an open connection without a request is closed
    size_t max_keep_alive_requests = 100;           // then the connection is closed (Connection: close)
    size_t worker_threads = 8;                      // handlers running at once; idle connections hold none
};

// An HTTP/1.1 server over Beast: one I/O thread reads and writes every connection asynchronously
// (beast::tcp_stream::expires_after for the timeouts, the parser's header_limit and body_limit),
// handlers run on worker_threads. A handler's exception other than the mapped ones answers 500
// {"error":"internal error"}; its text goes to the log only.
class Server {
public:
    using Handler = std::function<Response(const Request&)>;
    explicit Server(Handler handler, ServerOptions options = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and listens; port 0 picks a free one. Returns the bound port; throws mt::UsageError
    // when the address cannot be bound.
    unsigned short listen(const std::string& host = "127.0.0.1", unsigned short port = 0);
    // Serves until stop(); call from one thread.
    void run();
    // From any thread, also a signal handler's flag watcher: run() returns soon after.
    void stop();

private:
    struct State;
    std::unique_ptr<State> state_;
};

using TenantHandler = std::function<Response(const Request&, TenantContext&)>;
using PublicHandler = std::function<Response(const Request&)>;

// The kernel's request view: method, the raw path and query from the target, Host, every header.
RequestView request_view(const Request& request);

// Admits the request through the gate (extract, validate, check, lease) and runs handler with the
// context; the lease goes back to its pool when the handler returns.
Response with_tenant(TenantGate& gate, const Request& request, const TenantHandler& handler, LeaseOptions lease = {});

// A public route: no extraction; only the 503 mapping of database-unavailable errors.
Response public_route(const Request& request, const PublicHandler& handler);

// /health/db: 200 when healthy, 503 otherwise, with the health report's JSON.
Response health_response(TenantManager& manager, const Request& request, HealthOptions options = {});
// /metrics: the Prometheus exposition of every sink that can render.
Response metrics_response(TenantManager& manager, const Request& request);

// A response with the request's version and keep-alive, a body and its content type.
Response make_response(const Request& request, http::status status, std::string body,
                       const std::string& content_type = "application/json");
Response refusal_response(const Request& request, const TenantRefusal& refusal);

}  // namespace mt::adapter::beast
