// Error types carry the context an operator needs (file, key, tenant, migration, stage, SQLSTATE)
// and each its exit code of SPEC §7, so mtctl prints what() and exits with exit_code(): nothing
// maps messages to codes. libpqxx's exceptions are turned into these types once, where the
// kernel's command entry points return (mt/fleet/commands.hpp); no message text is a protocol.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace mt {

enum class ExitCode : int {
    ok = 0,
    failed = 1,       // the operation failed for at least one tenant, unhealthy, drift found, or a bug
    usage = 2,        // usage, manifest or plugin error; nothing was changed
    unreachable = 3,  // cannot reach the database
};

// The base of every kernel error. It has no default exit code: each type below states its own, so
// that a runtime failure can never be reported as "usage, nothing changed".
class Error : public std::runtime_error {
public:
    ExitCode exit_code() const { return code_; }

protected:
    Error(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}

private:
    ExitCode code_;
};

// Bad command-line usage.
class UsageError : public Error {
public:
    explicit UsageError(const std::string& what) : Error(ExitCode::usage, what) {}
};

// A value refused before anything was done: a setting the kernel cannot use (no discovery plugin,
// an unknown tracking format or server, an invalid pattern), an identifier it cannot quote.
class InputError : public Error {
public:
    explicit InputError(const std::string& what) : Error(ExitCode::usage, what) {}
};

// A manifest problem: names the file (or "environment"/"command line"), the key and what was expected.
class ManifestError : public Error {
public:
    ManifestError(std::string source, std::string key, std::string what)
        : Error(ExitCode::usage, source + ": " + key + ": " + what), source(std::move(source)), key(std::move(key)) {}
    std::string source;
    std::string key;
};

// A plugin refused at one stage: inspect, load, abi, config, create (or role, for a wrong kind).
class PluginError : public Error {
public:
    PluginError(std::string file, std::string stage, std::string reason)
        : Error(ExitCode::usage, "plugin " + file + ": " + stage + ": " + reason),
          file(std::move(file)), stage(std::move(stage)), reason(std::move(reason)) {}
    std::string file;
    std::string stage;
    std::string reason;
};

// A tenant id or schema name refused before any SQL was sent.
class TenantIdError : public Error {
public:
    TenantIdError(std::string id, std::string reason)
        : Error(ExitCode::usage, "tenant id '" + id + "': " + reason), id(std::move(id)), reason(std::move(reason)) {}
    std::string id;
    std::string reason;  // what is wrong with it, without the id
};

// A migration folder problem (malformed journal, missing file, duplicate number): names the file.
class MigrationFolderError : public Error {
public:
    MigrationFolderError(std::string file, std::string what)
        : Error(ExitCode::usage, file + ": " + what), file(std::move(file)) {}
    std::string file;
};

// The database could not be reached at all.
class DatabaseUnavailable : public Error {
public:
    explicit DatabaseUnavailable(const std::string& what) : Error(ExitCode::unreachable, what) {}
};

// An operation that ran and failed (a tenant's migration, a query), with the server's SQLSTATE.
class OperationError : public Error {
public:
    OperationError(std::string what, std::string sqlstate = {})
        : Error(ExitCode::failed, what), sqlstate(std::move(sqlstate)) {}
    std::string sqlstate;
};

// No pooled connection became free within the wait timeout (connect_timeout): the pool is
// exhausted, nothing reached the server. Adapters answer 503 for it.
class PoolTimeout : public OperationError {
public:
    PoolTimeout(std::string tenant, size_t pool_size, long long waited_ms)
        : OperationError("timed out after " + std::to_string(waited_ms) + "ms waiting for a connection" +
                         (tenant.empty() ? std::string() : " for tenant " + tenant) + ": all " +
                         std::to_string(pool_size) +
                         " are in use (raise database.pool_size or release leases sooner)"),
          tenant(std::move(tenant)), pool_size(pool_size), waited_ms(waited_ms) {}
    std::string tenant;  // empty for the shared pool
    size_t pool_size;
    long long waited_ms;
};

// A statement was sent and the connection broke before its result came back: the server may or
// may not have run it (a write may be committed). Never retried automatically; the caller decides.
class OutcomeUnknown : public OperationError {
public:
    OutcomeUnknown(std::string tenant, std::string statement, std::string cause)
        : OperationError("connection lost after the statement was sent" +
                             (tenant.empty() ? std::string() : " (tenant " + tenant + ")") +
                             "; it may or may not have run: " + cause,
                         "08006"),
          tenant(std::move(tenant)), statement(std::move(statement)) {}
    std::string tenant;     // empty for the shared schema
    std::string statement;  // the statement as given (not sent again)
};

// A statement parameter PostgreSQL cannot hold as text (an embedded NUL, invalid UTF-8): refused
// before anything is sent, so nothing is ever silently truncated.
class InvalidParameter : public OperationError {
public:
    InvalidParameter(std::string tenant, size_t position, std::string what)
        : OperationError("parameter $" + std::to_string(position) +
                             (tenant.empty() ? std::string() : " for tenant " + tenant) + ": " + what,
                         "22021"),
          tenant(std::move(tenant)), position(position) {}
    std::string tenant;
    size_t position;  // 1-based, as in $1
};

// A tenant's advisory lock stayed held by another session past lock_timeout.
class LockTimeout : public OperationError {
public:
    LockTimeout(std::string tenant, std::string what) : OperationError(std::move(what), "55P03"), tenant(std::move(tenant)) {}
    std::string tenant;
};

// A broken invariant of mtenant itself (a bug), or a failure of the machine under it. Exit 1, not 2:
// the operation may have changed something before it failed, so "nothing was changed" is not known.
class InternalError : public Error {
public:
    explicit InternalError(const std::string& what) : Error(ExitCode::failed, what) {}
};

}  // namespace mt
