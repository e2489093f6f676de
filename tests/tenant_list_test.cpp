// The compact tenant list (issue 14, item 5): the fleet commands hold the selected tenants as ids in
// one buffer, each schema derived from the schema template unless it differs, each server interned.
// Every tenant must still come out of every command with its own id, schema and server: ids of every
// length and in any script, the same id twice, tenants on several servers, a schema that is not the
// template's (the shared schema).
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/context/tenant.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using namespace mt::test;
using nlohmann::json;

TEST_CASE("TenantList gives back each tenant's id, schema and server as they were added", "[tenant][compact]") {
    mt::TenantList list("org_{id}_{id}x");
    const std::string long_id(50, 'z');
    list.push_back({"a", "org_a_ax", std::nullopt});
    list.push_back({"日本", "org_日本_日本x", std::string("eu")});
    list.push_back({long_id, "org_" + long_id + "_" + long_id + "x", std::nullopt});
    list.push_back({"a", "custom", std::string("us")});  // the same id again, its own schema and server
    list.push_back({"b", "org_b_bx", std::string("eu")});

    REQUIRE(list.size() == 5);
    CHECK(list.id(1) == "日本");
    CHECK(list.schema(1) == "org_日本_日本x");
    CHECK(list.schema(2) == "org_" + long_id + "_" + long_id + "x");
    CHECK(list.schema(3) == "custom");
    CHECK(list.schema(4) == "org_b_bx");
    CHECK(list.server(0) == std::nullopt);
    CHECK(list.server(1) == std::optional<std::string>("eu"));
    CHECK(list.server(3) == std::optional<std::string>("us"));
    CHECK(list.server(4) == std::optional<std::string>("eu"));
    CHECK(list.servers() == std::vector<std::optional<std::string>>{std::nullopt, "eu", "us"});
    CHECK(list.find("a") == std::optional<size_t>(0));
    CHECK(list.find("b") == std::optional<size_t>(4));
    CHECK_FALSE(list.find("c"));
    CHECK_THROWS_AS(list.at(5), std::out_of_range);

    std::vector<std::string> seen;
    for (const auto& t : list) seen.push_back(t.id + "|" + t.schema + "|" + t.server.value_or("-"));
    CHECK(seen == std::vector<std::string>{"a|org_a_ax|-", "日本|org_日本_日本x|eu",
                                           long_id + "|org_" + long_id + "_" + long_id + "x|-", "a|custom|us",
                                           "b|org_b_bx|eu"});

    list.set_server(0, std::string("us"));
    list.set_server(1, std::nullopt);
    CHECK(list.at(0).server == std::optional<std::string>("us"));
    CHECK(list.at(1).server == std::nullopt);

    // A list made from tenants keeps each one as it is, whatever the template.
    const mt::TenantList copy(list.to_vector());
    REQUIRE(copy.size() == list.size());
    for (size_t i = 0; i < list.size(); ++i) {
        CHECK(copy[i].id == list[i].id);
        CHECK(copy[i].schema == list[i].schema);
        CHECK(copy[i].server == list[i].server);
    }
    list.clear();
    CHECK(list.empty());
    CHECK(list.servers().empty());

    // The first tenant on a server of its own, the next on database.url.
    list.push_back({"x", "org_x_xx", std::string("eu")});
    list.push_back({"y", "org_y_yx", std::nullopt});
    CHECK(list.server(0) == std::optional<std::string>("eu"));
    CHECK(list.server(1) == std::nullopt);
    CHECK(list.schema(0) == "org_x_xx");
}

namespace {

// What every command says of one tenant: "id|schema|server".
std::string who(const json& t) {
    return t["id"].get<std::string>() + "|" + t["schema"].get<std::string>() + "|" +
           (t["server"].is_null() ? std::string("-") : t["server"].get<std::string>());
}

std::vector<std::string> who_all(const json& elements) {
    std::vector<std::string> out;
    for (const auto& t : elements) out.push_back(who(t));
    return out;
}

}  // namespace

TEST_CASE("every fleet command keeps each tenant's id, schema and server: unicode and long ids, a duplicate, two servers",
          "[tenant][compact][stream][pg]") {
    Project p;
    p.set("isolation.schema_template", "org_{id}_x");
    p.set("isolation.tenant_id_pattern", "^[^ ,]{1,57}$");
    p.set("servers.eu.url", p.url());  // a second server name for the same database
    p.set("plugin.discovery-sql.query",
          "SELECT id, server FROM public.tenants UNION ALL SELECT id, server FROM public.tenants WHERE id = 'b' "
          "ORDER BY 1 DESC");
    p.migration("0000_items", "CREATE TABLE items (id int);");
    p.migration("0001_more", "ALTER TABLE items ADD COLUMN name text;");
    const std::string long_id(57, 'l');  // org_ + 57 + _x: the longest schema name, 63 bytes
    p.exec("CREATE TABLE public.tenants (id text, server text)");
    p.exec("INSERT INTO public.tenants VALUES ('a', NULL), ('b', 'eu'), ('日本', 'eu'), ('" + long_id + "', NULL), "
           "('émile', '')");
    for (const std::string id : {"a", "b", "日本", long_id.c_str(), "émile"})
        p.exec("CREATE SCHEMA \"org_" + id + "_x\"");

    // Discovery order: by id descending, b twice; the empty server name is database.url.
    const std::vector<std::string> fleet{"日本|org_日本_x|eu", "émile|org_émile_x|-", long_id + "|org_" + long_id + "_x|-",
                                         "b|org_b_x|eu", "b|org_b_x|eu", "a|org_a_x|-"};

    CHECK(who_all(run_json(p, "tenant list")["tenants"]) == fleet);
    CHECK(run_json(p, "tenant list")["total"] == 6);
    const auto fresh = run_json(p, "migrate --all");
    CHECK(who_all(fresh["tenants"]) == fleet);
    CHECK(fresh["summary"]["failed"] == 0);
    for (const auto& id : {"a", "日本"})
        CHECK(p.scalar(std::string("SELECT count(*) FROM \"org_") + id + "_x\".__drizzle_migrations") == "2");

    const auto status = run_json(p, "status");
    CHECK(who_all(status["tenants"]) == fleet);
    for (const auto& t : status["tenants"]) CHECK(t["state"] == "up-to-date");
    CHECK(who_all(run_json(p, "sync --status")["tenants"]) == fleet);
    CHECK(who_all(run_json(p, "migrate --all")["tenants"]) == fleet);
    CHECK(who_all(run_json(p, "migrate --all --mark-applied")["tenants"]) == fleet);

    // diff: one group, its members by id, in discovery order.
    const auto diff = run_json(p, "diff");
    REQUIRE(diff["groups"].size() == 1);
    CHECK(diff["groups"][0]["tenants"] == json::array({"日本", "émile", long_id, "b", "b", "a"}));

    // The table shows the same, each column as wide as its longest cell.
    const auto table = p.mtctl("tenant list");
    REQUIRE(table.exit_code == 0);
    CHECK(table.out.find("日本" + std::string(long_id.size() - 6 + 2, ' ') + "org_日本_x") != std::string::npos);
    CHECK(table.out.find("6 tenants") != std::string::npos);

    // Named tenants are routed by discovery; one it does not list (a tenant being created) is on database.url.
    p.exec("CREATE SCHEMA org_new_x");
    const auto named = run_json(p, "status --tenants 日本,new,a,日本");
    CHECK(who_all(named["tenants"]) ==
          std::vector<std::string>{"日本|org_日本_x|eu", "new|org_new_x|-", "a|org_a_x|-", "日本|org_日本_x|eu"});
    CHECK(named["tenants"][1]["state"] == "no-table");

    // The run ledger records each tenant's outcome in the order of the run.
    const auto run = run_json(p, "migrate --tenants new,a,日本");
    CHECK(who_all(run["tenants"]) == std::vector<std::string>{"new|org_new_x|-", "a|org_a_x|-", "日本|org_日本_x|eu"});
    const auto shown = run_json(p, "runs show " + std::to_string(run["summary"]["run_id"].get<int64_t>()));
    std::vector<std::string> outcomes;
    for (const auto& t : shown["tenant_outcomes"]) outcomes.push_back(t["tenant"].get<std::string>() + ":" + t["outcome"].get<std::string>());
    CHECK(outcomes == std::vector<std::string>{"new:migrated", "a:up-to-date", "日本:up-to-date"});

    // diff with a reference outside the selection compares it too, under its own schema.
    p.exec("ALTER TABLE org_a_x.items ADD COLUMN extra int");
    const auto drift = run_json(p, "diff --tenants 日本,b --reference a", 1);
    CHECK(drift["reference"]["id"] == "a");
    CHECK(drift["reference"]["schema"] == "org_a_x");

    // The shared schema is a one-tenant fleet whose schema is not the template's.
    const auto shared = run_json(p, "status --shared");
    REQUIRE(shared["tenants"].size() == 1);
    CHECK(who(shared["tenants"][0]) == "public|public|-");
}
