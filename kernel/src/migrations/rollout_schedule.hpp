// The order in which migrate starts tenants under the rollout controls (kernel-private).
#pragma once

#include <mt/migrations/migrate.hpp>

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

// What the run found before it started any tenant.
struct RolloutStart {
    size_t failed = 0;          // tenants that failed their checks (they spend the budget too)
    std::string canary_failed;  // the first --canary id (in the order given) among them
};

// Runs work(index, connection) for the tenants in todo (ascending: discovery order): the canary
// first, one at a time, then each wave with options.concurrency workers, holding back (held_back
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
void run_rollout(const TenantList& tenants, const std::vector<size_t>& todo, const MigrateOptions& options,
                 const RolloutStart& before, RolloutSummary& summary,
                 const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                 const std::function<void(size_t)>& held_back, const RolloutPacing& pacing = {});

}  // namespace mt
