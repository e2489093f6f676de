// Rollout controls of `migrate` (issue 14, SPEC §11): a canary, waves and an error budget over the
// tenants a run migrates. Light on purpose (no libpqxx): mt/fleet/commands.hpp includes it.
#pragma once

#include <mt/context/tenant.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
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

// Throttling (issue 14, docs/rollouts.md "Throttling"): limits checked before each tenant starts
// and between a tenant's migrations; while one is exceeded no new migration starts. Unset fields
// take the manifest's [rollout] value; a flag overrides the manifest.
struct ThrottleOptions {
    std::optional<std::chrono::milliseconds> max_replica_lag;  // --max-replica-lag
    std::optional<int> max_active_backends;                    // --max-active-backends
    std::optional<int> max_lock_waits;                         // --max-lock-waits
    // --throttle-timeout: the longest one continuous wait may last before the run stops starting
    // tenants (0: no bound). Default: the manifest's, else kDefaultThrottleTimeout.
    std::optional<std::chrono::milliseconds> timeout;
    // --concurrency auto (true), --concurrency N (false); unset: [migrations] concurrency.
    std::optional<bool> concurrency_auto;
    // Backends of this mtctl besides the workers' and the probe's (the run ledger's): not counted.
    std::vector<int> own_backends;
    // Called (serialised) when a wait starts or its reason changes ("replica lag 3.4 s") and with
    // an empty text when it ends: the progress bar's note.
    std::function<void(const std::string&)> on_change;
};
inline constexpr std::chrono::milliseconds kDefaultThrottleTimeout = std::chrono::minutes(30);

// Parses a --max-active-backends / --max-lock-waits value (a whole number ≥ 0); a malformed one is
// a UsageError naming flag.
int parse_limit(const std::string& text, const std::string& flag);
// Parses a duration flag as the manifest does (250ms, 5s, 2m, 1h); a malformed one is a UsageError
// naming flag.
std::chrono::milliseconds parse_duration_flag(const std::string& text, const std::string& flag);

// `--concurrency auto`: a pure controller the worker pool feeds once per window (about a second
// of work) and that returns the number of tenants to run at once. It starts at `start`, raises
// the target by half (at least one) while tenants per second rose by 10 % or more since the
// last raise, steps back to the previous target when a raise brought no gain, halves it when a
// throttle limit was hit, and takes one off when the throttle probe's latency grew to more than
// twice (and 20 ms above) the lowest seen. Always within [1, max].
class ConcurrencyController {
public:
    struct Observation {
        double tenants_per_second = 0;  // finished in the window / its length
        double probe_latency_ms = 0;    // the throttle probe's round trip (latest in the window)
        bool throttled = false;         // a limit was exceeded during the window
    };
    ConcurrencyController(int start, int max);
    int target() const { return target_; }
    int max() const { return max_; }
    int peak() const { return peak_; }
    // Feeds one window's observation; returns the new target.
    int observe(const Observation& o);

private:
    int max_;
    int target_;
    int peak_;
    int previous_ = 0;          // the target before the last raise (0: the last change was not a raise)
    double previous_tps_ = 0;   // throughput measured at `previous_`
    double best_latency_ = -1;  // lowest probe latency seen
    int hold_ = 0;              // windows to wait before trying a raise again after a step back
};

struct RolloutOptions {
    std::optional<size_t> canary_count;    // --canary N: the first N tenants to migrate, in discovery order
    std::vector<std::string> canary_ids;   // --canary a,b
    std::vector<Quota> waves;              // --waves; empty: one wave of every tenant
    std::optional<uint64_t> seed;          // --seed: shuffle the non-canary tenants deterministically
    std::optional<Quota> max_failures;     // --max-failures: the error budget
    ThrottleOptions throttle;              // --max-replica-lag, --max-active-backends, --max-lock-waits, …
    bool any() const {
        return canary_count || !canary_ids.empty() || !waves.empty() || seed || max_failures;
    }
};

// A --canary id that is not among the selected tenants is a UsageError (before anything changes).
void check_canary_ids(const TenantList& selected, const RolloutOptions& options);

// Why a run stopped starting tenants, for the summary and the run ledger.
enum class RolloutStop { none, canary_failed, budget_spent, wave_failed, waves_ended, fail_fast, throttle_timeout };
std::string to_string(RolloutStop);

// What the throttle did in a run (--json: summary.throttle).
struct ThrottleSummary {
    bool enabled = false;  // a limit was set (else the rest stays empty)
    std::optional<std::chrono::milliseconds> max_replica_lag;
    std::optional<int> max_active_backends, max_lock_waits;
    std::chrono::milliseconds timeout{0};
    std::vector<std::string> replicas;  // the manifest's, redacted
    size_t waits = 0;                   // throttled stretches
    double waited_ms = 0;               // their total length
    std::string last_reason;            // "replica lag 3.4 s > 1 s (replica standby1)"
    size_t probes = 0;
};

// How many tenants ran at once (--json: summary.concurrency).
struct ConcurrencySummary {
    bool automatic = false;
    int start = 0, max = 0, final = 0, peak = 0;
    size_t adjustments = 0;  // target changes
};

struct RolloutSummary {
    RolloutStop stop = RolloutStop::none;
    std::string reason;          // one sentence, empty when nothing was held back
    std::string canary_failed;   // the canary tenant that failed
    std::vector<std::string> canaries;
    size_t budget = 0;           // failures that spend the budget (0: no budget)
    size_t waves_planned = 0;    // canary phase not counted
    size_t waves_started = 0;
    size_t held_back = 0;        // tenants skipped because of `stop`
    ThrottleSummary throttle;
    ConcurrencySummary concurrency;
};

}  // namespace mt
