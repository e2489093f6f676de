// extract-path (SPEC §3.1), loaded through the real registry: by segment index and by prefix
// pattern; percent-decoding; missing, malformed and hostile paths; configuration.
#include "support/extractor.hpp"

#include <mt/base/errors.hpp>

#include <catch2/catch.hpp>

using namespace mt::test;
using Catch::Matchers::Contains;

namespace {
TestRequest path(std::string p) { return with_path(std::move(p)); }
}  // namespace

TEST_CASE("extract-path with a prefix pattern: /t/{tenant}", "[extract]") {
    ExtractorUnderTest ex("extract-path", {{"prefix", "/t/{tenant}"}});
    CHECK(ex(path("/t/acme")) == "acme");
    CHECK(ex(path("/t/acme/")) == "acme");
    CHECK(ex(path("/t/acme/tasks/12")) == "acme");
    CHECK(ex(path("/t/Acme-1/tasks?x=/t/globex")) == "Acme-1");  // a raw target's query is ignored
    CHECK(ex(path("/t/ac%6De/tasks")) == "acme");                  // percent-decoded
    CHECK(ex(path("/t/a+b")) == "a+b");                             // '+' is not a space in a path
    for (const char* none : {"/", "", "/t", "/t/", "/t//tasks", "/tasks", "/x/acme", "/T/acme", "/health/db"}) {
        INFO(none);
        CHECK(ex(path(none)) == "<none>");
    }
}

TEST_CASE("extract-path with a pattern in the middle: /api/{tenant}/v1", "[extract]") {
    ExtractorUnderTest ex("extract-path", {{"prefix", "/api/{tenant}/v1"}});
    CHECK(ex(path("/api/acme/v1/tasks")) == "acme");
    CHECK(ex(path("/api/acme/v1")) == "acme");
    CHECK(ex(path("/api/acme/v2/tasks")) == "<none>");
    // Shorter than the pattern: once read the literal "v1" past the end of the segment vector (a
    // heap-buffer-overflow under ASan, issue 11).
    CHECK(ex(path("/api/acme")) == "<none>");
    CHECK(ex(path("/api/acme/")) == "<none>");
    CHECK(ex(path("/api")) == "<none>");
    CHECK(ex(path("/")) == "<none>");
}

TEST_CASE("extract-path with a segment index", "[extract]") {
    ExtractorUnderTest first("extract-path", {{"segment", "0"}});
    CHECK(first(path("/acme/tasks")) == "acme");
    CHECK(first(path("/acme")) == "acme");
    CHECK(first(path("/")) == "<none>");
    ExtractorUnderTest second("extract-path", {{"segment", "1"}});
    CHECK(second(path("/v1/globex/tasks")) == "globex");
    CHECK(second(path("/v1")) == "<none>");
    CHECK(second(path("/v1/")) == "<none>");
}

TEST_CASE("extract-path refuses ids that decode to separators, dot-dot or control characters", "[extract]") {
    ExtractorUnderTest ex("extract-path", {{"prefix", "/t/{tenant}"}});
    CHECK_THAT(ex(path("/t/a%2Fb/tasks")), Contains("separator"));
    CHECK_THAT(ex(path("/t/a%2fb")), Contains("separator"));
    CHECK_THAT(ex(path("/t/a%5Cb")), Contains("separator"));
    CHECK_THAT(ex(path("/t/a..b")), Contains(".."));
    CHECK_THAT(ex(path("/t/a%2E%2Eb")), Contains(".."));
    CHECK_THAT(ex(path("/t/a%0D%0AX-Admin:%201")), Contains("control character"));
    CHECK_THAT(ex(path("/t/a%00")), Contains("control character"));
    CHECK_THAT(ex(path("/t/acme\r\n")), Contains("control character"));
}

TEST_CASE("extract-path refuses dot segments anywhere and malformed percent-encoding", "[extract]") {
    ExtractorUnderTest ex("extract-path", {{"prefix", "/t/{tenant}"}});
    for (const char* dots : {"/t/..", "/t/../x", "/t/acme/../globex", "/t/%2e%2E/tasks", "/t/./acme", "/../t/acme",
                             "/t/acme/%2e"}) {
        INFO(dots);
        CHECK_THAT(ex(path(dots)), Contains("dot segment"));
    }
    for (const char* bad : {"/t/%", "/t/%2", "/t/%ZZ", "/t/ac%g1me"}) {
        INFO(bad);
        CHECK_THAT(ex(path(bad)), Contains("percent-encoding"));
    }
}

TEST_CASE("extract-path refuses very long input without echoing it, unicode goes to the kernel", "[extract]") {
    ExtractorUnderTest ex("extract-path", {{"prefix", "/t/{tenant}"}});
    const auto long_id = ex(path("/t/" + std::string(2000, 'a') + "/tasks"));
    CHECK_THAT(long_id, Contains("2000 bytes"));
    CHECK(long_id.size() < 200);
    const auto long_path = ex(path("/t/acme/" + std::string(10000, 'x')));
    CHECK_THAT(long_path, Contains("bytes long"));
    CHECK(long_path.size() < 200);
    CHECK(ex(path("/t/caf%C3%A9")) == "café");  // decoded; the kernel's id pattern refuses it
}

TEST_CASE("extract-path requires exactly one of segment and prefix, well formed", "[extract]") {
    for (const auto& config : std::vector<std::map<std::string, std::string>>{
             {},
             {{"segment", "0"}, {"prefix", "/t/{tenant}"}},
             {{"segment", "-1"}},
             {{"segment", "first"}},
             {{"prefix", "t/{tenant}"}},
             {{"prefix", "/t/"}},
             {{"prefix", "/t/x{tenant}"}},
             {{"prefix", "/{tenant}/{tenant}"}},
             {{"prefix", "/../{tenant}"}},
             {{"prefix", "//{tenant}"}}}) {
        try {
            ExtractorUnderTest ex("extract-path", config);
            FAIL("accepted");
        } catch (const mt::PluginError& e) {
            CHECK(e.stage == "config");
            const bool names_key = e.reason.find("segment") != std::string::npos || e.reason.find("prefix") != std::string::npos;
            CHECK(names_key);
        }
    }
}
