#include "support/pg.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mt::test {

namespace fs = std::filesystem;

std::string admin_url() {
    const char* url = std::getenv("MT_TEST_DATABASE_URL");
    if (!url || !*url)
        FAIL("MT_TEST_DATABASE_URL is not set: run the suite through tools/test.sh, which starts PostgreSQL");
    return url;
}

std::string url_for_database(const std::string& dbname) {
    std::string url = admin_url();
    auto q = url.find('?');
    std::string query = q == std::string::npos ? "" : url.substr(q);
    std::string base = q == std::string::npos ? url : url.substr(0, q);
    auto slash = base.rfind('/');
    auto scheme = base.find("://");
    if (slash == std::string::npos || slash < scheme + 3) base += "/";
    else base = base.substr(0, slash + 1);
    return base + dbname + query;
}

namespace {
std::string unique_suffix() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    return std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
}
}  // namespace

TempDatabase::TempDatabase() : name_("mt_test_" + unique_suffix()) {
    pqxx::connection admin(admin_url());
    pqxx::nontransaction tx(admin);
    tx.exec0("CREATE DATABASE " + tx.quote_name(name_));
    url_ = url_for_database(name_);
}

TempDatabase::~TempDatabase() {
    try {
        pqxx::connection admin(admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec0("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
    } catch (...) {
    }
}

void TempDatabase::exec(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec0(sql);
    tx.commit();
}

std::string TempDatabase::scalar(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) return "";
    return r[0][0].c_str();
}

TempDir::TempDir() {
    auto base = fs::temp_directory_path() / ("mt_test_" + unique_suffix());
    fs::create_directories(base);
    path_ = base;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

void write_file(const fs::path& p, const std::string& content) {
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary);
    f << content;
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

int ephemeral_port_low() {
    std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
    int low = 0, high = 0;
    if (range >> low >> high && low > 1024) return low;
    return 32768;  // Linux's default
}

namespace {
// Nothing can be bound to 127.0.0.1:port right now (no listener, no connection using it).
bool loopback_port_free(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}
}  // namespace

int free_port_below_ephemeral_range() {
    // 10000 ports under the ephemeral range, above the well-known ones; random so that parallel
    // tests rarely probe the same port, and checked because something may listen there anyway.
    const int high = ephemeral_port_low() - 1;
    const int low = std::max(1025, high - 10000);
    std::random_device rd;
    for (int attempt = 0; attempt < 200; ++attempt) {
        const int port = low + static_cast<int>(rd() % static_cast<unsigned>(high - low + 1));
        if (loopback_port_free(port)) return port;
    }
    FAIL("no free loopback port in " << low << "-" << high << " after 200 tries");
    return 0;
}

bool is_manifest_variable(const std::string& name) {
    return name == "MT_CONFIG" || (name.rfind("MT_", 0) == 0 && name.find("__") != std::string::npos);
}

std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string entry(*e);
        if (!is_manifest_variable(entry.substr(0, entry.find('=')))) env.push_back(entry);
    }
    return env;
}

void scrub_manifest_environment() {
    std::vector<std::string> names;
    for (char** e = environ; e && *e; ++e) {
        const std::string entry(*e);
        const std::string name = entry.substr(0, entry.find('='));
        if (is_manifest_variable(name)) names.push_back(name);
    }
    for (const auto& name : names) ::unsetenv(name.c_str());
}

pid_t spawn_shell(const std::string& command_line, const fs::path& cwd) {
    // Everything the child needs is built before fork: other test threads may hold locks.
    const auto env = child_environment();
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const std::string where = cwd.string();
    const char* argv[] = {"sh", "-c", command_line.c_str(), nullptr};
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (!where.empty() && ::chdir(where.c_str()) != 0) ::_exit(127);
        ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
        ::_exit(127);
    }
    return pid;
}

RunResult run(const std::string& command_line) {
    TempDir tmp;
    auto out_file = tmp / "out";
    auto err_file = tmp / "err";
    std::string cmd = "(" + command_line + ") >" + shell_quote(out_file.string()) + " 2>" +
                      shell_quote(err_file.string()) + " </dev/null";
    const pid_t pid = spawn_shell(cmd);
    if (pid < 0) FAIL("fork failed for: " << command_line);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_file);
    r.err = read_file(err_file);
    return r;
}

RunResult mtctl(const std::string& args, const fs::path& cwd) {
    return run("cd " + shell_quote(cwd.string()) + " && " + shell_quote(MT_MTCTL) + " --no-color " + args);
}

fs::path source_dir() { return MT_SOURCE_DIR; }
fs::path binary_dir() { return MT_BINARY_DIR; }
fs::path plugin_dir() { return MT_PLUGIN_DIR; }
fs::path fixture_dir() { return MT_FIXTURE_DIR; }

}  // namespace mt::test

namespace mt::test {

namespace {
std::string pg_script(const TempDir& dir, int port_base, const std::string& args) {
    return "BUILD_DIR=" + shell_quote(dir.path().string()) + " PG_PORT_BASE=" + std::to_string(port_base) + " " +
           shell_quote((source_dir() / "tools/pg.sh").string()) + " " + args;
}
}  // namespace

PrivateServer::PrivateServer() {
    // Below the ephemeral range: the server is stopped and started again on the same port by some
    // tests, and an outgoing connection must not take the port meanwhile.
    const int ephemeral = ephemeral_port_low();
    std::string errors;
    for (int attempt = 0; attempt < 5 && port_ == 0; ++attempt) {
        const int base = free_port_below_ephemeral_range();
        const auto r = run(pg_script(dir_, base, "start"));
        const auto at = r.out.find("127.0.0.1:");
        if (r.exit_code != 0 || at == std::string::npos) {
            errors += "port " + std::to_string(base) + ": " + r.err + "\n";
            run(pg_script(dir_, base, "stop --purge"));
            continue;
        }
        const int port = std::stoi(r.out.substr(at + 10));
        if (port >= ephemeral) {  // pg.sh walked upward into the range: start again elsewhere
            errors += "port " + std::to_string(port) + " is in the ephemeral range\n";
            run(pg_script(dir_, port, "stop --purge"));
            continue;
        }
        port_ = port;
    }
    if (port_ == 0) FAIL("could not start a private PostgreSQL below port " << ephemeral << ":\n" << errors);
    admin_url_ = "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

PrivateServer::~PrivateServer() { run(pg_script(dir_, port_, "stop --purge")); }

std::string PrivateServer::url_for(const std::string& dbname) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

void PrivateServer::stop() {
    const auto r = run(pg_script(dir_, port_, "stop"));
    REQUIRE(r.exit_code == 0);
}

void PrivateServer::crash() {
    const auto r = run(pg_script(dir_, port_, "stop --immediate"));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
}

void PrivateServer::start() {
    const auto r = run(pg_script(dir_, port_, "start"));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.out.find("127.0.0.1:" + std::to_string(port_) + "/") != std::string::npos);
}

}  // namespace mt::test

namespace mt::test {

void PrivateServer::add_password_role(const std::string& role, const std::string& password) {
    {
        pqxx::connection admin(admin_url_);
        pqxx::nontransaction tx(admin);
        // DDL takes no parameters: the name and the literal are escaped by libpq.
        tx.exec0("CREATE ROLE " + tx.quote_name(role) + " LOGIN SUPERUSER PASSWORD " + tx.quote(password));
        const std::string hba = tx.exec1("SHOW hba_file")[0].c_str();
        write_file(hba, "host all " + role + " 127.0.0.1/32 scram-sha-256\n" + read_file(hba));
        tx.exec1("SELECT pg_reload_conf()");
    }
    // The reload is asynchronous: wait until the server asks the role for a password.
    const std::string no_password = "postgresql://" + role + "@127.0.0.1:" + std::to_string(port_) + "/postgres";
    const bool asks = poll_until(
        [&] {
            try {
                pqxx::connection probe(no_password);
            } catch (const pqxx::broken_connection& e) {
                return std::string(e.what()).find("no password supplied") != std::string::npos;
            }
            return false;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(20));
    if (!asks) FAIL("pg_hba.conf reload did not take effect in 10 s");
}

}  // namespace mt::test
