// A PgBouncer of a test's own (the Debian package tools/setup.sh installs) in front of the test
// PostgreSQL, on a free loopback port. It runs as postgres when the tests run as root (PgBouncer
// refuses root) and is stopped when the object goes away. Also free_loopback_port, for the other
// daemons tests start (prometheus).
#pragma once

#include "support/pg.hpp"

#include <string>

namespace mt::test {

struct PgBouncerOptions {
    std::string pool_mode = "transaction";  // session | transaction | statement
    int default_pool_size = 4;              // server connections per database and user
    int max_client_conn = 200;
};

class PgBouncer {
public:
    // Fails the test, with PgBouncer's log, when it cannot be started: it is a test dependency.
    explicit PgBouncer(PgBouncerOptions options = {});
    ~PgBouncer();
    PgBouncer(const PgBouncer&) = delete;
    PgBouncer& operator=(const PgBouncer&) = delete;

    int port() const { return port_; }
    // A URL for this database through the pooler.
    std::string url_for(const std::string& dbname) const;
    // A URL for the database of `server_url` (a URL of the test server) through the pooler.
    std::string url_through(const std::string& server_url) const;

private:
    void stop();

    TempDir dir_;
    int port_ = 0;
};

// A loopback TCP port nothing listens on right now, below the ephemeral range
// (free_port_below_ephemeral_range); the caller binds it soon and retries on the rare race with
// another process.
int free_loopback_port();

}  // namespace mt::test
