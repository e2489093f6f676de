// The rollout flags (--canary, --waves, --seed, --max-failures, --resume, the throttle's
// --max-replica-lag, --max-active-backends, --max-lock-waits, --throttle-timeout, and
// --concurrency N|auto) of migrate, seed, convert-format and sync's repairs, and how a report shows
// what they held back; defined in cmd_runs.cpp beside `mtctl runs`. docs/rollouts.md has which
// command takes which flag.
#pragma once

#include "cli.hpp"

#include <mt/fleet/commands.hpp>
#include <mt/migrations/migrate.hpp>

#include <nlohmann/json.hpp>

namespace mtctl {

// every: canary, waves, seed, budget, resume, throttle (migrate, seed, convert-format);
// repairs: budget, resume, throttle (sync, whose repairs are small metadata writes).
enum class RolloutFlagSet { every, repairs };
void add_rollout_options(po::options_description& desc, RolloutFlagSet set = RolloutFlagSet::every);

// What the flags ask for, parsed; a malformed value is a UsageError (exit 2). progress is a bar
// that also shows "throttled: …" while the run waits (empty when stderr is no terminal).
struct RolloutFlags {
    mt::RolloutOptions rollout;
    bool resume = false;
    std::optional<int64_t> resume_run;
    std::optional<int> concurrency;  // --concurrency N (auto: rollout.throttle.concurrency_auto)
    std::function<void(size_t, size_t)> progress;
};
// command names the flags in messages; label is the progress bar's ("seeding"); selection and
// dry_run are refused with --resume.
RolloutFlags rollout_flags(const po::variables_map& vm, const Output& out, const std::string& command,
                           const std::string& label, const mt::TenantSelection& selection, bool dry_run);
// The first rollout flag given ("--max-failures"), or empty: an invocation that only reads refuses it.
std::string rollout_flag_given(const po::variables_map& vm);

// migrate's: fills request.rollout / resume / concurrency / progress.
void rollout_request(const po::variables_map& vm, mt::command::MigrateRequest& request, const Output& out);
// Adds the rollout's fields to a document's summary, and prints its lines (throttled, stopped, run).
void rollout_json(const mt::RolloutSummary& rollout, const std::optional<int64_t>& run_id, nlohmann::json& summary);
void rollout_lines(const Output& out, const mt::RolloutSummary& rollout, const std::optional<int64_t>& run_id);
inline void rollout_json(const mt::MigrateReport& report, nlohmann::json& summary) {
    rollout_json(report.rollout, report.run_id, summary);
}
inline void rollout_lines(const Output& out, const mt::MigrateReport& report) {
    rollout_lines(out, report.rollout, report.run_id);
}

}  // namespace mtctl
