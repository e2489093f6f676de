// mtctl health: the kernel's health report (the shared schema, and the selected tenants); exit 1
// when unhealthy, an unreachable database included.
#include "cli.hpp"
#include "json.hpp"

#include <mt/fleet/command_results.hpp>

namespace mtctl {

namespace {

int cmd_health(const Invocation& inv, const Output& out) {
    po::options_description desc("health options");
    desc.add_options()("all", "ping every tenant the discovery plugin returns")(
        "tenant", po::value<std::vector<std::string>>()->composing()->value_name("ID"), "ping this tenant (repeatable)")(
        "tenants", po::value<std::string>()->value_name("a,b"), "comma-separated tenant ids")(
        "timeout", po::value<std::string>()->value_name("DURATION"),
        ("ping timeout (default " + std::to_string(mt::command::HealthRequest{}.timeout.count()) +
         "ms); slower than half is degraded").c_str())(
        "pending", "also count each tenant's pending migrations (as status does); any makes it degraded");
    const auto vm = parse_options(inv, desc);
    mt::command::HealthRequest request;
    request.selection = tenant_selection(vm);
    if (vm.count("timeout")) request.timeout = duration_flag(vm, "timeout");
    request.pending = vm.count("pending") > 0;
    const auto [report, shared_schema] = mt::command::health(inv.globals.manifest_input(), request);
    out.json(nlohmann::json::parse(mt::to_json(report)));
    auto mark = [&](mt::HealthStatus s) {
        const std::string text = mt::to_string(s);
        return out.paint(pad(text, 10), s == mt::HealthStatus::ok ? "32" : s == mt::HealthStatus::degraded ? "33" : "31");
    };
    out.line(mark(report.shared.status) + "shared schema " + shared_schema +
             (report.shared.error.empty() ? "" : ": " + report.shared.error));
    for (const auto& p : report.pools)
        out.line(mark(p.status) + p.tenant + " (" + p.schema + (p.server ? " on servers." + *p.server : std::string()) +
                 ") " + std::to_string(static_cast<long>(p.response_ms)) + "ms" +
                 (p.pending ? ", " + std::to_string(*p.pending) + " pending" : std::string()) +
                 (p.error.empty() ? "" : ": " + p.error));
    out.line(std::string(report.healthy ? "healthy" : "UNHEALTHY") + ": " + std::to_string(report.total_pools) +
             " tenants checked, " + std::to_string(report.degraded_pools) + " degraded, " +
             std::to_string(report.unhealthy_pools) + " unhealthy");
    return report.healthy ? 0 : 1;
}

const bool health_registered = register_command(
    {"health", "health [--all | --tenant ID | --tenants a,b] [--timeout 5s] [--pending]",
     "ping the shared schema (and tenants); exit 1 when unhealthy", 80, cmd_health});

}  // namespace
}  // namespace mtctl
