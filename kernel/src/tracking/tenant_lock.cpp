#include "tracking/tenant_lock.hpp"

#include <mt/base/ident.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <optional>

namespace mt {

namespace {

constexpr const char* kLockTimedOut = "55P03";  // lock_not_available

std::string milliseconds_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + "ms";
}

// The manifest spelling of a duration, so the message can be pasted back into the manifest.
std::string duration_text(std::chrono::milliseconds d) {
    if (d.count() != 0 && d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
    return milliseconds_text(d);
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", s);
    return buf;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// Who holds the tenant's lock, described for an operator; run on a connection with no open
// transaction (the one whose wait gave up is aborted).
std::string describe_holder(pqxx::connection_base& conn, const std::string& schema) {
    try {
        pqxx::nontransaction tx(conn);
        // Advisory locks on two int4 keys show classid = key1, objid = key2 (as oid), objsubid = 2.
        // pid is NULL for a prepared transaction; state and times are NULL for another user's
        // session without pg_read_all_stats.
        const auto r = exec_params(
            tx,
            "SELECT l.pid, a.usename, a.application_name, a.state,"
            "       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,"
            "       extract(epoch FROM clock_timestamp() - a.backend_start)::float8"
            " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            "   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            "   AND l.classid = hashtext(current_database())::oid AND l.objid = hashtext($1)::oid"
            "   AND l.pid IS DISTINCT FROM pg_backend_pid()"
            " ORDER BY l.pid NULLS LAST LIMIT 1",
            {schema});
        if (r.empty()) return "was locked, but its holder has already gone (it finished after the wait gave up)";
        const auto row = r[0];
        if (row[0].is_null())
            return "is locked by a prepared transaction (see pg_prepared_xacts: COMMIT PREPARED or ROLLBACK PREPARED it)";
        std::string who = "is locked by pid " + row[0].as<std::string>() + " (";
        if (!row[1].is_null()) who += "user " + quoted(row[1].as<std::string>()) + ", ";
        who += "application_name " + quoted(row[2].is_null() ? std::string() : row[2].as<std::string>());
        if (row[3].is_null()) {
            who += ", state not visible to this user";
        } else {
            who += ", state " + quoted(row[3].as<std::string>());
            // A lock outlives its holder's transaction only at session level, so with no open
            // transaction the session's age is the bound on how long it has been held.
            if (!row[4].is_null()) who += ", held in a transaction open for " + seconds_text(row[4].as<double>());
            else if (!row[5].is_null())
                who += ", held at session level by a session connected " + seconds_text(row[5].as<double>()) + " ago";
        }
        return who + ")";
    } catch (const pqxx::broken_connection&) {
        throw;
    } catch (const std::exception& e) {
        std::string why = e.what();
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        return "is locked by another session (looking it up in pg_locks failed: " + why + ")";
    }
}

[[noreturn]] void gave_up(pqxx::connection_base& conn, const Tenant& tenant, std::chrono::milliseconds lock_timeout) {
    const std::string holder = describe_holder(conn, tenant.schema);
    spdlog::debug("tenant {}: lock wait gave up after {}", tenant.id, duration_text(lock_timeout));
    throw LockTimeout(tenant.id, "tenant " + tenant.id + ": schema " + quote_ident(tenant.schema) + " " + holder +
                                     "; gave up after migrations.lock_timeout=" + duration_text(lock_timeout) +
                                     ": wait for that run to finish or stop it, or raise migrations.lock_timeout "
                                     "(nothing was changed for this tenant)");
}

}  // namespace

void lock_tenant_transaction(pqxx::transaction_base& tx, const Tenant& tenant, std::chrono::milliseconds lock_timeout,
                             const std::string& search_path) {
    // Two statements: the lock must not be requested before lock_timeout is in force, and the
    // order in which one SELECT evaluates its expressions is not guaranteed.
    if (search_path.empty())
        exec_params(tx, "SELECT set_config('lock_timeout', $1, true)", {milliseconds_text(lock_timeout)});
    else
        exec_params(tx, "SELECT set_config('lock_timeout', $1, true), set_config('search_path', $2, true)",
                    {milliseconds_text(lock_timeout), search_path});
    try {
        exec_params(tx, "SELECT pg_advisory_xact_lock(hashtext(current_database()), hashtext($1))", {tenant.schema});
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != kLockTimedOut) throw;
        tx.abort();
        gave_up(tx.conn(), tenant, lock_timeout);
    }
}

void begin_tenant_transaction(pqxx::transaction_base& tx, const Kernel& kernel, const Tenant& tenant,
                              std::chrono::milliseconds lock_timeout) {
    lock_tenant_transaction(tx, tenant, lock_timeout,
                            quote_ident(tenant.schema) + ", " + quote_ident(kernel.manifest().isolation.shared_schema));
}

TenantSessionLock::TenantSessionLock(pqxx::connection_base& conn, Tenant tenant, std::chrono::milliseconds lock_timeout)
    : conn_(conn), tenant_(std::move(tenant)) {
    try {
        // Inside a transaction so that its lock_timeout ends with it; a session-level advisory
        // lock survives the COMMIT.
        pqxx::work tx(conn_);
        exec_params(tx, "SELECT set_config('lock_timeout', $1, true)", {milliseconds_text(lock_timeout)});
        exec_params(tx, "SELECT pg_advisory_lock(hashtext(current_database()), hashtext($1))", {tenant_.schema});
        held_ = true;
        tx.commit();
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != kLockTimedOut) throw;
        gave_up(conn_, tenant_, lock_timeout);
    }
}

void TenantSessionLock::release() {
    if (!held_) return;
    held_ = false;
    pqxx::nontransaction tx(conn_);
    exec_params(tx, "SELECT pg_advisory_unlock(hashtext(current_database()), hashtext($1))", {tenant_.schema});
}

TenantSessionLock::~TenantSessionLock() {
    // A closed connection has released the lock with its session.
    if (!held_ || !conn_.is_open()) return;
    try {
        release();
    } catch (const std::exception& e) {
        spdlog::warn("tenant {}: could not release the advisory lock on schema {}: {}", tenant_.id, tenant_.schema,
                     e.what());
    }
}

}  // namespace mt
