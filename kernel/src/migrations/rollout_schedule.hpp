// The order in which a fleet write starts tenants under the rollout controls, and its pacing
// (throttle, --concurrency auto): shared by migrate, seed, convert-format and sync's repairs
// (kernel-private; docs/rollouts.md has which command takes which control).
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/migrations/rollout.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

// What the run found before it started any tenant, and what an earlier part of it did (sync
// schedules its repairs batch by batch, each batch one call).
struct RolloutStart {
    size_t failed = 0;          // tenants that failed their checks, or in an earlier part (they spend the budget too)
    std::string canary_failed;  // the first --canary id (in the order given) among them
    size_t budget_of = 0;       // the count --max-failures P% is a share of (0: the tenants in todo)
    size_t held_before = 0;     // tenants an earlier part held back (counted in the summary and its reason)
};

// How a command runs its tenants: the controls, the worker count and the progress callback.
struct RolloutRun {
    RolloutOptions rollout;
    int concurrency = 10;
    bool fail_fast = false;
    std::function<void(size_t done, size_t total)> progress;
    std::string command = "migrate";  // for "(continue with: mtctl COMMAND --resume)"
};

// Runs work(index, connection) for the tenants in todo (ascending: discovery order): the canary
// first, one at a time, then each wave with run.concurrency workers, holding back (held_back
// is called for it) every tenant not started once the canary failed, the budget is spent, a wave
// without a budget failed, --fail-fast saw a failure or the throttle timed out. Fills summary. work
// reports its tenant's result itself and returns false when the tenant failed.
// Pacing (throttle, --concurrency auto): before_tenant(index, connection) runs as a tenant is about
// to start and returns false when the throttle timed out (the tenant and every later one are held
// back); with `adaptive`, a wave's workers start at most adaptive->target() tenants at once.
class AdaptiveConcurrency;
struct RolloutPacing {
    std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)> before_tenant;
    AdaptiveConcurrency* adaptive = nullptr;
};
void run_rollout(const TenantList& tenants, const std::vector<size_t>& todo, const RolloutRun& run,
                 const RolloutStart& before, RolloutSummary& summary,
                 const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                 const std::function<void(size_t)>& held_back, const RolloutPacing& pacing = {});

// The throttle and --concurrency auto of one run: one probe for the whole run (created only when a
// limit is set or `automatic`), whichever command it is and however many parts it runs in.
class Throttle;
class RolloutPacer {
public:
    // automatic: --concurrency auto, with at most `tenants` workers (the tenants to run).
    RolloutPacer(const Kernel& kernel, const RolloutOptions& rollout, bool automatic, size_t tenants);
    ~RolloutPacer();
    RolloutPacer(const RolloutPacer&) = delete;
    RolloutPacer& operator=(const RolloutPacer&) = delete;

    // The workers to start: `fixed`, or the adaptive maximum.
    int concurrency(int fixed) const;
    // before_tenant and the adaptive gate for run_rollout over `tenants` (kept by reference: the
    // rvalue overloads are deleted so that a temporary, e.g. a vector converted to a TenantList,
    // cannot be captured).
    RolloutPacing pacing(const std::vector<Tenant>& tenants);
    RolloutPacing pacing(const TenantList& tenants);
    RolloutPacing pacing(std::vector<Tenant>&&) = delete;
    RolloutPacing pacing(TenantList&&) = delete;
    // The wait between two of a tenant's steps (migrate, per-migration transactions); empty when no
    // limit is set. A running tenant finishes without waiting again once the throttle timed out.
    std::function<void(std::unique_ptr<pqxx::connection>&)> between(const std::optional<std::string>& server);
    // The throttle's and the worker count's summaries, and the throttle timeout's wording.
    void finish(RolloutSummary& summary, int fixed);

private:
    bool wait(std::unique_ptr<pqxx::connection>& conn, const std::optional<std::string>& server);

    const Kernel& kernel_;
    bool limits_ = false;
    bool automatic_;
    std::unique_ptr<Throttle> throttle_;
    std::unique_ptr<AdaptiveConcurrency> adaptive_;
    int max_ = 0;
};

}  // namespace mt
