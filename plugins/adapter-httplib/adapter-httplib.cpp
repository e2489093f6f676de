#include <mt/adapter/httplib.hpp>

namespace mt::adapter::httplib {

namespace {
constexpr const char* json_type = "application/json";
}

RequestView request_view(const ::httplib::Request& request) {
    RequestView view;
    view.method = request.method;
    // request.path is already percent-decoded (%2F became '/'); extractors get the raw target.
    const std::string& target = request.target.empty() ? request.path : request.target;
    const auto q = target.find('?');
    view.path = target.substr(0, q);
    if (q != std::string::npos) view.query = target.substr(q + 1);
    view.host = request.get_header_value("Host");
    view.headers.reserve(request.headers.size());
    for (const auto& [name, value] : request.headers) view.headers.emplace_back(name, value);
    return view;
}

void send(::httplib::Response& response, const TenantRefusal& refusal) {
    response.status = refusal.status;
    response.set_content(refusal.body(), json_type);
}

::httplib::Server::Handler with_tenant(TenantGate& gate, TenantHandler handler, LeaseOptions lease) {
    return [&gate, handler = std::move(handler), lease](const ::httplib::Request& req, ::httplib::Response& res) {
        auto admission = gate.admit(request_view(req), lease);
        if (!admission) return send(res, admission.refusal);
        try {
            handler(req, res, *admission.context);
        } catch (const std::exception& e) {
            if (!is_database_unavailable(e)) throw;
            res.headers.clear();  // whatever the handler had set is not the answer any more
            send(res, unavailable_refusal(e));
        }
    };
}

::httplib::Server::Handler public_route(::httplib::Server::Handler handler) {
    return [handler = std::move(handler)](const ::httplib::Request& req, ::httplib::Response& res) {
        try {
            handler(req, res);
        } catch (const std::exception& e) {
            if (!is_database_unavailable(e)) throw;
            res.headers.clear();  // whatever the handler had set is not the answer any more
            send(res, unavailable_refusal(e));
        }
    };
}

::httplib::Server::Handler health_handler(TenantManager& manager, HealthOptions options) {
    return [&manager, options](const ::httplib::Request&, ::httplib::Response& res) {
        const auto report = manager.health_check(options);
        res.status = report.healthy ? 200 : 503;
        res.set_content(to_json(report), json_type);
    };
}

::httplib::Server::Handler metrics_handler(TenantManager& manager) {
    return [&manager](const ::httplib::Request&, ::httplib::Response& res) {
        res.set_content(manager.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    };
}

}  // namespace mt::adapter::httplib
