// mtctl generate in both folder layouts (SPEC §6.1, §7): the next file, and in drizzle-kit layout a
// journal entry, the journal staying valid JSON in drizzle-kit's shape.
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

TEST_CASE("generate in plain layout prints the next numbered file", "[generate][pg]") {
    Project p;
    p.migration("0001_users", "CREATE TABLE users (id int);");
    p.migration("0007_orders", "CREATE TABLE orders (id int);");
    const auto r = p.mtctl("generate --name add_index");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto file = p.dir() / "drizzle/tenant/0008_add_index.sql";
    CHECK(r.out == file.string() + "\n");
    CHECK(std::filesystem::exists(file));

    const auto j = p.mtctl("--json generate --name next");
    REQUIRE(j.exit_code == 0);
    const auto doc = json::parse(j.out);
    CHECK(doc["file"] == (p.dir() / "drizzle/tenant/0009_next.sql").string());
    CHECK(doc["name"] == "0009_next");
    CHECK(doc["layout"] == "plain");
    CHECK(doc["journal"].is_null());
}

TEST_CASE("generate --shared writes into migrations.shared_dir in drizzle-kit layout with a journal entry", "[generate][pg]") {
    Project p;
    const auto journal = p.dir() / "drizzle/shared/meta/_journal.json";
    write_file(journal, R"({
  "version": "7",
  "dialect": "postgresql",
  "entries": [
    {
      "idx": 0,
      "version": "7",
      "when": 1700000000000,
      "tag": "0000_init",
      "breakpoints": true
    }
  ]
})");
    p.migration("0000_init", "CREATE TABLE plans (code text);", "drizzle/shared");
    const auto r = p.mtctl("--json generate --shared --name add_prices");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto doc = json::parse(r.out);
    CHECK(doc["layout"] == "drizzle-kit");
    CHECK(doc["file"] == (p.dir() / "drizzle/shared/0001_add_prices.sql").string());
    CHECK(doc["journal"] == journal.string());
    CHECK(std::filesystem::exists(p.dir() / "drizzle/shared/0001_add_prices.sql"));

    // Still valid JSON, in drizzle-kit's shape: two-space indent, no trailing newline, keys in order.
    const std::string text = read_file(journal);
    const auto parsed = json::parse(text);
    REQUIRE(parsed["entries"].size() == 2);
    const auto& entry = parsed["entries"][1];
    CHECK(entry["idx"] == 1);
    CHECK(entry["tag"] == "0001_add_prices");
    CHECK(entry["version"] == "7");
    CHECK(entry["breakpoints"] == true);
    CHECK(entry["when"].get<int64_t>() > 1700000000000);
    CHECK(text.back() == '}');
    CHECK(nlohmann::ordered_json::parse(text).dump(2) == text);
    // The tenant folder was not touched.
    CHECK(std::filesystem::is_empty(p.dir() / "drizzle/tenant"));
}

TEST_CASE("generate refuses a bad name or a missing --name, writing nothing", "[generate][pg]") {
    Project p;
    const auto bad = p.mtctl("generate --name 'drop table'");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("letters, digits") != std::string::npos);
    CHECK(std::filesystem::is_empty(p.dir() / "drizzle/tenant"));
    CHECK(p.mtctl("generate").exit_code == 2);
}
