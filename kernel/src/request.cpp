#include <mt/errors.hpp>
#include <mt/request.hpp>

namespace mt {

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
            result.error = "invalid tenant id: " + std::string(e.what()).substr(0, 200);
            return result;
        }
        result.status = TenantResolution::found;
        result.tenant_id = outcome.tenant_id;
        return result;
    }
    return result;
}

}  // namespace mt
