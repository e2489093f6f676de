// A session-level advisory lock (key 4242) that test migrations wait for with
// `SELECT pg_advisory_lock(4242)`: held from construction until open().
#pragma once

#include <pqxx/pqxx>

#include <string>

namespace mt::test {

class Gate {
public:
    explicit Gate(const std::string& url) : conn_(url) {
        pqxx::nontransaction tx(conn_);
        tx.exec("SELECT pg_advisory_lock(4242)");
    }
    void open() {
        pqxx::nontransaction tx(conn_);
        tx.exec("SELECT pg_advisory_unlock(4242)");
    }

private:
    pqxx::connection conn_;
};

}  // namespace mt::test
