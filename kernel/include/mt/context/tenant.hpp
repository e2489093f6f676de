// A tenant as the kernel names it, and a selection of tenants; kept apart from kernel.hpp so that
// code which only names tenants (mtctl's renderers, result structs) does not pull in libpqxx.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mt {

struct Tenant {
    std::string id;
    std::string schema;
    std::optional<std::string> server;  // [servers.NAME]; empty: database.url
};

// --all / --tenant ID (repeatable) / --tenants a,b,c
struct TenantSelection {
    bool all = false;
    std::vector<std::string> ids;
    bool empty() const { return !all && ids.empty(); }
};

}  // namespace mt
