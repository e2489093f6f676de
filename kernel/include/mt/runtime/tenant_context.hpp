// What a framework adapter does for each request, framework-neutral (SPEC §3.1): extract the tenant
// id with the [roles] extractor chain, validate it, check that the tenant exists, and lend a lease.
// A request that cannot be served for the tenant gets a refusal carrying its HTTP status and JSON
// body, the same in every adapter:
//   400 {"error":"tenant id required"}   no extractor found an id
//   400 {"error":"invalid tenant id"}    malformed input, or an id the kernel refuses
//   404 {"error":"unknown tenant"}       no schema for that id (TenantDirectory)
//   503 {"error":"database unavailable"} cannot reach the database, broken connection, pool timeout
#pragma once

#include <mt/runtime/request.hpp>
#include <mt/runtime/tenant_directory.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <exception>
#include <optional>
#include <string>

namespace mt {

// Handed to a tenant route's handler: the id and a lease on the tenant's schema, released after
// the handler returns.
struct TenantContext {
    std::string tenant_id;
    TenantLease lease;
};

struct TenantRefusal {
    int status = 0;      // 400, 404, 503
    std::string error;   // the fixed message above
    std::string detail;  // why, safe to show (never more than a short prefix of the input); may be empty
    // {"error":"…"} plus "detail" when there is one.
    std::string body() const;
};

// The outcome of admit(): a context, or a refusal.
struct TenantAdmission {
    std::optional<TenantContext> context;
    TenantRefusal refusal;
    explicit operator bool() const { return context.has_value(); }
};

struct TenantGateOptions {
    TenantDirectoryOptions directory;
    bool check_directory = true;  // false: skip the existence check (every valid id gets a lease)
};

// One per service, shared by every route and request thread (thread-safe).
class TenantGate {
public:
    explicit TenantGate(TenantManager& manager, TenantGateOptions options = {});

    TenantAdmission admit(const RequestView& request, LeaseOptions lease = {});

    TenantManager& manager() { return manager_; }
    TenantDirectory& directory() { return directory_; }

private:
    TenantManager& manager_;
    TenantGateOptions options_;
    TenantDirectory directory_;
};

// true for failures that mean "the database cannot serve now" rather than "this request is wrong",
// decided by type and SQLSTATE, never by message text: DatabaseUnavailable, PoolTimeout (no
// connection freed up within the wait timeout), a broken connection, and the SQLSTATEs of a server
// that is shutting down, starting or out of connections (08xxx, 57P01-57P03, 53300).
bool is_database_unavailable(const std::exception& e);

// The 503 refusal for such a failure (detail: the error's first line).
TenantRefusal unavailable_refusal(const std::exception& e);

// The 400 refusal for a statement parameter PostgreSQL cannot hold as text (mt::InvalidParameter):
// names the parameter's position, never its value; nullopt for any other exception.
std::optional<TenantRefusal> invalid_parameter_refusal(const std::exception& e);

}  // namespace mt
