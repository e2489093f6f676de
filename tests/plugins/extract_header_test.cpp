// extract-header (SPEC §3.1), loaded through the real registry: valid, missing, malformed and
// hostile input; and the kernel's extractor chain (first that finds an id wins; ids validated).
#include "support/extractor.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/request.hpp>

#include <catch2/catch.hpp>

using namespace mt::test;
using Catch::Matchers::Contains;

TEST_CASE("extract-header reads X-Tenant-Id by default, whatever the header name's case", "[extract]") {
    ExtractorUnderTest ex("extract-header", {});
    CHECK(ex(with_headers({{"X-Tenant-Id", "acme"}})) == "acme");
    CHECK(ex(with_headers({{"accept", "*/*"}, {"x-tenant-id", "Globex"}})) == "Globex");
    CHECK(ex(with_headers({{"X-TENANT-ID", " \tinitech \t"}})) == "initech");  // optional whitespace trimmed
    CHECK(ex(with_headers({{"X-Tenant-Id", "acme"}, {"x-tenant-id", "acme"}})) == "acme");  // repeated, same value
}

TEST_CASE("extract-header finds none without the header, and reads the configured one", "[extract]") {
    ExtractorUnderTest ex("extract-header", {{"header", "X-Org"}});
    CHECK(ex({}) == "<none>");
    CHECK(ex(with_headers({{"X-Tenant-Id", "acme"}})) == "<none>");
    CHECK(ex(with_headers({{"x-org", "acme"}})) == "acme");
    CHECK(ex(with_headers({{"X-Org-Id", "acme"}})) == "<none>");
}

TEST_CASE("extract-header refuses malformed values: empty, or sent twice with different values", "[extract]") {
    ExtractorUnderTest ex("extract-header", {});
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", ""}})), Contains("is empty"));
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", "   "}})), Contains("is empty"));
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", "acme"}, {"X-Tenant-Id", "globex"}})), Contains("more than once"));
}

TEST_CASE("extract-header refuses hostile values without echoing them", "[extract]") {
    ExtractorUnderTest ex("extract-header", {});
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", "acme\r\nX-Admin: 1"}})), Contains("control character"));
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", "acme\nglobex"}})), Contains("control character"));
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", std::string("ac\0me", 5)}})), Contains("control character"));
    CHECK_THAT(ex(with_headers({{"X-Tenant-Id", "acme\x7f"}})), Contains("control character"));

    const std::string huge(100'000, 'a');
    const auto out = ex(with_headers({{"X-Tenant-Id", huge}}));
    CHECK(is_error(out));
    CHECK_THAT(out, Contains("100000 bytes"));
    CHECK(out.size() < 200);
    CHECK(ex(with_headers({{"X-Tenant-Id", std::string(1023, 'a')}})).size() == 1023);
    CHECK(is_error(ex(with_headers({{"X-Tenant-Id", std::string(1025, 'a')}}))));

    // Not the plugin's business: the kernel's id pattern refuses these (see the chain test).
    CHECK(ex(with_headers({{"X-Tenant-Id", "acmé"}})) == "acmé");
    CHECK(ex(with_headers({{"X-Tenant-Id", "../etc"}})) == "../etc");
}

TEST_CASE("extract-header refuses a header name that is not a token", "[extract]") {
    for (const char* bad : {"X Tenant", "X-Tenant:", "", "X-Tenant\r\n"}) {
        INFO(bad);
        try {
            ExtractorUnderTest ex("extract-header", {{"header", bad}});
            FAIL("accepted");
        } catch (const mt::PluginError& e) {
            CHECK(e.stage == "config");
            CHECK_THAT(e.reason, Contains("header"));
        }
    }
}

namespace {

// A manifest with the three extractors chained, on a database nobody connects to.
struct ChainKernel {
    TempDir dir;
    std::optional<mt::Kernel> kernel;
    explicit ChainKernel(const std::string& chain) {
        write_file(dir / "multitenant.ini",
                   "[database]\nurl = postgresql://127.0.0.1:1/nowhere\n"
                   "[plugins]\npath = " + plugin_dir().string() + "\n"
                   "load = extract-header, extract-subdomain, extract-path\n"
                   "[roles]\nextractor = " + chain + "\n"
                   "[plugin.extract-subdomain]\nbase_domain = app.example.com\n"
                   "[plugin.extract-path]\nprefix = /t/{tenant}\n");
        mt::ManifestInput in;
        in.file = dir / "multitenant.ini";
        in.use_environment = false;
        kernel.emplace(in);
    }
    mt::ExtractResult operator()(const mt::RequestView& view) const { return mt::extract_tenant(*kernel, view); }
};

mt::RequestView view(std::string path, std::string host, std::vector<std::pair<std::string, std::string>> headers = {}) {
    mt::RequestView v;
    v.method = "GET";
    v.path = std::move(path);
    v.host = std::move(host);
    v.headers = std::move(headers);
    return v;
}

}  // namespace

TEST_CASE("the extractor chain: the first extractor that finds an id wins, and the kernel validates it", "[extract]") {
    ChainKernel chain("extract-header, extract-subdomain, extract-path");
    REQUIRE(chain.kernel->extractors().size() == 3);

    auto r = chain(view("/t/initech", "globex.app.example.com", {{"X-Tenant-Id", "acme"}}));
    CHECK(r.status == mt::TenantResolution::found);
    CHECK(r.tenant_id == "acme");
    CHECK(r.extractor == "extract-header");

    r = chain(view("/t/initech", "globex.app.example.com"));
    CHECK(r.tenant_id == "globex");
    CHECK(r.extractor == "extract-subdomain");

    r = chain(view("/t/initech/tasks", "localhost:8080"));
    CHECK(r.tenant_id == "initech");
    CHECK(r.extractor == "extract-path");

    r = chain(view("/tasks", "localhost"));
    CHECK(r.status == mt::TenantResolution::missing);
    CHECK(r.tenant_id.empty());

    // An extractor's error stops the chain: a malformed header is not overridden by the host.
    r = chain(view("/", "globex.app.example.com", {{"X-Tenant-Id", "acme\r\nX: y"}}));
    CHECK(r.status == mt::TenantResolution::invalid);
    CHECK(r.extractor == "extract-header");
}

TEST_CASE("the kernel refuses ids the extractors pass on: unicode, traversal, injection, reserved", "[extract]") {
    ChainKernel chain("extract-header");
    for (const std::string& bad : std::vector<std::string>{"acmé", "../etc", "a b", "x'; DROP SCHEMA public; --", "-leading-dash",
                                  std::string(64, 'a'), "\xff\xfe", "\xe2\x80\xae" "acme"}) {
        INFO(bad);
        const auto r = chain(view("/", "", {{"X-Tenant-Id", bad}}));
        CHECK(r.status == mt::TenantResolution::invalid);
        CHECK(r.tenant_id.empty());
        CHECK(r.error.size() < 400);
    }
    const auto ok = chain(view("/", "", {{"X-Tenant-Id", std::string(56, 'a')}}));  // tenant_ + 56 = 63 bytes
    CHECK(ok.status == mt::TenantResolution::found);
}
