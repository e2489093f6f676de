// The tenant lock every command takes (migrate, sync, seed, convert-format, tenant create/drop/clone):
// a PostgreSQL advisory lock keyed on (hashtext(current_database()), hashtext(schema)), waited for
// at most lock_timeout. A wait that gives up throws LockTimeout naming the session that holds it.
#pragma once

#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>

#include <chrono>
#include <pqxx/pqxx>
#include <string>

namespace mt {

// Takes the tenant's lock for the rest of tx. lock_timeout is set for the whole transaction
// before the lock is requested (so the wait, and every lock the transaction takes later, is
// bounded), together with search_path when one is given. On timeout tx is aborted and
// LockTimeout is thrown.
void lock_tenant_transaction(pqxx::transaction_base& tx, const Tenant& tenant, std::chrono::milliseconds lock_timeout,
                             const std::string& search_path = {});

// lock_tenant_transaction with the transaction's search_path set to the tenant schema, then the
// shared schema: how every per-tenant transaction of migrate, sync, seed and convert-format starts.
void begin_tenant_transaction(pqxx::transaction_base& tx, const Kernel& kernel, const Tenant& tenant,
                              std::chrono::milliseconds lock_timeout);

// The same lock at session level, for work that cannot run in one transaction (`-- mt:no-transaction`
// migrations, clone). The session's lock_timeout is left as it was; the lock is released by
// release() or, failing that, by the destructor. No transaction may be open on conn meanwhile.
class TenantSessionLock {
public:
    TenantSessionLock(pqxx::connection_base& conn, Tenant tenant, std::chrono::milliseconds lock_timeout);
    ~TenantSessionLock();
    TenantSessionLock(const TenantSessionLock&) = delete;
    TenantSessionLock& operator=(const TenantSessionLock&) = delete;

    // Releases the lock now; throws if the server cannot be told.
    void release();

private:
    pqxx::connection_base& conn_;
    Tenant tenant_;
    bool held_ = false;
};

// Runs fn through the kernel's retry policy, except that a LockTimeout is passed straight up: the
// holder is another run of unknown length, and lock_timeout is the operator's bound on the wait.
template <class F>
auto with_retry_unless_locked(const Kernel& kernel, const std::string& tenant, F&& fn) -> decltype(fn()) {
    // Not a std::exception, so the retry loop lets it through untouched.
    struct GaveUp {
        LockTimeout error;
    };
    try {
        return kernel.with_retry(tenant, [&]() -> decltype(fn()) {
            try {
                return fn();
            } catch (const LockTimeout& e) {
                throw GaveUp{e};
            }
        });
    } catch (const GaveUp& g) {
        throw g.error;
    }
}

}  // namespace mt
