// Rollout controls of `migrate` (issue 14, SPEC §11): a canary, waves and an error budget over the
// tenants a run migrates. Light on purpose (no libpqxx): mt/fleet/commands.hpp includes it.
#pragma once

#include <mt/context/tenant.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mt {

// A count ("3") or a share ("10%") of the tenants a run migrates; a share rounds up, so that a
// non-zero share of a non-empty run is at least one tenant.
struct Quota {
    size_t value = 0;
    bool percent = false;
    size_t of(size_t total) const;
    std::string text() const;
};
// Parses "N" or "P%" (P in 1..100, N ≥ 1); a malformed one is a UsageError naming flag.
Quota parse_quota(const std::string& text, const std::string& flag);
// "1,10%,100%": each cumulative (a later wave never ends before an earlier one).
std::vector<Quota> parse_waves(const std::string& text);

struct RolloutOptions {
    std::optional<size_t> canary_count;    // --canary N: the first N tenants to migrate, in discovery order
    std::vector<std::string> canary_ids;   // --canary a,b
    std::vector<Quota> waves;              // --waves; empty: one wave of every tenant
    std::optional<uint64_t> seed;          // --seed: shuffle the non-canary tenants deterministically
    std::optional<Quota> max_failures;     // --max-failures: the error budget
    bool any() const {
        return canary_count || !canary_ids.empty() || !waves.empty() || seed || max_failures;
    }
};

// A --canary id that is not among the selected tenants is a UsageError (before anything changes).
void check_canary_ids(const std::vector<Tenant>& selected, const RolloutOptions& options);

// Why a run stopped starting tenants, for the summary and the run ledger.
enum class RolloutStop { none, canary_failed, budget_spent, wave_failed, waves_ended, fail_fast };
std::string to_string(RolloutStop);

struct RolloutSummary {
    RolloutStop stop = RolloutStop::none;
    std::string reason;          // one sentence, empty when nothing was held back
    std::string canary_failed;   // the canary tenant that failed
    std::vector<std::string> canaries;
    size_t budget = 0;           // failures that spend the budget (0: no budget)
    size_t waves_planned = 0;    // canary phase not counted
    size_t waves_started = 0;
    size_t held_back = 0;        // tenants skipped because of `stop`
};

}  // namespace mt
