// Every `mtctl --json` document (issue 15, item 2) starts with "schema_version": 1 and is valid
// against its JSON Schema under docs/schema/, checked with Debian's python3-jsonschema
// (tests/json_schema_validate.py) on real outputs of every command against a real database.
#include "support/daemon.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <mt/sdk/version.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mt::test;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

std::filesystem::path schema_dir() { return source_dir() / "docs/schema"; }

// The schema files a command's documents are described by: COMMAND.schema.json, or one per
// subcommand for the commands that have them.
const std::map<std::string, std::vector<std::string>>& subcommand_schemas() {
    static const std::map<std::string, std::vector<std::string>> map{
        {"tenant", {"tenant-list", "tenant-create", "tenant-drop", "tenant-clone"}},
        {"plugins", {"plugins", "plugins-inspect"}},
        {"runs", {"runs", "runs-show"}},
    };
    return map;
}

// The commands `mtctl --help` lists.
std::vector<std::string> listed_commands() {
    const auto help = mtctl("--help");
    REQUIRE(help.exit_code == 0);
    std::vector<std::string> out;
    std::istringstream in(help.out.substr(help.out.find("commands:\n") + 10));
    std::string line;
    std::smatch m;
    while (std::getline(in, line) && !line.empty())
        if (std::regex_match(line, m, std::regex(R"(  ([a-z][a-z-]*)\s+.*)"))) out.push_back(m[1]);
    return out;
}

// Collects documents with their docs/schema/NAME.schema.json and validates them all in one
// python3 process (validate()); records which schemas were used.
class Validator {
public:
    // Checks that `r` printed one document starting with schema_version and keeps it.
    void check(const std::string& schema, const std::string& what, const RunResult& r, int expected_exit = 0) {
        INFO("mtctl " << what << "\nexit " << r.exit_code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
        REQUIRE(r.exit_code == expected_exit);
        check_text(schema, what, r.out);
    }

    void check_text(const std::string& schema, const std::string& what, const std::string& text) {
        INFO("mtctl " << what << " printed:\n" << text);
        // The first key, whatever the layout (streamed documents are written as they go).
        CHECK(std::regex_search(text, std::regex(R"(^\{\s*"schema_version"\s*:\s*1\s*,)")));
        const auto file = schema_dir() / (schema + ".schema.json");
        INFO("mtctl " << what << " --json has no docs/schema/" << schema << ".schema.json");
        REQUIRE(std::filesystem::is_regular_file(file));
        const auto document = dir_ / (schema + "." + std::to_string(++count_) + ".json");
        write_file(document, text);
        pairs_ += file.string() + "\t" + document.string() + "\n";
        documents_ += document.filename().string() + ": mtctl --json " + what + "\n";
        used_.insert(schema);
    }

    // Every collected document against its schema; a failure names the document and the path.
    void validate() const {
        write_file(dir_ / "pairs.tsv", pairs_);
        const auto r = run("/usr/bin/python3 " + shell_quote((source_dir() / "tests/json_schema_validate.py").string()) +
                           " --pairs " + shell_quote((dir_ / "pairs.tsv").string()));
        INFO("documents:\n" << documents_ << "validator: exit " << r.exit_code << "\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.out.empty());
        CHECK(r.err.empty());
    }

    const std::set<std::string>& used() const { return used_; }

private:
    TempDir dir_;
    int count_ = 0;
    std::string pairs_, documents_;
    std::set<std::string> used_;
};

json parsed(const RunResult& r) { return json::parse(r.out, nullptr, false); }

}  // namespace

TEST_CASE("every command mtctl --help lists has a JSON Schema file for each of its documents", "[schema]") {
    const auto commands = listed_commands();
    REQUIRE(commands.size() >= 15);
    std::set<std::string> expected{"version"};
    for (const auto& c : commands) {
        const auto it = subcommand_schemas().find(c);
        if (it == subcommand_schemas().end()) expected.insert(c);
        else expected.insert(it->second.begin(), it->second.end());
    }
    std::set<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(schema_dir())) {
        const auto name = e.path().filename().string();
        if (name.size() > 12 && name.substr(name.size() - 12) == ".schema.json") files.insert(name.substr(0, name.size() - 12));
    }
    for (const auto& name : expected) {
        INFO("mtctl " << name << " --json has no docs/schema/" << name << ".schema.json: write one (and validate it in "
                      << "tests/json_schema_test.cpp)");
        CHECK(files.count(name) == 1);
    }
    for (const auto& name : files) {
        INFO("docs/schema/" << name << ".schema.json describes no command mtctl --help lists");
        CHECK(expected.count(name) == 1);
    }
    // --version needs no database: its document is validated here too.
    Validator v;
    v.check("version", "--version", mtctl("--json --version"));
    v.validate();
    const auto version = parsed(mtctl("--json --version"));
    CHECK(version.at("version") == MT_VERSION);
}

TEST_CASE("every mtctl --json document starts with schema_version and validates against its schema", "[schema][pg]") {
    Validator v;
    Project p;
    users_posts_seed_migrations(p);
    p.migration("0000_settings", "CREATE TABLE settings (key text PRIMARY KEY, value text);", "drizzle/shared");
    p.tenants({"a", "b", "c"});

    v.check("version", "--version", mtctl("--json --version"));
    {
        TempDir fresh;
        v.check("init", "init", mtctl("--json init --dir " + shell_quote(fresh.path().string())));
    }
    v.check("plugins", "plugins", p.mtctl("--json plugins"));
    v.check("plugins-inspect", "plugins inspect",
            p.mtctl("--json plugins inspect " + shell_quote((plugin_dir() / "tracking-name.so").string())));
    v.check("tenant-list", "tenant list", p.mtctl("--json tenant list"));

    // Before anything is applied: status with pending migrations, the dry run with its SQL preview.
    v.check("status", "status", p.mtctl("--json status"));
    const auto dry = p.mtctl("--json migrate --tenant a --dry-run");
    v.check("migrate", "migrate --dry-run", dry);
    CHECK(parsed(dry).contains("preview"));
    v.check("migrate", "migrate --all --dry-run", p.mtctl("--json migrate --all --dry-run"));
    v.check("migrate-shared", "migrate-shared --dry-run", p.mtctl("--json migrate-shared --dry-run"));
    v.check("migrate-shared", "migrate-shared", p.mtctl("--json migrate-shared"));
    const auto migrated = p.mtctl("--json migrate --all --canary 1 --max-failures 1");
    v.check("migrate", "migrate --all --canary 1", migrated);
    CHECK(parsed(migrated).at("summary").at("run_id").is_number_integer());
    v.check("status", "status --shared", p.mtctl("--json status --shared"));
    v.check("doctor", "doctor", p.mtctl("--json doctor"));
    v.check("health", "health --all --pending", p.mtctl("--json health --all --pending"));

    v.check("tenant-create", "tenant create", p.mtctl("--json tenant create --id d"));
    v.check("tenant-clone", "tenant clone", p.mtctl("--json tenant clone --from a --to e --with-data"));
    v.check("tenant-drop", "tenant drop", p.mtctl("--json tenant drop --id e --force"));

    // A failing tenant: its error fields. b's seed runs into a missing table.
    write_file(p.dir() / "seed.sql", "INSERT INTO users (email) VALUES ('seeded@example.com');");
    v.check("seed", "seed", p.mtctl("--json seed --file " + shell_quote((p.dir() / "seed.sql").string()) + " --all"));
    p.exec("DROP TABLE tenant_b.posts; DROP TABLE tenant_b.users");
    write_file(p.dir() / "seed.sql", "INSERT INTO users (email) VALUES ('again@example.com');");
    v.check("seed", "seed with a failing tenant",
            p.mtctl("--json seed --file " + shell_quote((p.dir() / "seed.sql").string()) + " --tenants a,b"), 1);

    // Drift (b lost its tables, c gained one) and tracking records out of sync.
    p.exec("CREATE TABLE tenant_c.extra (id int)");
    const auto diff = p.mtctl("--json diff");
    v.check("diff", "diff with drift", diff, 1);
    CHECK(parsed(diff).at("groups").size() >= 2);
    p.exec("DELETE FROM tenant_c.__drizzle_migrations WHERE id = (SELECT max(id) FROM tenant_c.__drizzle_migrations)");
    v.check("sync", "sync", p.mtctl("--json sync"));
    v.check("sync", "sync --mark-missing --dry-run", p.mtctl("--json sync --mark-missing --dry-run"));

    v.check("convert-format", "convert-format --dry-run", p.mtctl("--json convert-format --to hash --tenant a --dry-run"));
    v.check("convert-format", "migrate-tracking-format", p.mtctl("--json migrate-tracking-format --to hash --tenant a"));

    const auto runs = p.mtctl("--json runs");
    v.check("runs", "runs", runs);
    const auto run_id = parsed(runs).at("runs").at(0).at("id").get<int64_t>();
    v.check("runs-show", "runs show", p.mtctl("--json runs show " + std::to_string(run_id)));

    v.check("generate", "generate", p.mtctl("--json generate --name add_flags"));

    {
        Daemon serve(shell_quote(MT_MTCTL) + " --no-color --json serve --listen 127.0.0.1:0", p.dir());
        wait_until([&] { return serve.out().find("}\n") != std::string::npos || !serve.running(); }, "mtctl serve's document");
        v.check_text("serve", "serve", serve.out());
    }

    v.validate();
    // Every schema file was exercised by at least one real document.
    std::set<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(schema_dir()))
        if (e.path().extension() == ".json") files.insert(e.path().stem().stem().string());
    CHECK(v.used() == files);
}

TEST_CASE("a schema rejects a document that lacks a required field or has an undocumented one", "[schema]") {
    TempDir dir;
    const auto schema = (schema_dir() / "version.schema.json").string();
    const std::vector<std::pair<std::string, std::string>> documents{
        {"good", R"({"schema_version": 1, "version": "1.2.3", "abi": "1.1", "abi_major": 1, "abi_minor": 1})"},
        {"missing", R"({"schema_version": 1, "version": "1.2.3", "abi": "1.1", "abi_major": 1})"},
        {"extra", R"({"schema_version": 1, "version": "1.2.3", "abi": "1.1", "abi_major": 1, "abi_minor": 1, "x": 2})"},
        {"version", R"({"schema_version": 2, "version": "1.2.3", "abi": "1.1", "abi_major": 1, "abi_minor": 1})"},
        {"type", R"({"schema_version": 1, "version": "1.2.3", "abi": "1.1", "abi_major": "1", "abi_minor": 1})"}};
    std::string pairs;
    for (const auto& [name, text] : documents) {
        write_file(dir / (name + ".json"), text);
        pairs += schema + "\t" + (dir / (name + ".json")).string() + "\n";
    }
    write_file(dir / "pairs.tsv", pairs);
    const auto r = run("/usr/bin/python3 " + shell_quote((source_dir() / "tests/json_schema_validate.py").string()) +
                       " --pairs " + shell_quote((dir / "pairs.tsv").string()));
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    const auto prefix = [&](const std::string& name) { return (dir / (name + ".json")).string() + ": "; };
    CHECK_THAT(r.out, !Contains(prefix("good")));
    CHECK_THAT(r.out, Contains(prefix("missing") + "$: 'abi_minor' is a required property\n"));
    CHECK_THAT(r.out, Contains(prefix("extra") + "$: Additional properties are not allowed ('x' was unexpected)\n"));
    CHECK_THAT(r.out, Contains(prefix("version") + "$.schema_version: 1 was expected\n"));
    CHECK_THAT(r.out, Contains(prefix("type") + "$.abi_major: '1' is not of type 'integer'\n"));
}
