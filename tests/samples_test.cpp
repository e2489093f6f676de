// The samples' command lines (issue 15, item 5): samples/http-service and samples/runtime parse
// their flags with Boost.Program_options like mtctl, print --help, refuse a bad flag with exit 2
// and a message, and hand --section.key=value to the kernel as manifest overrides.
#include "support/daemon.hpp"
#include "support/http.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace mt::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

std::string http_service() { return shell_quote(std::string(MT_BINARY_DIR) + "/samples/http-service/http-service"); }
std::string runtime_sample() { return shell_quote(std::string(MT_BINARY_DIR) + "/samples/runtime/runtime-sample"); }

}  // namespace

TEST_CASE("http-service --help lists every flag and the manifest overrides", "[samples]") {
    const auto r = run(http_service() + " --help");
    INFO(both(r));
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK_THAT(r.out, StartsWith("usage: http-service [-c FILE] [--listen HOST:PORT]"));
    for (const char* flag : {"-h [ --help ]", "-c [ --config ] FILE", "--listen HOST:PORT (=127.0.0.1:8080)",
                             "--threads N (=8)", "--directory-refresh DURATION (=30s)", "--bench-raw",
                             "--section.key=value"}) {
        INFO(flag);
        CHECK_THAT(r.out, Contains(flag));
    }
}

TEST_CASE("http-service refuses a bad flag with exit 2 and says which", "[samples]") {
    SECTION("an unknown flag") {
        const auto r = run(http_service() + " --no-such-flag");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, StartsWith("http-service: unrecognised option '--no-such-flag'\nusage: http-service"));
        CHECK_THAT(r.err, Contains("(see http-service --help)"));
        CHECK(r.out.empty());
    }
    SECTION("a malformed value") {
        const auto r = run(http_service() + " --threads many");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, StartsWith("http-service: the argument ('many') for option '--threads' is invalid"));
    }
    SECTION("a value out of range") {
        const auto r = run(http_service() + " --threads 0");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err == "http-service: --threads 0: at least 1\n");
    }
    SECTION("a flag without its value") {
        const auto r = run(http_service() + " --listen");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, StartsWith("http-service: the required argument for option '--listen' is missing"));
    }
    SECTION("a stray argument") {
        const auto r = run(http_service() + " serve");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, StartsWith("http-service: too many positional options have been specified on the command line"));
    }
    SECTION("a malformed duration") {
        const auto r = run(http_service() + " --directory-refresh soon");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, StartsWith("http-service: --directory-refresh soon: "));
    }
    SECTION("an unknown manifest key given as an override: the kernel's message, naming the flag") {
        TempDir cwd;
        const auto r = run("cd " + shell_quote(cwd.path().string()) + " && " + http_service() +
                           " --database.url=postgresql://127.0.0.1:1/x --database.no_such_key=1");
        INFO(both(r));
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Contains("database.no_such_key"));
        CHECK_THAT(r.err, Contains("command line"));
    }
}

TEST_CASE("http-service takes --section.key=value overrides over the manifest file", "[samples][pg]") {
    Project p;
    configure_http(p);
    tenants_with_tasks(p, {"a"});
    // The file sets no header name (extract-header reads X-Tenant-Id); the override renames it.
    Daemon service(http_service() + " --config=" + shell_quote((p.dir() / "multitenant.ini").string()) +
                       " --listen 127.0.0.1:0 --threads 2 --plugin.extract-header.header=X-Org",
                   p.dir());
    int port = 0;
    wait_until(
        [&] {
            const auto out = service.out();
            if (const auto at = out.find("listening on 127.0.0.1:"); at != std::string::npos && out.find('\n', at) != std::string::npos)
                port = std::stoi(out.substr(at + 23));
            return port != 0 || !service.running();
        },
        "http-service listening");
    INFO(service.err());
    REQUIRE(port != 0);
    const auto renamed = http_get(port, "/tasks", {{"X-Org", "a"}});
    CHECK(renamed.status == 200);
    CHECK(titles(renamed) == std::vector<std::string>{"a's first task"});
    const auto old_header = tenant_get(port, "a");
    CHECK(old_header.status == 400);
    CHECK(old_header.error() == "tenant id required");
    CHECK(service.stop() == 0);
}

TEST_CASE("runtime-sample --help lists its flags and a bad flag exits 2", "[samples]") {
    const auto help = run(runtime_sample() + " --help");
    INFO(both(help));
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, StartsWith("usage: runtime-sample [-c FILE | FILE] [--section.key=value ...]\n"));
    CHECK_THAT(help.out, Contains("-c [ --config ] FILE"));
    CHECK_THAT(help.out, Contains("--section.key=value"));

    const auto bad = run(runtime_sample() + " --pool-mode shared");
    INFO(both(bad));
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, StartsWith("runtime-sample: unrecognised option '--pool-mode'\nusage: runtime-sample"));

    const auto twice = run(runtime_sample() + " -c a.ini b.ini");
    INFO(both(twice));
    CHECK(twice.exit_code == 2);
    CHECK_THAT(twice.err, StartsWith("runtime-sample: the manifest is given twice (-c a.ini and b.ini): give one"));
}

TEST_CASE("runtime-sample runs with the manifest's url given as an override", "[samples][pg]") {
    Project p;
    p.tenants({"acme", "globex", "initech"});
    TempDir cwd;
    // No manifest file at all: everything the kernel needs comes from the overrides.
    const auto r = run("cd " + shell_quote(cwd.path().string()) + " && " + runtime_sample() + " " +
                       shell_quote("--database.url=" + p.url()) + " --plugins.load=retry-exponential");
    INFO(both(r));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("== pool_mode = per-tenant\n  acme: 1 notes in tenant_acme\n"));
    CHECK_THAT(r.out, Contains("== pool_mode = transaction\n  acme: 3 notes in tenant_acme\n"));
}
