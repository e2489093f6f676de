// The result structs of the command entry points (mt/fleet/commands.hpp) that wrap a report from
// another room with what the CLI also shows; apart from commands.hpp because they need those
// rooms' headers (libpqxx, the SDK) complete.
#pragma once

#include <mt/fleet/commands.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/runtime/tenant_manager.hpp>
#include <mt/tracking/status.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace mt::command {

struct StatusResult {
    FleetStatus fleet;
    size_t migrations = 0;  // in the folder the tenants were compared with
};

struct HealthResult {
    HealthReport report;
    std::string shared_schema;
};

struct PluginListing {
    std::vector<PluginInfo> plugins;
    std::string status;  // "loaded" (from the manifest) or "available" (found in the kernel's folder)
};

}  // namespace mt::command
