#include "cli.hpp"

#include <mt/base/errors.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <chrono>
#include <ctime>
#include <iostream>

namespace mtctl {

namespace {

// ISO 8601 UTC, as the manager stamps its own reports.
std::string utc_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int cmd_health(const Invocation& inv, const Output& out) {
    po::options_description desc("health options");
    desc.add_options()("all", "ping every tenant the discovery plugin returns")(
        "tenant", po::value<std::vector<std::string>>()->composing(), "ping this tenant (repeatable)")(
        "tenants", po::value<std::string>(), "comma-separated tenant ids")(
        "timeout", po::value<std::string>()->default_value("5s"), "ping timeout; slower than half is degraded")(
        "pending", "also count each tenant's pending migrations (as status does); any makes it degraded");
    const auto vm = parse_options(inv, desc);
    mt::Kernel kernel(inv.globals.manifest_input());
    mt::TenantManager manager(kernel);
    mt::HealthOptions options;
    options.timeout = duration_flag(vm, "timeout");
    options.pending = vm.count("pending") > 0;
    mt::HealthReport report;
    const auto start = std::chrono::steady_clock::now();
    try {
        if (vm.count("all") || vm.count("tenant") || vm.count("tenants"))
            for (const auto& t : kernel.select(tenant_selection(vm))) options.tenants.push_back(t.id);
        report = manager.health_check(options);
    } catch (const mt::DatabaseUnavailable& e) {
        // The tenant list itself could not be read: the fleet is unhealthy, not the command wrong.
        report.healthy = false;
        report.shared.status = mt::HealthStatus::unhealthy;
        report.shared.error = e.what();
        report.timestamp = utc_now();
        report.duration_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    out.json(nlohmann::json::parse(mt::to_json(report)));
    auto mark = [&](mt::HealthStatus s) {
        const std::string text = mt::to_string(s);
        return out.paint(pad(text, 10), s == mt::HealthStatus::ok ? "32" : s == mt::HealthStatus::degraded ? "33" : "31");
    };
    out.line(mark(report.shared.status) + "shared schema " + kernel.manifest().isolation.shared_schema +
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

const bool registered = register_command(
    {"health", "health [--all | --tenant ID | --tenants a,b] [--timeout 5s] [--pending]",
     "ping the shared schema (and tenants); exit 1 when unhealthy", 80, cmd_health});

}  // namespace
}  // namespace mtctl
