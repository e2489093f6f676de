// mtctl runs [show ID]: the run ledger (mt/fleet/runs.hpp); and the rollout flags of migrate, seed,
// convert-format and sync.
#include "cli.hpp"
#include "json.hpp"
#include "rollout_flags.hpp"

#include <mt/base/errors.hpp>
#include <mt/fleet/runs.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <unistd.h>

namespace mtctl {

using nlohmann::json;

void add_rollout_options(po::options_description& desc, RolloutFlagSet set) {
    if (set == RolloutFlagSet::every)
        desc.add_options()(
            "canary", po::value<std::string>()->value_name("N|a,b"),
            "N: run the first N tenants (discovery order) first, one at a time; or a,b: these tenants. "
            "A canary failure stops the run (exit 1)")(
            "waves", po::value<std::string>()->value_name("1,10%,100%"),
            "cumulative waves, e.g. 1,10%,100%: each starts only if the one before kept the error budget")(
            "seed", po::value<uint64_t>()->value_name("N"), "shuffle the tenants of the waves with this seed (same seed, same order)");
    desc.add_options()(
        "max-failures", po::value<std::string>()->value_name("N|P%"),
        "N or P%: the error budget; once N tenants failed no other tenant starts (running ones finish)")(
        "resume", po::value<std::string>()->implicit_value("")->value_name("RUN"),
        "continue run RUN (default: the newest unfinished one) with exactly the tenants it had not finished")(
        "run", po::value<std::string>()->value_name("RUN"), "RUN for --resume (mtctl COMMAND --resume RUN)")(
        "max-replica-lag", po::value<std::string>()->value_name("DUR"),
        "start no new tenant (or migration) while a replica's replay lags more than DUR (pg_stat_replication, rollout.replicas)")(
        "max-active-backends", po::value<std::string>()->value_name("N"),
        "start no new tenant (or migration) while more than N other backends of the database are active")(
        "max-lock-waits", po::value<std::string>()->value_name("N"),
        "start no new tenant (or migration) while more than N other backends of the database wait on a lock")(
        "throttle-timeout", po::value<std::string>()->value_name("DUR"),
        "stop starting tenants once one throttled wait lasts longer than DUR (default 30m; 0: no bound)");
}

std::string rollout_flag_given(const po::variables_map& vm) {
    for (const char* flag : {"canary", "waves", "seed", "max-failures", "resume", "max-replica-lag", "max-active-backends",
                             "max-lock-waits", "throttle-timeout"})
        if (vm.count(flag)) return std::string("--") + flag;
    return {};
}

namespace {

// The progress bar, with "throttled: …" after it while the throttle holds the run back. Drawn only
// on a terminal, as Output::progress.
struct ThrottledBar {
    std::mutex mutex;
    std::string label;
    size_t done = 0, total = 0;
    std::string note;
    size_t drawn = 0;  // width of the last line drawn, to blank it

    void draw() {
        constexpr size_t width = 30;
        const size_t filled = total ? std::min(width, done * width / total) : width;
        std::string text = label + " [" + std::string(filled, '#') + std::string(width - filled, ' ') + "] " +
                           std::to_string(done) + "/" + std::to_string(total);
        if (!note.empty()) text += "  throttled: " + note;
        const size_t pad = drawn > text.size() ? drawn - text.size() : 0;
        std::cerr << "\r" << text << std::string(pad, ' ') << std::flush;
        drawn = text.size();
        if (total && done == total && note.empty()) {
            std::cerr << "\r" << std::string(drawn, ' ') << "\r" << std::flush;
            drawn = 0;
        }
    }
};

}  // namespace

RolloutFlags rollout_flags(const po::variables_map& vm, const Output& out, const std::string& command,
                           const std::string& label, const mt::TenantSelection& selection, bool dry_run) {
    RolloutFlags request;
    auto& ro = request.rollout;
    auto& th = ro.throttle;
    if (vm.count("concurrency")) {
        const auto text = vm["concurrency"].as<std::string>();
        if (text == "auto") {
            th.concurrency_auto = true;
        } else {
            const bool digits = !text.empty() && text.size() <= 6 &&
                                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
            // 0 is refused where every command checks its concurrency (mt::command::migrate).
            if (!digits) throw mt::UsageError("--concurrency " + text + ": expected a number of workers of at least 1, or auto");
            request.concurrency = std::stoi(text);
            th.concurrency_auto = false;
        }
    }
    if (vm.count("max-replica-lag"))
        th.max_replica_lag = mt::parse_duration_flag(vm["max-replica-lag"].as<std::string>(), "--max-replica-lag");
    if (vm.count("max-active-backends"))
        th.max_active_backends = mt::parse_limit(vm["max-active-backends"].as<std::string>(), "--max-active-backends");
    if (vm.count("max-lock-waits"))
        th.max_lock_waits = mt::parse_limit(vm["max-lock-waits"].as<std::string>(), "--max-lock-waits");
    if (vm.count("throttle-timeout"))
        th.timeout = mt::parse_duration_flag(vm["throttle-timeout"].as<std::string>(), "--throttle-timeout");
    if (out.globals().progress && !out.globals().quiet && isatty(STDERR_FILENO)) {
        auto bar = std::make_shared<ThrottledBar>();
        bar->label = label;
        request.progress = [bar](size_t done, size_t total) {
            std::lock_guard lock(bar->mutex);
            bar->done = done;
            bar->total = total;
            bar->draw();
        };
        th.on_change = [bar](const std::string& note) {
            std::lock_guard lock(bar->mutex);
            bar->note = note;
            bar->draw();
        };
    }
    if (vm.count("canary")) {
        const auto text = vm["canary"].as<std::string>();
        if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            ro.canary_count = mt::parse_quota(text, "--canary").value;
        } else {
            size_t start = 0;
            for (;;) {
                const size_t comma = text.find(',', start);
                std::string id = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                id.erase(0, id.find_first_not_of(' '));
                id.erase(id.find_last_not_of(' ') + 1);
                if (!id.empty()) ro.canary_ids.push_back(id);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
            if (ro.canary_ids.empty())
                throw mt::UsageError("--canary " + text + ": expected a number of tenants (3) or tenant ids (a,b)");
        }
    }
    if (vm.count("waves")) ro.waves = mt::parse_waves(vm["waves"].as<std::string>());
    if (vm.count("seed")) {
        if (!vm.count("waves"))
            throw mt::UsageError("--seed shuffles the order of --waves; give --waves too");
        ro.seed = vm["seed"].as<uint64_t>();
    }
    if (vm.count("max-failures")) ro.max_failures = mt::parse_quota(vm["max-failures"].as<std::string>(), "--max-failures");
    if (vm.count("run") && !vm.count("resume"))
        throw mt::UsageError("unexpected argument " + vm["run"].as<std::string>() +
                             ": " + command + " takes a run id only after --resume (mtctl " + command + " --resume RUN)");
    if (vm.count("resume")) {
        const auto text = vm.count("run") ? vm["run"].as<std::string>() : vm["resume"].as<std::string>();
        request.resume = true;
        if (!text.empty()) {
            if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) || text.size() > 18)
                throw mt::UsageError("--resume " + text + ": expected a run id (see mtctl runs)");
            request.resume_run = std::stoll(text);
        }
        if (!selection.empty())
            throw mt::UsageError("--resume continues a run with its own tenants: drop --all/--tenant/--tenants");
        if (dry_run) throw mt::UsageError("--resume cannot be combined with --dry-run");
        if (ro.canary_count || !ro.canary_ids.empty() || !ro.waves.empty())
            throw mt::UsageError("--resume continues past the canary and the waves: drop --canary/--waves");
    }
    return request;
}

void rollout_request(const po::variables_map& vm, mt::command::MigrateRequest& request, const Output& out) {
    auto flags = rollout_flags(vm, out, "migrate", "migrating", request.scope.selection, request.dry_run);
    request.rollout = std::move(flags.rollout);
    request.resume = flags.resume;
    request.resume_run = flags.resume_run;
    if (flags.concurrency) request.concurrency = flags.concurrency;
    if (flags.progress) request.progress = std::move(flags.progress);
}

void rollout_json(const mt::RolloutSummary& r, const std::optional<int64_t>& run_id, json& summary) {
    summary["run_id"] = or_null(run_id);
    summary["stopped"] = r.stop == mt::RolloutStop::none ? json(nullptr) : json(mt::to_string(r.stop));
    summary["stop_reason"] = or_null(r.reason);
    summary["held_back"] = r.held_back;
    summary["canaries"] = r.canaries;
    summary["canary_failed"] = or_null(r.canary_failed);
    summary["waves"] = {{"planned", r.waves_planned}, {"started", r.waves_started}};
    summary["max_failures"] = r.budget ? json(r.budget) : json(nullptr);
    const auto& t = r.throttle;
    const auto ms = [](const std::optional<std::chrono::milliseconds>& d) { return d ? json(d->count()) : json(nullptr); };
    const auto limit = [](const std::optional<int>& n) { return n ? json(*n) : json(nullptr); };
    summary["throttle"] = {{"enabled", t.enabled},
                           {"max_replica_lag_ms", ms(t.max_replica_lag)},
                           {"max_active_backends", limit(t.max_active_backends)},
                           {"max_lock_waits", limit(t.max_lock_waits)},
                           {"timeout_ms", t.enabled ? json(t.timeout.count()) : json(nullptr)},
                           {"replicas", t.replicas},
                           {"waits", t.waits},
                           {"waited_ms", t.waited_ms},
                           {"probes", t.probes},
                           {"last_reason", or_null(t.last_reason)},
                           {"stop_reason", r.stop == mt::RolloutStop::throttle_timeout ? json(r.reason) : json(nullptr)}};
    const auto& c = r.concurrency;
    summary["concurrency"] = {{"mode", c.automatic ? "auto" : "fixed"}, {"start", c.start}, {"max", c.max},
                              {"final", c.final}, {"peak", c.peak}, {"adjustments", c.adjustments}};
}

void rollout_lines(const Output& out, const mt::RolloutSummary& rollout, const std::optional<int64_t>& run_id) {
    const auto& t = rollout.throttle;
    if (t.waits) {
        char waited[32];
        std::snprintf(waited, sizeof waited, "%.1f s", t.waited_ms / 1000.0);
        out.info("throttled " + std::to_string(t.waits) + (t.waits == 1 ? " time" : " times") + ", " + waited +
                 " in all (last: " + t.last_reason + ")");
    }
    if (!rollout.reason.empty()) out.line("stopped: " + rollout.reason);
    if (run_id) out.info("run " + std::to_string(*run_id) + " (mtctl runs show " + std::to_string(*run_id) + ")");
}

namespace {

json run_json(const mt::RunRecord& r) {
    return {{"id", r.id},
            {"command", r.command},
            {"folder_fingerprint", r.folder_fingerprint},
            {"started_at", r.started_at},
            {"finished_at", or_null(r.finished_at)},
            {"host", r.host},
            {"options", json::parse(r.options, nullptr, false)},
            {"outcome", r.outcome},
            {"stop_reason", or_null(r.stop_reason)},
            {"resumed", r.resumed},
            {"tenants", r.tenants},
            {"finished", r.finished},
            {"failed", r.failed},
            {"remaining", r.remaining}};
}

int cmd_runs(const Invocation& given, const Output& out) {
    // main.cpp takes one command word: "show" arrives as the first argument.
    Invocation inv = given;
    if (!inv.args.empty() && !inv.args[0].empty() && inv.args[0][0] != '-') {
        if (inv.args[0] != "show")
            throw mt::UsageError("unknown runs subcommand '" + inv.args[0] + "' (use: mtctl runs [show ID])");
        inv.words.push_back(inv.args[0]);
        inv.args.erase(inv.args.begin());
    }
    if (inv.words.size() > 1) {
        po::options_description desc("runs show options");
        desc.add_options()("id", po::value<int64_t>()->required()->value_name("ID"), "the run id (see mtctl runs)");
        po::positional_options_description pos;
        pos.add("id", 1);
        const auto vm = parse_options(inv, desc, &pos);
        const auto detail = mt::command::run_show(inv.globals.manifest_input(), vm["id"].as<int64_t>());
        json tenants = json::array();
        std::vector<std::vector<std::string>> rows{{"TENANT", "OUTCOME", "STARTED", "FINISHED", "ERROR"}};
        for (const auto& t : detail.tenants) {
            tenants.push_back({{"tenant", t.tenant},
                               {"outcome", t.outcome},
                               {"started_at", or_null(t.started_at)},
                               {"finished_at", or_null(t.finished_at)},
                               {"error", or_null(t.error)}});
            rows.push_back({t.tenant, t.outcome, t.started_at.value_or("-"), t.finished_at.value_or("-"), t.error});
        }
        json doc = run_json(detail.run);
        doc["tenant_outcomes"] = tenants;
        out.json(doc);
        const auto& r = detail.run;
        out.line("run " + std::to_string(r.id) + ": " + r.command + " " + r.outcome + ", started " + r.started_at + " on " +
                 r.host + (r.finished_at ? ", finished " + *r.finished_at : "") +
                 (r.resumed ? ", resumed " + std::to_string(r.resumed) + "x" : ""));
        if (!r.stop_reason.empty()) out.line("stopped: " + r.stop_reason);
        out.line("options " + r.options + ", folder fingerprint " + r.folder_fingerprint.substr(0, 12));
        out.line(std::to_string(r.tenants) + " tenants: " + std::to_string(r.finished) + " finished (" +
                 std::to_string(r.failed) + " failed), " + std::to_string(r.remaining) + " remaining");
        if (!inv.globals.json && !inv.globals.quiet) std::cout << table(rows);
        return 0;
    }
    po::options_description desc("runs options");
    desc.add_options()("limit", po::value<size_t>()->default_value(50)->value_name("N"), "show at most this many runs, newest first");
    const auto vm = parse_options(inv, desc);
    const auto list = mt::command::runs(inv.globals.manifest_input(), vm["limit"].as<size_t>());
    json runs = json::array();
    std::vector<std::vector<std::string>> rows{{"RUN", "COMMAND", "OUTCOME", "STARTED", "FINISHED", "HOST", "TENANTS", "FAILED", "REMAINING"}};
    for (const auto& r : list) {
        runs.push_back(run_json(r));
        rows.push_back({std::to_string(r.id), r.command, r.outcome, r.started_at, r.finished_at.value_or("-"), r.host,
                        std::to_string(r.tenants), std::to_string(r.failed), std::to_string(r.remaining)});
    }
    out.json({{"runs", runs}});
    if (list.empty()) out.line("no runs recorded yet");
    else if (!inv.globals.json && !inv.globals.quiet) std::cout << table(rows);
    return 0;
}

const bool runs_registered = register_command(
    {"runs", "runs [--limit N] | runs show ID", "recorded runs of migrate, seed, convert-format and sync repairs (the run ledger) / one run's tenants", 57, cmd_runs});

}  // namespace

}  // namespace mtctl
