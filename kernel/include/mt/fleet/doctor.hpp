// mtctl doctor: one line per check, each ok / warn / fail / skip with what to do.
#pragma once

#include <mt/context/manifest.hpp>

#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

enum class CheckStatus { ok, warn, fail, skip };
std::string to_string(CheckStatus);

struct Check {
    std::string name;
    CheckStatus status = CheckStatus::ok;
    std::string detail;  // what was found
    std::string hint;    // what to do (warn/fail)
};

struct DoctorReport {
    std::vector<Check> checks;
    bool failed() const;
    const Check* find(const std::string& name) const;
};

// Runs every check it can, in this order (a failed stage marks the checks that depend on it as
// skipped):
//   manifest, plugins           fail when the manifest is invalid / a plugin is refused
//   tenant folder, shared folder fail when unreadable (malformed journal, missing file); warn on
//                               .sql files the journal does not list, journal `when` values that do
//                               not increase, plain files without a leading number
//   connection, server NAME     fail when the default / an extra server cannot be reached
//   server version              warn below PostgreSQL 12
//   discovery                   fail when the discovery plugin fails; warn on no tenants
//   tenant schemas              fail when a discovered tenant has no schema (migrate --all fails it)
//   orphan schemas              warn on schemas matching the template that no tenant owns
//   tracking                    tracking-table formats across the fleet; warn on tables in a
//                               layout no loaded format (or not the configured one) recognises
//   pool sizing                 warn when pools + migrations.concurrency exceed max_connections
//                               minus the reserved slots
//   pooler                      fail when a transaction-mode pooler is detected and pool_mode is
//                               not `transaction`
DoctorReport run_doctor(const ManifestInput& input);

// What the pooler probe found over two client connections to the same target.
struct PoolerProbe {
    bool transaction_pooling = false;  // session state does not survive between transactions
    std::string evidence;
};

// Sets a session-level setting on `first` and reads its backend pid; holds a transaction open on
// `second`; then reads the setting and pid on `first` again. A transaction-mode pooler (PgBouncer
// pool_mode = transaction or statement) shows itself by giving `second` the backend `first` just
// released, or by `first` coming back on another backend without its setting. A direct
// connection, or a session-mode pooler, keeps both. Leaves a harmless custom setting
// (mt.pooler_probe) on the backend it used.
PoolerProbe probe_transaction_pooler(pqxx::connection& first, pqxx::connection& second);

// The pieces of the checks that do not need a database, for tests.
Check server_version_check(int server_version_num, const std::string& version);
Check pool_sizing_check(const Manifest& manifest, int max_connections, int reserved_connections);
Check pooler_check(const PoolerProbe& probe, PoolMode mode, bool has_no_transaction_migrations);

}  // namespace mt
