#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

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

RunResult run(const std::string& command_line) {
    TempDir tmp;
    auto out_file = tmp / "out";
    auto err_file = tmp / "err";
    std::string cmd = "(" + command_line + ") >" + shell_quote(out_file.string()) + " 2>" +
                      shell_quote(err_file.string()) + " </dev/null";
    int status = std::system(cmd.c_str());
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
    std::random_device rd;
    const int base = 56000 + static_cast<int>(rd() % 4000);
    const auto r = run(pg_script(dir_, base, "start"));
    if (r.exit_code != 0) FAIL("could not start a private PostgreSQL: " << r.err);
    const auto at = r.out.find("127.0.0.1:");
    REQUIRE(at != std::string::npos);
    port_ = std::stoi(r.out.substr(at + 10));
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
