// migrate's rollout flags (--canary, --waves, --seed, --max-failures, --resume, the throttle's
// --max-replica-lag, --max-active-backends, --max-lock-waits, --throttle-timeout, and
// --concurrency N|auto) and how a report shows what they held back; defined in cmd_runs.cpp
// beside `mtctl runs`.
#pragma once

#include "cli.hpp"

#include <mt/fleet/commands.hpp>
#include <mt/migrations/migrate.hpp>

#include <nlohmann/json.hpp>

namespace mtctl {

void add_rollout_options(po::options_description& desc);
// Fills request.rollout / resume / concurrency from the flags; a malformed value is a UsageError
// (exit 2). Replaces request.progress with a bar that also shows "throttled: …" while the run waits.
void rollout_request(const po::variables_map& vm, mt::command::MigrateRequest& request, const Output& out);
// Adds the rollout's fields to a migrate document's summary, and prints its one-line reason.
void rollout_json(const mt::MigrateReport& report, nlohmann::json& summary);
void rollout_lines(const Output& out, const mt::MigrateReport& report);

}  // namespace mtctl
