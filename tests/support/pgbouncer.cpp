#include "support/pgbouncer.hpp"

#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace mt::test {

namespace {

// host and port of the test server, from MT_TEST_DATABASE_URL.
std::pair<std::string, int> server_address() {
    const std::string url = admin_url();
    const auto at = url.find('@');
    const auto begin = at == std::string::npos ? url.find("://") + 3 : at + 1;
    const auto slash = url.find('/', begin);
    const std::string hostport = url.substr(begin, slash - begin);
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) return {hostport, 5432};
    return {hostport.substr(0, colon), std::stoi(hostport.substr(colon + 1))};
}

// A daemon we did not fork is reaped by whoever adopted it; until then it is a zombie, which is
// as gone as a process gets for us.
bool alive(pid_t pid) {
    if (::kill(pid, 0) != 0) return false;
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

}  // namespace

int free_loopback_port() { return free_port_below_ephemeral_range(); }

PgBouncer::PgBouncer(PgBouncerOptions options) {
    if (run("command -v pgbouncer").exit_code != 0)
        FAIL("pgbouncer is not installed: run tools/setup.sh (it installs the Debian package)");
    const auto [host, server_port] = server_address();
    const bool root = ::geteuid() == 0;
    std::string log;
    for (int attempt = 0; attempt < 5 && port_ == 0; ++attempt) {
        const int port = free_loopback_port();
        write_file(dir_ / "users.txt", "\"postgres\" \"\"\n");
        write_file(dir_ / "pgbouncer.ini",
                   "[databases]\n"
                   "* = host=" + host + " port=" + std::to_string(server_port) + "\n"
                   "[pgbouncer]\n"
                   "listen_addr = 127.0.0.1\n"
                   "listen_port = " + std::to_string(port) + "\n"
                   "unix_socket_dir =\n"
                   "auth_type = trust\n"
                   "auth_file = " + (dir_ / "users.txt").string() + "\n"
                   "pool_mode = " + options.pool_mode + "\n"
                   "default_pool_size = " + std::to_string(options.default_pool_size) + "\n"
                   "max_client_conn = " + std::to_string(options.max_client_conn) + "\n"
                   "logfile = " + (dir_ / "pgbouncer.log").string() + "\n"
                   "pidfile = " + (dir_ / "pgbouncer.pid").string() + "\n"
                   "ignore_startup_parameters = extra_float_digits,options\n");
        if (root) run("chown -R postgres " + shell_quote(dir_.path().string()));
        const auto started = run("cd / && " + std::string(root ? "runuser -u postgres -- " : "") + "pgbouncer -d " +
                                 shell_quote((dir_ / "pgbouncer.ini").string()));
        if (started.exit_code != 0) {
            log = started.err + read_file(dir_ / "pgbouncer.log");
            stop();
            continue;
        }
        poll_until(
            [&] {
                try {
                    pqxx::connection probe("postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/postgres");
                } catch (const std::exception&) {
                    return false;
                }
                // Answered by our PgBouncer, not by whatever took the port meanwhile.
                const auto pid = read_file(dir_ / "pgbouncer.pid");
                if (!pid.empty() && alive(std::stoi(pid))) port_ = port;
                return true;
            },
            std::chrono::seconds(10), std::chrono::milliseconds(100));
        if (port_ == 0) {
            log = read_file(dir_ / "pgbouncer.log");
            stop();
        }
    }
    if (port_ == 0) FAIL("pgbouncer did not start (5 attempts); its log:\n" << log);
}

PgBouncer::~PgBouncer() { stop(); }

std::string PgBouncer::url_for(const std::string& dbname) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

std::string PgBouncer::url_through(const std::string& server_url) const {
    std::string dbname = server_url.substr(server_url.rfind('/') + 1);
    return url_for(dbname.substr(0, dbname.find('?')));
}

void PgBouncer::stop() {
    const auto text = read_file(dir_ / "pgbouncer.pid");
    std::filesystem::remove(dir_ / "pgbouncer.pid");
    if (text.empty()) return;
    const pid_t pid = std::stoi(text);
    ::kill(pid, SIGTERM);
    if (!poll_until([&] { return !alive(pid); }, std::chrono::seconds(10))) ::kill(pid, SIGKILL);
}

}  // namespace mt::test
