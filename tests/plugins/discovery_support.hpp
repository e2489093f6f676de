// Shared by the three discovery plugin tests: the built plugin loaded through the real loader,
// run through the kernel's wrapper on a connection to a real PostgreSQL.
#pragma once

#include "support/pg.hpp"

#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>

namespace mt::test {

struct LoadedDiscovery {
    mt::PluginRegistry registry{{plugin_dir()}};
    std::string name;
    explicit LoadedDiscovery(std::string plugin) : name(std::move(plugin)) { registry.load(name); }
    mt::TenantDiscovery create(const std::map<std::string, std::string>& config = {}) const {
        return mt::TenantDiscovery(registry.create(name, MT_KIND_TENANT_DISCOVERY, config));
    }
    // The refusal of a config, which must be refused.
    mt::PluginError refusal(const std::map<std::string, std::string>& config) const {
        try {
            create(config);
        } catch (const mt::PluginError& e) {
            return e;
        }
        FAIL("expected the config to be refused");
        throw std::logic_error("unreachable");
    }
};

// "id" or "id@server" per tenant, comma-separated, in the order discovered.
inline std::string discovered(const mt::TenantDiscovery& discovery, const TempDatabase& db) {
    pqxx::connection c(db.url());
    pqxx::work tx(c);
    mt::SqlSession sql(tx);
    std::string out;
    for (const auto& t : discovery.discover(sql)) out += (out.empty() ? "" : ",") + t.id + (t.server ? "@" + *t.server : "");
    return out;
}

}  // namespace mt::test
