// cpp-httplib adapter (SPEC §3.1): tenant routes receive the tenant id and a lease.
//
//   mt::adapter::httplib::Server server;            // safe limits (ServerOptions), see docs/http.md
//   mt::TenantGate gate(manager);
//   server.Get("/tasks", mt::adapter::httplib::with_tenant(gate,
//       [](const httplib::Request&, httplib::Response& res, mt::TenantContext& ctx) {
//           auto rows = ctx.lease.query("SELECT id, title FROM tasks");
//           ...
//       }));
//   server.Get("/", mt::adapter::httplib::public_route([](const httplib::Request&, httplib::Response& res) {...}));
//   server.Get("/health/db", mt::adapter::httplib::health_handler(manager));
//   server.Get("/metrics", mt::adapter::httplib::metrics_handler(manager));
//
// Refusals are JSON (see mt/tenant_context.hpp): 400 tenant id required / invalid tenant id,
// 404 unknown tenant, 503 database unavailable. A handler that throws a database-unavailable error
// (mt::DatabaseUnavailable, a broken connection, mt::PoolTimeout) also gets 503, one that throws
// mt::InvalidParameter gets 400 naming the parameter; any other exception goes on to the server's
// exception handler (500 {"error":"internal error"} once apply_limits or Server installed it).
#pragma once

#include <mt/runtime/request.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>

namespace mt::adapter::httplib {

namespace detail {
struct Connection;
}

// Limits of an HTTP front door; the defaults are safe for a service on the open network.
struct ServerOptions {
    size_t max_body_bytes = 1024 * 1024;  // a larger request body: 413, the handler never runs
    size_t max_header_bytes = 16 * 1024;  // request line plus headers; larger: 431
    // A whole request head must arrive within this from its first byte (a slowloris client is cut
    // off), and every read of its body within this of the head.
    std::chrono::milliseconds read_timeout{5000};
    std::chrono::milliseconds write_timeout{5000};  // each write of a response must make progress
    std::chrono::milliseconds idle_timeout{5000};   // an open connection without a request is closed
    size_t max_keep_alive_requests = 100;           // then the connection is closed (Connection: close)
    size_t worker_threads = 8;                      // requests handled at once; idle connections hold none
};

// A cpp-httplib server that survives rude clients. Connections wait in one epoll thread until a
// complete request head has arrived (within max_header_bytes and read_timeout), and only then take a
// worker thread; between keep-alive requests they go back to waiting. Idle or slow connections
// therefore never hold a worker. apply_limits(*this, options) is already done.
class Server : public ::httplib::Server {
public:
    explicit Server(ServerOptions options = {});
    // HTTPS only, with a PEM certificate (chain) and its private key; is_valid() is false when they
    // cannot be loaded. The waiting room also does the handshake and reads the decrypted head
    // without blocking, so stalled handshakes hold no worker either.
    Server(ServerOptions options, const std::string& cert_pem_file, const std::string& key_pem_file);
    ~Server() override;
    bool is_valid() const override;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    const ServerOptions& options() const { return options_; }

    class Connections;  // the waiting room and the workers, private to the implementation

private:
    bool process_and_close_socket(socket_t sock) override;
    void serve(std::unique_ptr<detail::Connection> connection);

    ServerOptions options_;
    Connections* connections_ = nullptr;  // the task queue of the running listen loop
    std::shared_ptr<void> tls_;           // the SSL_CTX when serving HTTPS
    bool tls_valid_ = true;
};

// What cpp-httplib itself can enforce, for any ::httplib::Server (an SSLServer for example):
// payload_max_length, read/write timeouts, keep-alive timeout and count, a pool of worker_threads,
// 413 for a Content-Length past max_body_bytes, 431 for headers past max_header_bytes, 415 for a
// compressed request body (cpp-httplib would inflate it without bound), JSON bodies for its own
// error statuses and an exception handler answering 500 {"error":"internal error"} (the exception
// text goes to the log, never into the response). Idle keep-alive connections of a plain
// ::httplib::Server do hold a thread each: use Server where that matters.
void apply_limits(::httplib::Server& server, const ServerOptions& options = {});

using TenantHandler = std::function<void(const ::httplib::Request&, ::httplib::Response&, TenantContext&)>;

// The kernel's request view of a cpp-httplib request: method, the raw (still percent-encoded) path
// and query from the request target, the Host header, and every header.
RequestView request_view(const ::httplib::Request& request);

// A route for a tenant: admits the request through the gate (extract, validate, check, lease), then
// runs handler with the context. The lease goes back to its pool when the handler returns.
::httplib::Server::Handler with_tenant(TenantGate& gate, TenantHandler handler, LeaseOptions lease = {});

// A public route: no extraction; only the 503 and 400 (invalid parameter) mappings.
::httplib::Server::Handler public_route(::httplib::Server::Handler handler);

// GET /health/db: 200 when healthy, 503 otherwise, with the health report's JSON.
::httplib::Server::Handler health_handler(TenantManager& manager, HealthOptions options = {});
// GET /metrics: the Prometheus exposition of every sink that can render.
::httplib::Server::Handler metrics_handler(TenantManager& manager);

// Writes a refusal (status and JSON body).
void send(::httplib::Response& response, const TenantRefusal& refusal);

}  // namespace mt::adapter::httplib
