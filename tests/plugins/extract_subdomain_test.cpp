// extract-subdomain (SPEC §3.1), loaded through the real registry: valid, missing, malformed and
// hostile hosts, and its configuration.
#include "support/extractor.hpp"

#include <mt/base/errors.hpp>

#include <catch2/catch.hpp>

using namespace mt::test;
using Catch::Matchers::Contains;

namespace {
TestRequest host(std::string h) { return with_host(std::move(h)); }
}  // namespace

TEST_CASE("extract-subdomain takes the label in front of the base domain", "[extract]") {
    ExtractorUnderTest ex("extract-subdomain", {{"base_domain", "app.example.com"}});
    CHECK(ex(host("acme.app.example.com")) == "acme");
    CHECK(ex(host("acme.app.example.com:8443")) == "acme");
    CHECK(ex(host("ACME.App.Example.COM")) == "acme");  // hosts are case-insensitive; the id is lower-cased
    CHECK(ex(host("acme.app.example.com.")) == "acme");  // fully qualified
    CHECK(ex(host("my-tenant_1.app.example.com")) == "my-tenant_1");
    CHECK(ex(host("xn--caf-dma.app.example.com")) == "xn--caf-dma");  // punycode passes as it is
    // Without a host in the view, the Host header.
    CHECK(ex(with_headers({{"host", "globex.app.example.com"}})) == "globex");
}

TEST_CASE("extract-subdomain finds none outside the base domain", "[extract]") {
    ExtractorUnderTest ex("extract-subdomain", {{"base_domain", ".App.Example.com."}});  // normalised
    CHECK(ex(host("acme.app.example.com")) == "acme");
    for (const char* h : {"", "app.example.com", "app.example.com:80", "example.com", "evilapp.example.com",
                          "acme.app.example.com.evil.org", "acme.example.com", "localhost", "127.0.0.1:8080",
                          "[::1]:8080", ".app.example.com"}) {
        INFO(h);
        CHECK(ex(host(h)) == "<none>");
    }
}

TEST_CASE("extract-subdomain: labels listed in exclude are not tenants", "[extract]") {
    ExtractorUnderTest ex("extract-subdomain", {{"base_domain", "app.example.com"}, {"exclude", "www, API"}});
    CHECK(ex(host("www.app.example.com")) == "<none>");
    CHECK(ex(host("api.app.example.com")) == "<none>");
    CHECK(ex(host("acme.app.example.com")) == "acme");
}

TEST_CASE("extract-subdomain refuses nested subdomains and malformed hosts", "[extract]") {
    ExtractorUnderTest ex("extract-subdomain", {{"base_domain", "app.example.com"}});
    CHECK_THAT(ex(host("a.b.app.example.com")), Contains("nested subdomain"));
    CHECK_THAT(ex(host("www.acme.app.example.com")), Contains("nested subdomain"));
    CHECK_THAT(ex(host("acme.app.example.com:80x")), Contains("port"));
    CHECK(is_error(ex(host("..app.example.com"))));
}

TEST_CASE("extract-subdomain refuses hostile hosts without echoing them", "[extract]") {
    ExtractorUnderTest ex("extract-subdomain", {{"base_domain", "app.example.com"}});
    CHECK_THAT(ex(host("acme.app.example.com\r\nX-Admin: 1")), Contains("control character"));
    CHECK_THAT(ex(host(std::string("acme\0.app.example.com", 21))), Contains("control character"));
    CHECK_THAT(ex(host("acmé.app.example.com")), Contains("not ASCII"));
    const std::string huge = std::string(5000, 'a') + ".app.example.com";
    const auto out = ex(host(huge));
    CHECK_THAT(out, Contains("bytes long"));
    CHECK(out.size() < 200);
    // Odd characters in the label go on to the kernel, whose id pattern refuses them.
    CHECK(ex(host("a%2fb.app.example.com")) == "a%2fb");
}

TEST_CASE("extract-subdomain requires a plain base_domain", "[extract]") {
    for (const auto& config : std::vector<std::map<std::string, std::string>>{
             {}, {{"base_domain", ""}}, {{"base_domain", "https://app.example.com"}},
             {{"base_domain", "app.example.com:8080"}}, {{"base_domain", "app..example.com"}}}) {
        try {
            ExtractorUnderTest ex("extract-subdomain", config);
            FAIL("accepted");
        } catch (const mt::PluginError& e) {
            CHECK(e.stage == "config");
            CHECK_THAT(e.reason, Contains("base_domain"));
        }
    }
}
