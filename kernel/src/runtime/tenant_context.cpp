#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/runtime/tenant_context.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>

namespace mt {

namespace {

TenantRefusal refusal(int status, std::string error, std::string detail = {}) {
    return TenantRefusal{status, std::move(error), std::move(detail)};
}

// At most one warning a second: during an outage every request fails the same way.
void warn_unavailable(const std::exception& e) {
    static std::atomic<int64_t> last_ms{0};
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t prev = last_ms.load();
    if (now - prev < 1000 || !last_ms.compare_exchange_strong(prev, now)) return;
    spdlog::warn("database unavailable (answering 503): {}", e.what());
}

}  // namespace

std::string TenantRefusal::body() const {
    nlohmann::json j{{"error", error}};
    if (!detail.empty()) j["detail"] = detail;
    // Invalid UTF-8 in a detail (it may quote request input) becomes U+FFFD instead of throwing.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool is_database_unavailable(const std::exception& e) {
    if (dynamic_cast<const DatabaseUnavailable*>(&e) || dynamic_cast<const PoolTimeout*>(&e) ||
        is_connection_failure(e))
        return true;
    std::string state = sqlstate_of(e);
    if (const auto* op = dynamic_cast<const OperationError*>(&e); op && state.empty()) state = op->sqlstate;
    if (state.size() != 5) return false;
    return state.compare(0, 2, "08") == 0 || state == "57P01" || state == "57P02" || state == "57P03" ||
           state == "53300";
}

TenantRefusal unavailable_refusal(const std::exception& e) {
    warn_unavailable(e);
    // No detail: connection errors name hosts and ports, which clients have no business seeing.
    return refusal(503, "database unavailable");
}

std::optional<TenantRefusal> invalid_parameter_refusal(const std::exception& e) {
    const auto* invalid = dynamic_cast<const InvalidParameter*>(&e);
    if (!invalid) return std::nullopt;
    return refusal(400, "invalid parameter",
                   "parameter $" + std::to_string(invalid->position) +
                       " cannot be stored as text (an embedded NUL character or invalid UTF-8)");
}

TenantGate::TenantGate(TenantManager& manager, TenantGateOptions options)
    : manager_(manager), options_(options), directory_(manager, options.directory) {}

TenantAdmission TenantGate::admit(const RequestView& request, LeaseOptions lease) {
    TenantAdmission out;
    const ExtractResult found = extract_tenant(manager_.kernel(), request);
    switch (found.status) {
        case TenantResolution::missing: out.refusal = refusal(400, "tenant id required"); return out;
        case TenantResolution::invalid: out.refusal = refusal(400, "invalid tenant id", found.error); return out;
        case TenantResolution::found: break;
    }
    try {
        if (options_.check_directory && !directory_.contains(found.tenant_id)) {
            out.refusal = refusal(404, "unknown tenant");
            return out;
        }
        out.context.emplace(TenantContext{found.tenant_id, manager_.tenant(found.tenant_id, lease)});
    } catch (const TenantIdError& e) {
        out.refusal = refusal(400, "invalid tenant id", e.what());
    } catch (const std::exception& e) {
        if (!is_database_unavailable(e)) throw;
        out.refusal = unavailable_refusal(e);
    }
    return out;
}

}  // namespace mt
