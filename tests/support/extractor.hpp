// Running one request_tenant_extractor plugin, loaded through the real registry, on a request.
#pragma once

#include "support/pg.hpp"

#include <mt/plugin_host/plugins.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mt::test {

struct TestRequest {
    std::string method = "GET";
    std::string path = "/";
    std::string host;
    std::string query;
    std::vector<std::pair<std::string, std::string>> headers;
};

inline TestRequest with_headers(std::vector<std::pair<std::string, std::string>> headers) {
    TestRequest r;
    r.headers = std::move(headers);
    return r;
}
inline TestRequest with_host(std::string host) {
    TestRequest r;
    r.host = std::move(host);
    return r;
}
inline TestRequest with_path(std::string path) {
    TestRequest r;
    r.path = std::move(path);
    return r;
}

class ExtractorUnderTest {
public:
    ExtractorUnderTest(const std::string& plugin, const std::map<std::string, std::string>& config)
        : registry_({plugin_dir()}) {
        registry_.load(plugin);
        extractor_.emplace(registry_.create(plugin, MT_KIND_REQUEST_TENANT_EXTRACTOR, config));
    }

    mt::ExtractOutcome run(const TestRequest& r) const {
        std::vector<mt_header> headers;
        for (const auto& [k, v] : r.headers) headers.push_back({sdk::str(k), sdk::str(v)});
        const mt_request_view view{sizeof(mt_request_view), sdk::str(r.method), sdk::str(r.path), sdk::str(r.host),
                                   sdk::str(r.query), headers.data(), headers.size()};
        return extractor_->extract(view);
    }

    // "id" when found, "<none>" or "<error: …>".
    std::string operator()(const TestRequest& r) const {
        const auto out = run(r);
        switch (out.result) {
            case MT_EXTRACT_FOUND: return out.tenant_id;
            case MT_EXTRACT_NONE: return "<none>";
            default: return "<error: " + out.error + ">";
        }
    }

private:
    mt::PluginRegistry registry_;
    std::optional<mt::RequestTenantExtractor> extractor_;
};

inline bool is_error(const std::string& outcome) { return outcome.rfind("<error: ", 0) == 0; }

}  // namespace mt::test
