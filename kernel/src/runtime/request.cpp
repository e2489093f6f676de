#include <mt/base/errors.hpp>
#include <mt/runtime/request.hpp>

#include <cstdio>

namespace mt {

namespace {

// The error goes back to the client and into logs: at most 64 bytes of the id, and every byte
// outside printable ASCII written as \xNN (a CR/LF in an id must not split a log line or a header).
std::string shown_id(std::string_view id) {
    constexpr size_t max_shown = 64;
    std::string out;
    for (unsigned char c : id.substr(0, max_shown)) {
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02X", c);
            out += escaped;
        }
    }
    if (id.size() > max_shown) out += "...";
    return out;
}

// TenantIdError's message quotes the whole id (and a schema rule's reason the schema holding it).
std::string invalid_id_message(const TenantIdError& e) {
    std::string reason = e.reason;
    const std::string shown = shown_id(e.id);
    if (!e.id.empty())
        for (size_t at = reason.find(e.id); at != std::string::npos; at = reason.find(e.id, at + shown.size()))
            reason.replace(at, e.id.size(), shown);
    return "tenant id '" + shown + "': " + reason.substr(0, 200);
}

}  // namespace

ExtractResult extract_tenant(const Kernel& kernel, const RequestView& request) {
    std::vector<mt_header> headers;
    headers.reserve(request.headers.size());
    for (const auto& [k, v] : request.headers) headers.push_back({sdk::str(k), sdk::str(v)});
    const mt_request_view view{sizeof(mt_request_view), sdk::str(request.method), sdk::str(request.path),
                               sdk::str(request.host),  sdk::str(request.query),  headers.data(),
                               headers.size()};
    ExtractResult result;
    for (const auto& extractor : kernel.extractors()) {
        const auto outcome = extractor.extract(view);
        if (outcome.result == MT_EXTRACT_NONE) continue;
        result.extractor = extractor.name();
        if (outcome.result == MT_EXTRACT_ERROR) {
            result.status = TenantResolution::invalid;
            result.error = outcome.error;
            return result;
        }
        try {
            kernel.namer().schema_name(outcome.tenant_id);
        } catch (const TenantIdError& e) {
            result.status = TenantResolution::invalid;
            result.error = invalid_id_message(e);
            return result;
        }
        result.status = TenantResolution::found;
        result.tenant_id = outcome.tenant_id;
        return result;
    }
    return result;
}

}  // namespace mt
