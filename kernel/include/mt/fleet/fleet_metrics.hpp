// Fleet gauges for `mtctl serve`: tenant count and pending migrations per tenant, sent to the
// sinks as MT_EVENT_FLEET events (the Prometheus sink bounds the tenant labels).
#pragma once

#include <mt/context/kernel.hpp>

namespace mt {

struct FleetSnapshot {
    size_t tenants = 0;
    size_t pending = 0;         // pending migrations over the whole fleet
    size_t tenants_behind = 0;  // tenants with at least one pending migration
    int64_t drift_groups = -1;  // distinct schema fingerprints; -1 when not computed
    double duration_ms = 0;
};

// Discovers the tenants, reads the fleet's status in a few batched queries and emits one
// MT_EVENT_FLEET per tenant plus a summary event.
FleetSnapshot publish_fleet_metrics(const Kernel& kernel);

}  // namespace mt
