// A real streaming replica of a PrivateServer for the throttle tests: `pg_basebackup -R` from the
// primary into a folder of its own, started there by tools/pg.sh (which finds the copied cluster
// and only starts it), waited for with a deadline until the primary lists it as streaming.
#pragma once

#include "support/pg.hpp"

#include <string>

namespace mt::test {

class Replica {
public:
    // Builds and starts the standby; fails the test when it does not stream within the deadline.
    explicit Replica(const PrivateServer& primary);
    ~Replica();
    Replica(const Replica&) = delete;
    Replica& operator=(const Replica&) = delete;

    const std::string& admin_url() const { return admin_url_; }
    std::string url_for(const std::string& dbname) const;
    int port() const { return port_; }

    // pg_wal_replay_pause() and a wait until the standby says 'paused'.
    void pause_replay() const;
    void resume_replay() const;
    // Waits until the standby has replayed every WAL position the primary has written so far, as
    // the standby itself says (pg_last_wal_replay_lsn()) and as the primary's pg_stat_replication says.
    void wait_caught_up() const;

private:
    const PrivateServer& primary_;
    TempDir dir_;
    int port_ = 0;
    std::string admin_url_;
};

}  // namespace mt::test
