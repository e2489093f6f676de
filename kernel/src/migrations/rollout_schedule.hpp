// The order in which migrate starts tenants under the rollout controls (kernel-private).
#pragma once

#include <mt/migrations/migrate.hpp>

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <vector>

namespace mt {

// Runs work(index, connection) for the tenants in todo (ascending: discovery order): the canary
// first, one at a time, then each wave with options.concurrency workers, holding back (outcome
// skipped) every tenant not started once the canary failed, the budget is spent, a wave without a
// budget failed, or --fail-fast saw a failure. Fills report.rollout; calls options.tenant_finished
// as each started tenant finishes. work returns false when the tenant failed.
// Pacing (throttle, --concurrency auto): before_tenant(index, connection) runs as a tenant is about
// to start and returns false when the throttle timed out (the tenant and every later one are held
// back); with `adaptive`, a wave's workers start at most adaptive->target() tenants at once.
class AdaptiveConcurrency;
struct RolloutPacing {
    std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)> before_tenant;
    AdaptiveConcurrency* adaptive = nullptr;
};
void run_rollout(const std::vector<Tenant>& tenants, const std::vector<size_t>& todo, const MigrateOptions& options,
                 MigrateReport& report,
                 const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                 const RolloutPacing& pacing = {});

}  // namespace mt
