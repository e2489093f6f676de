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
// (mt::DatabaseUnavailable, a broken connection, mt::PoolTimeout) also yields 503; any other
// exception propagates to the caller. Every response produced here has the request's HTTP version
// and keep-alive, and its payload prepared.
#pragma once

#include <mt/request.hpp>
#include <mt/tenant_context.hpp>
#include <mt/tenant_manager.hpp>

#include <boost/beast/http.hpp>

#include <functional>
#include <string>

namespace mt::adapter::beast {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

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
