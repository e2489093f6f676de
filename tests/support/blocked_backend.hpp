// Pausing mtctl at a known statement: the test holds a lock that one migration needs, in an open
// transaction of its own, and waits until pg_stat_activity shows mtctl's backend waiting on it.
// A fault injected then lands at that exact point, whatever the machine's speed.
#pragma once

#include "support/daemon.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <optional>
#include <string>

namespace mt::test {

// A table lock held in an open transaction, as an application's long transaction would hold it.
class HeldTableLock {
public:
    // `mode` is a LOCK TABLE mode keyword ("ACCESS SHARE", "ROW EXCLUSIVE", ...).
    HeldTableLock(const std::string& url, const std::string& schema, const std::string& table, const std::string& mode)
        : conn_(url), pid_(conn_.backendpid()) {
        tx_.emplace(conn_);
        tx_->exec0("LOCK TABLE " + tx_->quote_name(schema) + "." + tx_->quote_name(table) + " IN " + mode + " MODE");
    }
    ~HeldTableLock() { release(); }
    HeldTableLock(const HeldTableLock&) = delete;
    HeldTableLock& operator=(const HeldTableLock&) = delete;

    int pid() const { return pid_; }

    // Ends the transaction and with it the lock; harmless once the server has dropped the connection.
    void release() {
        if (!tx_) return;
        try {
            tx_->abort();
        } catch (const std::exception&) {
        }
        tx_.reset();
    }

private:
    pqxx::connection conn_;
    int pid_;
    std::optional<pqxx::work> tx_;
};

// Reads pg_stat_activity and pg_locks for one database, on a connection of its own.
class Observer {
public:
    explicit Observer(const std::string& url) : url_(url) {}

    // mtctl's backend (found by its application_name) once it waits, inside a transaction, on a
    // lock held by `holder`, running a statement that contains `statement`; `other_than`
    // excludes a backend seen before (to see a retry arrive on a new connection). Fails the test
    // when mtctl exits first or the deadline passes.
    int wait_for_blocked(Daemon& mtctl, const std::string& application_name, int holder, const std::string& statement,
                         int other_than = 0) {
        int found = 0;
        const bool seen = poll_until([&] {
            if (!mtctl.running()) return true;
            const auto r = query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1"
                " AND wait_event_type = 'Lock' AND xact_start IS NOT NULL AND strpos(query, $2) > 0"
                " AND $3::int = ANY (pg_blocking_pids(pid)) AND pid <> $4",
                application_name, statement, holder, other_than);
            if (r.empty()) return false;
            found = r[0][0].as<int>();
            return true;
        });
        INFO("mtctl's stdout: " << mtctl.out() << "\nmtctl's stderr: " << mtctl.err());
        if (!seen) FAIL("mtctl's backend never waited on pid " << holder << "'s lock at: " << statement);
        if (found == 0) FAIL("mtctl exited (status " << mtctl.stop() << ") before it reached: " << statement);
        return found;
    }

    // Waits until the backend has gone (a killed client's backend lingers until it next talks to it).
    void wait_until_gone(int pid) {
        wait_until([&] { return query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid).empty(); },
                   "backend " + std::to_string(pid) + " to end");
    }

    // The tenant schemas whose migration lock (SPEC §6.3: advisory lock on (database, schema))
    // `pid` holds, comma-separated, and the count of every advisory lock it holds in this database.
    std::pair<std::string, int> tenant_locks_of(int pid) {
        const auto r = query(
            "SELECT (SELECT string_agg(n.nspname, ',' ORDER BY n.nspname) FROM pg_locks l JOIN pg_namespace n"
            "          ON l.classid = hashtext(current_database())::oid AND l.objid = hashtext(n.nspname)::oid"
            "        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = $1"
            "          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())),"
            "       (SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = $1"
            "          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            pid);
        return {r[0][0].is_null() ? std::string() : r[0][0].as<std::string>(), r[0][1].as<int>()};
    }

    template <class... Args>
    pqxx::result query(const std::string& sql, Args&&... args) {
        if (!conn_ || !conn_->is_open()) conn_.emplace(url_);
        pqxx::nontransaction tx(*conn_);
        return tx.exec_params(sql, std::forward<Args>(args)...);
    }

private:
    std::string url_;
    std::optional<pqxx::connection> conn_;
};

}  // namespace mt::test
