// The suite's own hygiene: the caller's MT_CONFIG and MT_*__* variables reach neither the test
// process nor the mtctl it runs, so a developer with MT_DATABASE__URL set never runs the tests
// against that database.
#include "support/daemon.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>

using namespace mt::test;

namespace {

// Sets variables in this process for the scope of a test, restoring what was there before.
class ScopedVariables {
public:
    explicit ScopedVariables(std::vector<std::pair<std::string, std::string>> values) {
        for (const auto& [name, value] : values) {
            const char* old = std::getenv(name.c_str());
            saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
            ::setenv(name.c_str(), value.c_str(), 1);
        }
    }
    ~ScopedVariables() {
        for (const auto& [name, old] : saved_) {
            if (old) ::setenv(name.c_str(), old->c_str(), 1);
            else ::unsetenv(name.c_str());
        }
    }

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

const std::string bogus_url = "postgresql://intruder@127.0.0.1:1/not_the_test_database";

}  // namespace

TEST_CASE("mtctl run by a test does not see the caller's MT_DATABASE__URL, MT_CONFIG or other MT_*__* variables",
          "[env][mtctl][pg]") {
    Project p;
    p.tenants({"a"});
    TempDir elsewhere;
    write_file(elsewhere / "other.ini", "[database]\nurl = " + bogus_url + "\n");
    ScopedVariables caller({{"MT_DATABASE__URL", bogus_url},
                            {"MT_CONFIG", (elsewhere / "other.ini").string()},
                            {"MT_DATABASE__POOL_SIZE", "not-a-number"},
                            {"MT_PLUGIN_DISCOVERY_SQL__QUERY", "SELECT 'intruder' AS id"}});
    REQUIRE(std::getenv("MT_DATABASE__URL") == bogus_url);  // the parent really has it

    // Each variable, were it seen, would fail the command (exit 3 or 2) or list another tenant.
    const auto r = p.mtctl("--json tenant list");
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto doc = nlohmann::json::parse(r.out);
    REQUIRE(doc["tenants"].size() == 1);
    CHECK(doc["tenants"][0]["id"] == "a");

    // What the shell of run() and of a Daemon receives.
    const auto env = run("env");
    CHECK(env.out.find("MT_DATABASE__URL") == std::string::npos);
    CHECK(env.out.find("MT_CONFIG") == std::string::npos);
    CHECK(env.out.find("MT_DATABASE__POOL_SIZE") == std::string::npos);
    CHECK(env.out.find("MT_PLUGIN_DISCOVERY_SQL__QUERY") == std::string::npos);
    CHECK(env.out.find("MT_TEST_DATABASE_URL=") != std::string::npos);  // not a manifest variable: kept
    {
        Daemon d("env", p.dir());
        d.wait(std::chrono::seconds(10));
        CHECK(d.out().find("PATH=") != std::string::npos);
        CHECK(d.out().find("MT_DATABASE__URL") == std::string::npos);
        CHECK(d.out().find("MT_CONFIG") == std::string::npos);
    }

    // A variable the test sets on the command line itself still reaches mtctl.
    const auto own = p.mtctl("tenant list");
    CHECK(own.exit_code == 0);
    const auto given = run("cd " + shell_quote(p.dir().string()) + " && MT_DATABASE__POOL_SIZE=ten " +
                           shell_quote(MT_MTCTL) + " tenant list");
    CHECK(given.exit_code == 2);
    CHECK(given.err.find("environment (MT_DATABASE__POOL_SIZE): database.pool_size") != std::string::npos);
}

// Run only as a child of the test below (hidden tag): the test binary's main() has removed the
// variables before any test case starts.
TEST_CASE("probe: this process has no manifest variables", "[.env-probe]") {
    CHECK(std::getenv("MT_DATABASE__URL") == nullptr);
    CHECK(std::getenv("MT_CONFIG") == nullptr);
    CHECK(std::getenv("MT_MIGRATIONS__CONCURRENCY") == nullptr);
    CHECK(std::getenv("MT_TEST_DATABASE_URL") != nullptr);
}

TEST_CASE("the test binary removes MT_CONFIG and MT_*__* from its own environment at start", "[env]") {
    const auto self = std::filesystem::read_symlink("/proc/self/exe");
    const std::string probe = shell_quote(self.string()) + " '[.env-probe]'";
    const auto r = run("MT_DATABASE__URL=" + shell_quote(bogus_url) +
                       " MT_CONFIG=/nonexistent.ini MT_MIGRATIONS__CONCURRENCY=x MT_TEST_DATABASE_URL=kept " + probe);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("All tests passed (4 assertions in 1 test case)") != std::string::npos);
    // The probe can fail: without the scrub it sees the variable.
    const auto unscrubbed = run("env -u MT_TEST_DATABASE_URL " + probe);
    CHECK(unscrubbed.exit_code == 1);
}
