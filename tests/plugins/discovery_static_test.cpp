// discovery-static (SPEC §5): the built plugin through the real loader — the configs it refuses
// with their exact messages, the list it returns (servers after '@', blanks skipped), and the
// kernel and mtctl using it as the discovery role.
#include "plugins/discovery_support.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("discovery-static refuses a config that lists no tenant", "[discovery]") {
    const LoadedDiscovery loaded("discovery-static");
    for (const auto& [config, reason] : std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
             {{}, "discovery-static: tenants: is required"},
             {{{"tenants", ""}}, "discovery-static: tenants: is required"},
             {{{"tenants", " , ,"}}, "discovery-static: tenants: lists no tenant id"},
             {{{"tenant", "a"}}, "unknown key 'tenant' for discovery-static (accepted: tenants)"},
         }) {
        const auto e = loaded.refusal(config);
        CHECK(e.stage == "config");
        CHECK(e.reason == reason);
    }
}

TEST_CASE("discovery-static returns the listed ids in order, with their servers", "[discovery][pg]") {
    const LoadedDiscovery loaded("discovery-static");
    const TempDatabase db;
    CHECK(discovered(loaded.create({{"tenants", " acme, globex @ replica ,,initech"}}), db) ==
          "acme,globex@replica,initech");
    CHECK(discovered(loaded.create({{"tenants", "solo"}}), db) == "solo");
}

TEST_CASE("discovery-static as the discovery role: mtctl sees exactly the listed tenants", "[discovery][pg]") {
    Project p;
    p.tenants({"acme", "globex", "initech"});
    p.set("plugins.load", "tracking-name, discovery-sql, discovery-static, retry-exponential");
    p.set("roles.discovery", "discovery-static");
    p.set("plugin.discovery-static.tenants", "initech, acme");
    const auto status = run_json(p, "status");
    REQUIRE(status["tenants"].size() == 2);
    CHECK(status["tenants"][0]["id"] == "initech");
    CHECK(status["tenants"][1]["id"] == "acme");
}
