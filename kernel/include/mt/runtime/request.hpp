// Request tenant extraction (SPEC §3.1): a framework-neutral request view, and the chain of
// extractors named in [roles] extractor (the first that finds an id wins).
#pragma once

#include <mt/context/kernel.hpp>

#include <string>
#include <utility>
#include <vector>

namespace mt {

struct RequestView {
    std::string method;
    std::string path;   // without the query string
    std::string host;   // the Host header's value (may carry :port)
    std::string query;  // raw query string, without '?'
    std::vector<std::pair<std::string, std::string>> headers;
};

enum class TenantResolution {
    found,    // tenant_id is set and valid (SPEC §5.1 rules)
    missing,  // no extractor found an id
    invalid,  // an extractor found something that is not a valid tenant id, or reported malformed input
};

struct ExtractResult {
    TenantResolution status = TenantResolution::missing;
    std::string tenant_id;
    std::string extractor;  // which extractor decided
    std::string error;      // invalid: why (safe to show: never echoes more than 64 bytes of input)
};

// Runs the configured extractors in order and validates the id with the kernel's schema namer.
ExtractResult extract_tenant(const Kernel& kernel, const RequestView& request);

}  // namespace mt
