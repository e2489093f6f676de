// Rollout controls of migrate (issue 14): canary, waves, error budget. The canary runs one tenant
// at a time so that its first failure stops it before a second canary starts; waves are cumulative
// cut points over the tenants to migrate; the budget is checked as each tenant is about to start,
// so with concurrency C at most C - 1 tenants that had already started when the budget ran out
// can still fail after it (at concurrency 1 exactly N failures stop the run).
#include "migrations/rollout_schedule.hpp"
#include "migrations/throttle.hpp"
#include "migrations/workers.hpp"

#include <mt/base/errors.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <set>

namespace mt {

size_t Quota::of(size_t total) const {
    const size_t n = percent ? (value * total + 99) / 100 : value;
    return std::min(n, total);
}

std::string Quota::text() const { return std::to_string(value) + (percent ? "%" : ""); }

Quota parse_quota(const std::string& text, const std::string& flag) {
    Quota q;
    std::string digits = text;
    if (!digits.empty() && digits.back() == '%') {
        q.percent = true;
        digits.pop_back();
    }
    const bool numeric = !digits.empty() && digits.size() <= 9 &&
                         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!numeric)
        throw UsageError(flag + " " + text + ": expected a number of tenants (3) or a percentage of them (10%)");
    q.value = std::stoul(digits);
    if (q.value < 1) throw UsageError(flag + " " + text + ": must be at least 1");
    if (q.percent && q.value > 100) throw UsageError(flag + " " + text + ": a percentage is at most 100%");
    return q;
}

std::vector<Quota> parse_waves(const std::string& text) {
    std::vector<Quota> waves;
    size_t start = 0;
    for (;;) {
        const size_t comma = text.find(',', start);
        std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        part.erase(0, part.find_first_not_of(' '));
        part.erase(part.find_last_not_of(' ') + 1);
        waves.push_back(parse_quota(part, "--waves"));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    for (size_t i = 1; i < waves.size(); ++i)
        if (waves[i].percent == waves[i - 1].percent && waves[i].value <= waves[i - 1].value)
            throw UsageError("--waves " + text + ": wave sizes are cumulative, so each must be larger than the one before (" +
                             waves[i - 1].text() + " then " + waves[i].text() + ")");
    return waves;
}

void check_canary_ids(const TenantList& selected, const RolloutOptions& options) {
    for (const auto& id : options.canary_ids)
        if (std::none_of(selected.begin(), selected.end(), [&](const Tenant& t) { return t.id == id; }))
            throw UsageError("--canary " + id + ": not among the selected tenants; a canary must be one of the tenants "
                             "the run migrates (check the id with: mtctl tenant list)");
}

std::string to_string(RolloutStop s) {
    switch (s) {
        case RolloutStop::none: return "none";
        case RolloutStop::canary_failed: return "canary-failed";
        case RolloutStop::budget_spent: return "budget-spent";
        case RolloutStop::wave_failed: return "wave-failed";
        case RolloutStop::waves_ended: return "waves-ended";
        case RolloutStop::fail_fast: return "fail-fast";
        case RolloutStop::throttle_timeout: return "throttle-timeout";
    }
    return "?";
}

namespace {

// Fisher–Yates with mt19937_64, whose sequence the standard fixes: the same seed gives the same
// order with every standard library (std::shuffle's would not).
void shuffle(std::vector<size_t>& order, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
}

std::string tenants_text(size_t n) { return std::to_string(n) + (n == 1 ? " tenant" : " tenants"); }

}  // namespace

void run_rollout(const TenantList& tenants, const std::vector<size_t>& todo, const RolloutRun& options,
                 const RolloutStart& before, RolloutSummary& summary,
                 const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                 const std::function<void(size_t)>& held_back, const RolloutPacing& pacing) {
    const auto& ro = options.rollout;

    std::vector<size_t> canary;
    if (ro.canary_count) {
        canary.assign(todo.begin(), todo.begin() + static_cast<std::ptrdiff_t>(std::min(*ro.canary_count, todo.size())));
    } else {
        for (const auto& id : ro.canary_ids)
            for (size_t i = 0; i < tenants.size(); ++i)
                if (tenants[i].id == id && std::find(canary.begin(), canary.end(), i) == canary.end()) canary.push_back(i);
    }
    for (size_t i : canary) summary.canaries.push_back(tenants[i].id);
    // A canary that failed its checks before the run (missing schema, unknown format) failed already.
    const std::string& canary_failed_before = before.canary_failed;
    // Canaries with nothing to migrate pass as they are.
    std::erase_if(canary, [&](size_t i) { return !std::binary_search(todo.begin(), todo.end(), i); });

    std::vector<size_t> rest;
    for (size_t i : todo)
        if (std::find(canary.begin(), canary.end(), i) == canary.end()) rest.push_back(i);
    if (ro.seed) shuffle(rest, *ro.seed);

    std::vector<std::vector<size_t>> waves;
    {
        const std::vector<Quota> cuts = ro.waves.empty() ? std::vector<Quota>{Quota{100, true}} : ro.waves;
        size_t at = 0;
        for (const auto& cut : cuts) {
            const size_t cumulative = cut.of(todo.size());
            const size_t end = std::min(rest.size(), cumulative > canary.size() ? cumulative - canary.size() : 0);
            if (end > at) waves.emplace_back(rest.begin() + static_cast<std::ptrdiff_t>(at), rest.begin() + static_cast<std::ptrdiff_t>(end));
            at = std::max(at, end);
        }
        if (at < rest.size()) {
            // Tenants beyond the last wave: held back so that a later --resume migrates them.
            summary.stop = RolloutStop::waves_ended;
        }
    }
    summary.waves_planned = waves.size();

    size_t failures = before.failed;
    std::optional<size_t> budget;
    if (ro.max_failures) {
        budget = std::max<size_t>(1, ro.max_failures->of(before.budget_of ? before.budget_of : todo.size()));
        summary.budget = *budget;
    }

    std::mutex mutex;  // failures, summary
    std::atomic<bool> stopped{false};
    std::atomic<size_t> held{before.held_before};
    std::atomic<size_t> done{0};
    const bool waves_end_early = summary.stop == RolloutStop::waves_ended;
    summary.stop = RolloutStop::none;
    auto hold = [&](RolloutStop why) {
        if (summary.stop == RolloutStop::none) summary.stop = why;
        stopped = true;
    };
    auto skip = [&](size_t i) {
        held_back(i);
        ++held;
    };
    if (!canary_failed_before.empty()) {
        summary.canary_failed = canary_failed_before;
        hold(RolloutStop::canary_failed);
    } else if (budget && failures >= *budget) {
        hold(RolloutStop::budget_spent);
    }

    const auto progress = [&](size_t, size_t) {
        if (options.progress) options.progress(++done, todo.size());
    };
    auto run_phase = [&](const std::vector<size_t>& phase, int concurrency, bool is_canary) {
        size_t phase_failures = 0;
        for_each_tenant(
            tenants, phase, concurrency, false, progress,
            [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
                if (stopped) {
                    skip(i);
                    return true;
                }
                // --concurrency auto: a slot among the controller's target (the canary runs alone anyway).
                struct Slot {
                    AdaptiveConcurrency* pool;
                    ~Slot() {
                        if (pool) pool->finish();
                    }
                } slot{is_canary ? nullptr : pacing.adaptive};
                if (slot.pool) slot.pool->acquire();
                if (stopped) {
                    skip(i);
                    return true;
                }
                if (pacing.before_tenant && !pacing.before_tenant(i, conn)) {
                    std::lock_guard lock(mutex);
                    hold(RolloutStop::throttle_timeout);
                    skip(i);
                    return true;
                }
                const bool ok = work(i, conn);
                std::lock_guard lock(mutex);
                if (!ok) {
                    ++failures;
                    ++phase_failures;
                    if (is_canary) {
                        if (summary.canary_failed.empty()) summary.canary_failed = tenants[i].id;
                        hold(RolloutStop::canary_failed);
                    } else if (budget && failures >= *budget) {
                        hold(RolloutStop::budget_spent);
                    } else if (options.fail_fast) {
                        hold(RolloutStop::fail_fast);
                    }
                }
                return ok;
            },
            skip);
        return phase_failures;
    };

    if (stopped) {
        for (size_t i : canary) skip(i);
    } else if (!canary.empty()) {
        run_phase(canary, 1, true);
    }
    for (size_t w = 0; w < waves.size(); ++w) {
        if (stopped) {
            for (size_t i : waves[w]) skip(i);
            continue;
        }
        ++summary.waves_started;
        const size_t wave_failures = run_phase(waves[w], options.concurrency, false);
        // Without a budget a wave that failed anywhere ends the rollout; with one, the budget decides.
        if (wave_failures > 0 && !budget && !ro.waves.empty() && w + 1 < waves.size()) hold(RolloutStop::wave_failed);
    }
    if (waves_end_early) {
        const size_t covered = [&] {
            size_t n = 0;
            for (const auto& w : waves) n += w.size();
            return n;
        }();
        for (size_t k = covered; k < rest.size(); ++k) skip(rest[k]);
        if (summary.stop == RolloutStop::none) summary.stop = RolloutStop::waves_ended;
    }
    summary.held_back = held;
    // Tenants held back without being handed to a worker still complete the progress bar.
    if (options.progress && done < todo.size()) options.progress(todo.size(), todo.size());
    const std::string resume_hint = " (continue with: mtctl " + options.command + " --resume)";

    const std::string not_started = tenants_text(summary.held_back) + " not started";
    switch (summary.stop) {
        case RolloutStop::none: break;
        case RolloutStop::canary_failed:
            summary.reason = "canary " + summary.canary_failed + " failed; " + not_started;
            break;
        case RolloutStop::budget_spent:
            summary.reason = "error budget spent: " + std::to_string(failures) + " failed (--max-failures " +
                             ro.max_failures->text() + " = " + std::to_string(*budget) + "); " + not_started;
            break;
        case RolloutStop::wave_failed:
            summary.reason = "wave " + std::to_string(summary.waves_started) + " of " + std::to_string(waves.size()) +
                             " had failures and no --max-failures allows any; " + not_started;
            break;
        case RolloutStop::waves_ended:
            summary.reason = "the last wave (" + ro.waves.back().text() + ") ends before every tenant; " + not_started +
                             resume_hint;
            break;
        case RolloutStop::fail_fast:
            summary.reason = "--fail-fast: a tenant failed; " + not_started;
            break;
        case RolloutStop::throttle_timeout:
            // RolloutPacer::finish words it: it knows the throttle's limit and what held the run back.
            summary.reason = not_started + resume_hint;
            break;
    }
}

RolloutPacer::RolloutPacer(const Kernel& kernel, const RolloutOptions& rollout, bool automatic, size_t tenants)
    : kernel_(kernel), automatic_(automatic && tenants > 0) {
    const ThrottleSettings limits = resolve_throttle(kernel.manifest(), rollout.throttle);
    limits_ = limits.any_limit();
    if (limits_ || automatic_) {
        throttle_ = std::make_unique<Throttle>(kernel, limits, rollout.throttle.on_change);
        throttle_->own(rollout.throttle.own_backends);
    }
    if (automatic_) {
        auto conn = kernel.connect();
        max_ = std::min<int>(auto_concurrency_max(*conn), static_cast<int>(std::min<size_t>(tenants, 1 << 20)));
        adaptive_ = std::make_unique<AdaptiveConcurrency>(2, max_, throttle_.get());
    }
}

RolloutPacer::~RolloutPacer() = default;

int RolloutPacer::concurrency(int fixed) const { return automatic_ ? std::max(1, max_) : fixed; }

// Registers the worker's backend (not counted among "other" backends), then waits its turn.
bool RolloutPacer::wait(std::unique_ptr<pqxx::connection>& conn, const std::optional<std::string>& server) {
    try {
        if (!conn || !conn->is_open()) conn = kernel_.connect(server);
        throttle_->own(conn->backendpid());
    } catch (const std::exception&) {
        conn.reset();  // the tenant's own connect reports it
    }
    return throttle_->wait_turn();
}

RolloutPacing RolloutPacer::pacing(const std::vector<Tenant>& tenants) {
    RolloutPacing pacing;
    pacing.adaptive = adaptive_.get();
    if (throttle_)
        pacing.before_tenant = [this, &tenants](size_t i, std::unique_ptr<pqxx::connection>& conn) {
            return wait(conn, tenants[i].server);
        };
    return pacing;
}

RolloutPacing RolloutPacer::pacing(const TenantList& tenants) {
    RolloutPacing pacing;
    pacing.adaptive = adaptive_.get();
    if (throttle_)
        pacing.before_tenant = [this, &tenants](size_t i, std::unique_ptr<pqxx::connection>& conn) {
            return wait(conn, tenants.server(i));
        };
    return pacing;
}

std::function<void(std::unique_ptr<pqxx::connection>&)> RolloutPacer::between(const std::optional<std::string>& server) {
    if (!throttle_ || !limits_) return {};
    return [this, server](std::unique_ptr<pqxx::connection>& conn) { wait(conn, server); };
}

void RolloutPacer::finish(RolloutSummary& summary, int fixed) {
    summary.concurrency = {automatic_, fixed, fixed, fixed, fixed, 0};
    if (throttle_) summary.throttle = throttle_->summary();
    if (adaptive_) summary.concurrency = adaptive_->summary();
    if (summary.stop == RolloutStop::throttle_timeout && throttle_)
        summary.reason = "throttle timeout: throttled by " + throttle_->stopped_by() + " for longer than " +
                         throttle_->timeout_text() + "; " + summary.reason;
}

}  // namespace mt
