#include "support/replica.hpp"

#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

namespace mt::test {

namespace {

template <class... Args>
std::string scalar_on(const std::string& url, const std::string& sql, Args&&... args) {
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    const pqxx::result r = tx.exec_params(sql, std::forward<Args>(args)...);
    return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
}

std::string pg_bin() {
    const char* env = std::getenv("PG_BIN");
    return env && *env ? env : "/usr/lib/postgresql/15/bin";
}

}  // namespace

Replica::Replica(const PrivateServer& primary) : primary_(primary) {
    const auto data = dir_ / "pg/data";
    std::filesystem::create_directories(dir_ / "pg");
    // As the caller (root in CI: pg_basebackup does not refuse it); tools/pg.sh hands the copy to
    // the postgres user before it starts it.
    const auto backup = run(shell_quote(pg_bin() + "/pg_basebackup") + " -h 127.0.0.1 -p " + std::to_string(primary.port()) +
                            " -U postgres -D " + shell_quote(data.string()) +
                            " -R -X stream -c fast -C -S throttle_test_replica --no-sync --no-manifest");
    INFO(backup.err);
    REQUIRE(backup.exit_code == 0);
    // Feedback every second instead of ten: the primary's pg_stat_replication shows a replay
    // that resumed within a second even when nothing new is written.
    const std::string start = "BUILD_DIR=" + shell_quote(dir_.path().string()) +
                              " PG_PORT_BASE=" + std::to_string(free_port_below_ephemeral_range()) +
                              " PG_EXTRA_OPTS='-c wal_receiver_status_interval=1s -c hot_standby=on' " +
                              shell_quote((source_dir() / "tools/pg.sh").string()) + " start";
    const auto started = run(start);
    INFO(started.err);
    const auto at = started.out.find("127.0.0.1:");
    REQUIRE(started.exit_code == 0);
    REQUIRE(at != std::string::npos);
    port_ = std::stoi(started.out.substr(at + 10));
    admin_url_ = url_for("postgres");
    wait_until(
        [&] {
            return scalar_on(primary_.admin_url(),
                             "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL") == "1";
        },
        "the replica on port " + std::to_string(port_) + " to stream from the primary");
    REQUIRE(scalar_on(admin_url_, "SELECT pg_is_in_recovery()") == "t");
}

Replica::~Replica() {
    run("BUILD_DIR=" + shell_quote(dir_.path().string()) + " " + shell_quote((source_dir() / "tools/pg.sh").string()) +
        " stop --immediate --purge");
    try {
        pqxx::connection conn(primary_.admin_url());
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT pg_drop_replication_slot('throttle_test_replica')");
    } catch (const std::exception&) {
        // The primary is going away too.
    }
}

std::string Replica::url_for(const std::string& dbname) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

void Replica::pause_replay() const {
    scalar_on(admin_url_, "SELECT pg_wal_replay_pause()");
    wait_until([&] { return scalar_on(admin_url_, "SELECT pg_get_wal_replay_pause_state()") == "paused"; },
               "the replica's replay to pause");
}

void Replica::resume_replay() const { scalar_on(admin_url_, "SELECT pg_wal_replay_resume()"); }

void Replica::wait_caught_up() const {
    const std::string target = scalar_on(primary_.admin_url(), "SELECT pg_current_wal_lsn()");
    wait_until(
        [&] {
            return scalar_on(admin_url_, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target) == "t" &&
                   scalar_on(primary_.admin_url(), "SELECT bool_and(replay_lsn >= $1::pg_lsn) FROM pg_stat_replication",
                             target) == "t";
        },
        "the replica to replay up to " + target);
}

}  // namespace mt::test
