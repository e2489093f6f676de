// cpp-httplib adapter (SPEC §3.1): tenant routes receive the tenant id and a lease.
//
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
// (mt::DatabaseUnavailable, a broken connection, mt::PoolTimeout) also gets 503; any other
// exception goes on to the server's exception handler.
#pragma once

#include <mt/request.hpp>
#include <mt/tenant_context.hpp>
#include <mt/tenant_manager.hpp>

#include <httplib.h>

#include <functional>

namespace mt::adapter::httplib {

using TenantHandler = std::function<void(const ::httplib::Request&, ::httplib::Response&, TenantContext&)>;

// The kernel's request view of a cpp-httplib request: method, the raw (still percent-encoded) path
// and query from the request target, the Host header, and every header.
RequestView request_view(const ::httplib::Request& request);

// A route for a tenant: admits the request through the gate (extract, validate, check, lease), then
// runs handler with the context. The lease goes back to its pool when the handler returns.
::httplib::Server::Handler with_tenant(TenantGate& gate, TenantHandler handler, LeaseOptions lease = {});

// A public route: no extraction; only the 503 mapping of database-unavailable errors.
::httplib::Server::Handler public_route(::httplib::Server::Handler handler);

// GET /health/db: 200 when healthy, 503 otherwise, with the health report's JSON.
::httplib::Server::Handler health_handler(TenantManager& manager, HealthOptions options = {});
// GET /metrics: the Prometheus exposition of every sink that can render.
::httplib::Server::Handler metrics_handler(TenantManager& manager);

// Writes a refusal (status and JSON body).
void send(::httplib::Response& response, const TenantRefusal& refusal);

}  // namespace mt::adapter::httplib
