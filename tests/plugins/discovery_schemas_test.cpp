// discovery-schemas (SPEC §5): the built plugin through the real loader — the template it refuses
// with the exact message, and discovery against a real database: only schemas the template
// matches, compared literally (an '_' in the template is no wildcard), with a non-empty id.
#include "plugins/discovery_support.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("discovery-schemas refuses a template without {id}", "[discovery]") {
    const LoadedDiscovery loaded("discovery-schemas");
    const auto e = loaded.refusal({{"schema_template", "tenant_"}});
    CHECK(e.stage == "config");
    CHECK(e.reason == "discovery-schemas: schema_template: must contain {id}, got 'tenant_'");
    const auto unknown = loaded.refusal({{"template", "t_{id}"}});
    CHECK(unknown.reason == "unknown key 'template' for discovery-schemas (accepted: schema_template)");
}

TEST_CASE("discovery-schemas finds the schemas the template matches, in name order", "[discovery][pg]") {
    const LoadedDiscovery loaded("discovery-schemas");
    const TempDatabase db;
    db.exec("CREATE SCHEMA tenant_globex; CREATE SCHEMA tenant_acme; CREATE SCHEMA \"tenant_x y\"; "
            "CREATE SCHEMA tenant_; CREATE SCHEMA tenantxacme; CREATE SCHEMA other; "
            "CREATE SCHEMA t_a_data; CREATE SCHEMA t_b_data; CREATE SCHEMA t__data; CREATE SCHEMA t_c");
    // Default template tenant_{id}: tenant_ alone has no id, tenantxacme only matches if '_' were a wildcard.
    // Ids are returned as found; the kernel validates them against tenant_id_pattern.
    CHECK(discovered(loaded.create(), db) == "acme,globex,x y");
    CHECK(discovered(loaded.create({{"schema_template", "t_{id}_data"}}), db) == "a,b");
    CHECK(discovered(loaded.create({{"schema_template", "none_{id}"}}), db).empty());
}
