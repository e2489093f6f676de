#include <mt/adapter/beast.hpp>

namespace mt::adapter::beast {

namespace {
std::string text(boost::beast::string_view s) { return std::string(s.data(), s.size()); }
}  // namespace

RequestView request_view(const Request& request) {
    RequestView view;
    view.method = text(request.method_string());
    const std::string target = text(request.target());
    const auto q = target.find('?');
    view.path = target.substr(0, q);
    if (q != std::string::npos) view.query = target.substr(q + 1);
    view.host = text(request[http::field::host]);
    for (const auto& field : request) view.headers.emplace_back(text(field.name_string()), text(field.value()));
    return view;
}

Response make_response(const Request& request, http::status status, std::string body, const std::string& content_type) {
    Response res{status, request.version()};
    res.set(http::field::content_type, content_type);
    res.keep_alive(request.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

Response refusal_response(const Request& request, const TenantRefusal& refusal) {
    return make_response(request, static_cast<http::status>(refusal.status), refusal.body());
}

Response with_tenant(TenantGate& gate, const Request& request, const TenantHandler& handler, LeaseOptions lease) {
    auto admission = gate.admit(request_view(request), lease);
    if (!admission) return refusal_response(request, admission.refusal);
    try {
        return handler(request, *admission.context);
    } catch (const std::exception& e) {
        if (!is_database_unavailable(e)) throw;
        return refusal_response(request, unavailable_refusal(e));
    }
}

Response public_route(const Request& request, const PublicHandler& handler) {
    try {
        return handler(request);
    } catch (const std::exception& e) {
        if (!is_database_unavailable(e)) throw;
        return refusal_response(request, unavailable_refusal(e));
    }
}

Response health_response(TenantManager& manager, const Request& request, HealthOptions options) {
    const auto report = manager.health_check(options);
    return make_response(request, report.healthy ? http::status::ok : http::status::service_unavailable,
                         to_json(report));
}

Response metrics_response(TenantManager& manager, const Request& request) {
    return make_response(request, http::status::ok, manager.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace mt::adapter::beast
