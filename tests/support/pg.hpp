// Test support: a real PostgreSQL (started by tools/pg.sh), throwaway databases, temp folders,
// and running mtctl as a user would.
#pragma once

#include <filesystem>
#include <pqxx/pqxx>
#include <string>
#include <sys/types.h>
#include <vector>

namespace mt::test {

// MT_TEST_DATABASE_URL (set by tools/test.sh); fails the test when absent.
std::string admin_url();
// The admin URL with its database name replaced.
std::string url_for_database(const std::string& dbname);

// A fresh database for one test, dropped afterwards.
class TempDatabase {
public:
    TempDatabase();
    ~TempDatabase();
    TempDatabase(const TempDatabase&) = delete;
    TempDatabase& operator=(const TempDatabase&) = delete;
    const std::string& url() const { return url_; }
    const std::string& name() const { return name_; }
    pqxx::connection connect() const { return pqxx::connection(url_); }
    // Runs statements (no parameters) in one transaction.
    void exec(const std::string& sql) const;
    // First column of the first row, as text ("" for NULL or no row).
    std::string scalar(const std::string& sql) const;

private:
    std::string name_;
    std::string url_;
};

class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& p) const { return path_ / p; }

private:
    std::filesystem::path path_;
};

void write_file(const std::filesystem::path& p, const std::string& content);
std::string read_file(const std::filesystem::path& p);

// MT_CONFIG and MT_SECTION__KEY (MT_*__*) name a manifest or override its keys: a test's children
// never inherit them from whoever runs the suite, so a developer with MT_DATABASE__URL set never
// runs tests against that database. A test that wants one sets it in the command line itself.
bool is_manifest_variable(const std::string& name);
// This process's environment without the manifest's variables, as NAME=VALUE entries.
std::vector<std::string> child_environment();
// Unsets the manifest's variables in this process (main.cpp, before any test runs).
void scrub_manifest_environment();
// Forks `/bin/sh -c command_line` in cwd (when given) with child_environment(); returns the pid.
pid_t spawn_shell(const std::string& command_line, const std::filesystem::path& cwd = {});

// The low end of the kernel's ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range),
// where outgoing connections take their local ports from.
int ephemeral_port_low();
// A loopback TCP port below the ephemeral range that nothing listens on right now, so that a
// server a test starts there never races an outgoing connection for it.
int free_port_below_ephemeral_range();

struct RunResult {
    int exit_code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};
// The exit code and both streams, for a failure message.
inline std::string both(const RunResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}
// Runs a shell command line; stdout and stderr captured separately.
RunResult run(const std::string& command_line);
// Runs build/bin/mtctl with args (already shell-quoted where needed), in `cwd`.
RunResult mtctl(const std::string& args, const std::filesystem::path& cwd = std::filesystem::current_path());
std::string shell_quote(const std::string& s);

std::filesystem::path source_dir();
std::filesystem::path binary_dir();
std::filesystem::path plugin_dir();
std::filesystem::path fixture_dir();

}  // namespace mt::test

namespace mt::test {

// A PostgreSQL of a test's own (tools/pg.sh with its own BUILD_DIR), for tests that stop or
// restart the server and must not disturb the shared one.
class PrivateServer {
public:
    PrivateServer();
    ~PrivateServer();
    PrivateServer(const PrivateServer&) = delete;
    PrivateServer& operator=(const PrivateServer&) = delete;
    const std::string& admin_url() const { return admin_url_; }
    std::string url_for(const std::string& dbname) const;
    int port() const { return port_; }
    void stop();
    // Stops it in immediate mode, as a crash would: backends die without a shutdown checkpoint
    // and the next start() runs crash recovery.
    void crash();
    void start();  // on the same port as before
    // Creates a LOGIN SUPERUSER role that must authenticate with scram-sha-256 over TCP (postgres
    // keeps trust for the setup) and waits until the server asks that role for a password.
    void add_password_role(const std::string& role, const std::string& password);

private:
    TempDir dir_;
    int port_ = 0;
    std::string admin_url_;
};

}  // namespace mt::test
