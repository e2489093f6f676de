#include <mt/fleet/drift.hpp>
#include <mt/fleet/fleet_metrics.hpp>
#include <mt/migrations/migrate.hpp>

#include <chrono>

namespace mt {

FleetSnapshot publish_fleet_metrics(const Kernel& kernel) {
    const auto start = std::chrono::steady_clock::now();
    const auto& m = kernel.manifest();
    const auto folder = read_migration_folder(m.migrations.tenant_dir);
    const auto tenants = kernel.discover_tenants();
    FleetSnapshot snap;
    snap.tenants = tenants.size();
    // Distinct schema structures across the fleet (the catalog fingerprint of mtctl diff); compact:
    // the group sizes, not a list of tenants per group.
    snap.drift_groups = static_cast<int64_t>(detect_drift(kernel, tenants, std::nullopt, true).groups.size());
    // Each tenant's gauge as its batch is read: the fleet's statuses are never held at once.
    stream_fleet_status(kernel, tenants, folder, TrackingTarget::tenants(m), [&](const TenantStatus& st) {
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_FLEET;
        ev.tenant = sdk::str(st.tenant.id);
        ev.schema = sdk::str(st.tenant.schema);
        ev.pending = static_cast<int64_t>(st.pending.size());
        kernel.emit(ev);
        snap.pending += st.pending.size();
        if (!st.pending.empty()) ++snap.tenants_behind;
    });
    mt_event summary{};
    summary.struct_size = sizeof summary;
    summary.type = MT_EVENT_FLEET;
    summary.tenants = static_cast<int64_t>(snap.tenants);
    summary.pending = static_cast<int64_t>(snap.pending);
    summary.drift_groups = snap.drift_groups;
    kernel.emit(summary);
    snap.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return snap;
}

}  // namespace mt
