// mtctl seed --file F: runs a SQL file in each selected tenant, one transaction per tenant.
#include "cli.hpp"
#include "json.hpp"

#include <mt/fleet/commands.hpp>
#include <mt/fleet/seed.hpp>

#include <iostream>

namespace mtctl {

namespace {

using nlohmann::json;

int cmd_seed(const Invocation& inv, const Output& out) {
    po::options_description desc("seed options");
    add_tenant_selection(desc);
    desc.add_options()("file", po::value<std::string>()->required()->value_name("F"), "the SQL file to run in each tenant")(
        "concurrency", po::value<int>()->value_name("N"), "workers (and connections) per server (default migrations.concurrency)");
    const auto vm = parse_options(inv, desc);
    mt::command::SeedRequest request;
    request.selection = tenant_selection(vm);
    request.file = vm["file"].as<std::string>();
    request.concurrency = optional_flag<int>(vm, "concurrency");
    request.progress = out.progress("seeding");
    const auto report = mt::command::seed(inv.globals.manifest_input(), request);

    json list = json::array();
    for (const auto& r : report.tenants) {
        json j = tenant_json(r.tenant);
        j["outcome"] = r.ok ? "ok" : "failed";
        j["duration_ms"] = r.duration_ms;
        if (!r.ok) {
            j["error"] = r.error;
            j["sqlstate"] = r.sqlstate.empty() ? json(nullptr) : json(r.sqlstate);
        }
        list.push_back(j);
        if (r.ok) {
            if (out.globals().verbose) out.info(out.paint("ok", "32") + "   " + r.tenant.id);
        } else {
            std::cerr << out.paint("FAIL", "31") << " " << r.tenant.id << " (" << r.tenant.schema << ")"
                      << (r.sqlstate.empty() ? "" : " [" + r.sqlstate + "]") << ": " << r.error << "\n";
        }
    }
    out.json({{"command", "seed"},
              {"file", report.file.string()},
              {"tenants", list},
              {"summary",
               {{"total", report.total},
                {"succeeded", report.succeeded},
                {"failed", report.failed},
                {"duration_ms", report.duration_ms}}}});
    out.line("seed " + report.file.string() + ": " + std::to_string(report.total) + " tenants, " +
             std::to_string(report.succeeded) + " succeeded, " + std::to_string(report.failed) + " failed in " +
             seconds(report.duration_ms));
    return report.failed ? 1 : 0;
}

const bool registered = register_command(
    {"seed", "seed --file F (--all | --tenant ID | --tenants a,b) [--concurrency N]",
     "run a SQL file in each selected tenant (one transaction per tenant)", 56, cmd_seed});

}  // namespace

}  // namespace mtctl
