// mtctl seed --file F: runs a SQL file in each selected tenant, one transaction per tenant, under
// the rollout controls (canary, waves, error budget, throttle) and recorded in the run ledger, so
// that `seed --resume` continues a stopped run.
#include "cli.hpp"
#include "json.hpp"
#include "rollout_flags.hpp"

#include <mt/base/errors.hpp>
#include <mt/fleet/commands.hpp>
#include <mt/fleet/seed.hpp>

#include <iostream>

namespace mtctl {

namespace {

using nlohmann::json;

int cmd_seed(const Invocation& inv, const Output& out) {
    po::options_description desc("seed options");
    add_tenant_selection(desc);
    desc.add_options()("file", po::value<std::string>()->value_name("F"),
                       "the SQL file to run in each tenant (with --resume: the run's own, unless given)")(
        "concurrency", po::value<std::string>()->value_name("N|auto"),
        "workers (and connections) per server (default migrations.concurrency); auto: adapt to the server");
    add_rollout_options(desc);
    po::positional_options_description pos;
    pos.add("run", 1);  // seed --resume RUN
    const auto vm = parse_options(inv, desc, &pos);
    mt::command::SeedRequest request;
    request.selection = tenant_selection(vm);
    if (vm.count("file")) request.file = vm["file"].as<std::string>();
    request.progress = out.progress("seeding");
    auto flags = rollout_flags(vm, out, "seed", "seeding", request.selection, false);
    request.rollout = std::move(flags.rollout);
    request.resume = flags.resume;
    request.resume_run = flags.resume_run;
    request.concurrency = flags.concurrency;
    if (flags.progress) request.progress = std::move(flags.progress);
    if (request.file.empty() && !request.resume)
        throw mt::UsageError("--file F is required: the SQL file to run in each tenant (nothing was run)");
    const auto report = mt::command::seed(inv.globals.manifest_input(), request);

    json list = json::array();
    for (const auto& r : report.tenants) {
        json j = tenant_json(r.tenant);
        j["outcome"] = r.skipped ? "skipped" : r.ok ? "ok" : "failed";
        j["duration_ms"] = r.duration_ms;
        if (!r.ok && !r.skipped) {
            j["error"] = r.error;
            j["sqlstate"] = r.sqlstate.empty() ? json(nullptr) : json(r.sqlstate);
        }
        list.push_back(j);
        if (r.skipped) {
            if (out.globals().verbose) out.info("skip " + r.tenant.id);
        } else if (r.ok) {
            if (out.globals().verbose) out.info(out.paint("ok", "32") + "   " + r.tenant.id);
        } else {
            std::cerr << out.paint("FAIL", "31") << " " << r.tenant.id << " (" << r.tenant.schema << ")"
                      << (r.sqlstate.empty() ? "" : " [" + r.sqlstate + "]") << ": " << r.error << "\n";
        }
    }
    json summary{{"total", report.total},
                 {"succeeded", report.succeeded},
                 {"failed", report.failed},
                 {"skipped", report.skipped},
                 {"duration_ms", report.duration_ms}};
    rollout_json(report.rollout, report.run_id, summary);
    out.json({{"command", "seed"}, {"file", report.file.string()}, {"tenants", list}, {"summary", summary}});
    out.line("seed " + report.file.string() + ": " + std::to_string(report.total) + " tenants, " +
             std::to_string(report.succeeded) + " succeeded, " + std::to_string(report.failed) + " failed" +
             (report.skipped ? ", " + std::to_string(report.skipped) + " skipped" : std::string()) + " in " +
             seconds(report.duration_ms));
    rollout_lines(out, report.rollout, report.run_id);
    // A run the throttle stopped did not do what was asked, even with no tenant failed.
    return report.failed || report.rollout.stop == mt::RolloutStop::throttle_timeout ? 1 : 0;
}

const bool seed_registered = register_command(
    {"seed",
     "seed --file F (--all | --tenant ID | --tenants a,b) [--concurrency N|auto] [--canary N|a,b] "
     "[--waves 1,10%,100% [--seed N]] [--max-failures N|P%] [--max-replica-lag DUR] [--max-active-backends N] "
     "[--max-lock-waits N] [--throttle-timeout DUR] | seed --resume [RUN] [--file F]",
     "run a SQL file in each selected tenant (one transaction per tenant)", 56, cmd_seed});

}  // namespace

}  // namespace mtctl
