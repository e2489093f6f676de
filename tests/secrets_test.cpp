// No secret in any output (issue 10 item 7): a password written in any form libpq accepts (or
// nearly accepts: libpq's own messages quote pieces of a malformed string) never reaches stdout,
// stderr, --json, the log-debug sink, /health/db, /metrics, doctor or a kernel exception; where the
// connection string is shown, the password reads "***". PGPASSWORD and .pgpass are never echoed.
#include "support/daemon.hpp"
#include "support/http.hpp"
#include "support/wait.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/base/redact.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace mt::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Every password below holds both markers: no output may hold either.
const std::vector<std::string> markers = {"Zq7", "SECRET"};

// The first marker found in text, or "" when there is none.
std::string leaked(const std::string& text) {
    for (const auto& m : markers)
        if (text.find(m) != std::string::npos) return m;
    return "";
}

// mtctl serve, whose port comes from the JSON document it prints once listening.
class ServeDaemon : public Daemon {
public:
    using Daemon::Daemon;

    // The port of `mtctl --json serve --listen 127.0.0.1:0`, from the document it prints once
    // listening.
    int serve_port() {
        json doc;
        const bool printed = poll_until([&] {
            doc = json::parse(out(), nullptr, false);
            return (doc.is_object() && doc.contains("listening")) || !running();
        });
        if (!doc.is_object() || !doc.contains("listening")) {
            if (printed) FAIL("mtctl serve exited before listening; stdout: " << out() << "\nstderr: " << err());
            FAIL("mtctl serve printed no listening address in " << kDefaultDeadline.count() << " ms; stderr: " << err());
        }
        const std::string addr = doc["listening"];
        return std::stoi(addr.substr(addr.rfind(':') + 1));
    }

};

// One way of handing mtctl a password.
struct Form {
    std::string name;
    std::string url;                                         // [database] url (MT_DATABASE__URL)
    std::vector<std::pair<std::string, std::string>> env;    // PGPASSWORD, PGPASSFILE
    std::string shown;                                       // the url as every output shows it
    std::optional<std::string> error;                        // libpq's reason (redacted) when it cannot connect
};

// Sets environment variables for the life of the object (for the in-process kernel).
class ScopedEnv {
public:
    explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
        for (const auto& [k, v] : vars) {
            const char* old = std::getenv(k.c_str());
            saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
            ::setenv(k.c_str(), v.c_str(), 1);
        }
    }
    ~ScopedEnv() {
        for (const auto& [k, v] : saved_) {
            if (v) ::setenv(k.c_str(), v->c_str(), 1);
            else ::unsetenv(k.c_str());
        }
    }

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("redact_conninfo hides the password in every URL and keyword form", "[secrets]") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"postgresql://u:Zq7SECRETpw@h:5432/db", "postgresql://u:***@h:5432/db"},
        {"postgres://u:Zq7%20SECRET%27pw@h/db", "postgres://u:***@h/db"},
        {"postgresql://u:Ab%9zZq7SECRET@h/db", "postgresql://u:***@h/db"},
        {"postgresql://u@h/db?sslmode=disable&password=Zq7SECRET&application_name=x",
         "postgresql://u@h/db?sslmode=disable&password=***&application_name=x"},
        {"postgresql://u@h/db?pass%77ord=Zq7SECRET", "postgresql://u@h/db?pass%77ord=***"},
        {"postgresql://u:pa/Zq7SECRET@h/db", "postgresql://u:***@h/db"},
        {"postgresql://u:p@Zq7SECRET@h/db?application_name=a@b", "postgresql://u:***@h/db?application_name=a@b"},
        {"postgresql://u:Zq7?SECRET@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"},
        {"host=h password=Zq7SECRETpw user=u", "host=h password=*** user=u"},
        {"host=h password = 'Zq7 SECRET pw' user=u", "host=h password = *** user=u"},
        {"host=h password='Zq7\\'SECRET pw' user=u", "host=h password=*** user=u"},
        {"host=h password=Zq7\\ SECRET user=u", "host=h password=*** user=u"},
        {"host=h password=Zq7 SECRET user=u", "host=h password=*** user=u"},
        {"host=h password='Zq7 SECRET", "host=h password=***"},
        {"host=h PASSWORD=\"Zq7 SECRET\" user=u", "host=h PASSWORD=*** user=u"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"host=h user=u passfile=/etc/mt/pgpass", "host=h user=u passfile=/etc/mt/pgpass"},
    };
    for (const auto& [conninfo, expected] : cases) {
        INFO(conninfo);
        CHECK(mt::redact_conninfo(conninfo) == expected);
        CHECK(mt::redact_url(conninfo) == expected);
    }
}

TEST_CASE("libpq's messages about a malformed connection string lose every piece of the password", "[secrets]") {
    struct Case {
        std::string conninfo;
        std::string raw_piece;  // what libpq quotes from the password
        std::string redacted;   // the whole message afterwards
    };
    // Each string fails in libpq's parser (or at its port), before any network traffic.
    const std::vector<Case> cases = {
        {"postgresql://u:Zq7%9zSECRET@127.0.0.1:1/db", "Zq7%9zSECRET", "invalid percent-encoded token: \"***\""},
        {"postgresql://u@127.0.0.1:1/db?password=Zq7%zzSECRET", "Zq7%zzSECRET", "invalid percent-encoded token: \"***\""},
        {"postgresql://u:Zq7%00SECRET@127.0.0.1:1/db", "Zq7%00SECRET",
         "forbidden value %00 in percent-encoded value: \"***\""},
        {"postgresql://u:Zq7/SECRET@127.0.0.1:1/db", "\"Zq7\"", "invalid integer value \"***\" for connection option \"port\""},
        {"postgresql://u@127.0.0.1:1/db?passwordZq7SECRET", "passwordZq7SECRET",
         "missing key/value separator \"=\" in URI query parameter: \"password***\""},
        {"postgres://u:Zq7SECRET@127.0.0.1:1,[::1/db", "postgres://u:Zq7SECRET@",
         "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
         "\"postgres://u:***@127.0.0.1:1,[::1/db\""},
        {"host=127.0.0.1 port=1 password=Zq7 SECRETword user=u", "SECRETword",
         "missing \"=\" after \"***\" in connection info string"},
        {"host=127.0.0.1 port=1 password=\"Zq7 SECRETword\" user=u", "SECRETword",
         "missing \"=\" after \"***\"\" in connection info string"},
    };
    for (const auto& c : cases) {
        INFO(c.conninfo);
        std::string message;
        try {
            pqxx::connection conn(c.conninfo);
            FAIL("libpq accepted " << c.conninfo);
        } catch (const pqxx::broken_connection& e) {
            message = e.what();
        }
        while (!message.empty() && message.back() == '\n') message.pop_back();
        INFO("libpq said: " << message);
        // The leak is real: libpq quotes the piece...
        CHECK(message.find(c.raw_piece) != std::string::npos);
        // ...and redaction removes it, leaving the rest of the message as it was.
        const std::string redacted = mt::redact_message(message, c.conninfo);
        CHECK(redacted == c.redacted);
        CHECK(leaked(redacted).empty());
    }
}

TEST_CASE("redact_text removes remembered passwords and PGPASSWORD from any text, not a name equal to one",
          "[secrets]") {
    mt::remember_secrets("host=h user=app password='Zq7 remembered SECRET'");
    CHECK(mt::redact_text("a driver said: Zq7 remembered SECRET, then \"remembered\"") ==
          "a driver said: ***, then \"***\"");
    {
        ScopedEnv env(std::vector<std::pair<std::string, std::string>>{{"PGPASSWORD", "Zq7SECRETfromEnv"}});
        CHECK(mt::redact_text("PGPASSWORD=Zq7SECRETfromEnv; echoed: Zq7SECRETfromEnv") == "PGPASSWORD=***; echoed: ***");
    }
    // A development setup's password equal to the user and database name: hidden in the string,
    // while the names stay readable in the message.
    const std::string dev = "postgresql://postgres:postgres@127.0.0.1:1/postgres";
    mt::remember_secrets(dev);
    CHECK(mt::redact_text("cannot connect to " + dev + ": role \"postgres\" does not exist") ==
          "cannot connect to postgresql://postgres:***@127.0.0.1:1/postgres: role \"postgres\" does not exist");
}

// Every path of mtctl, serve and the kernel, for each connection-string form that connects
// (connecting = true) or each that fails (false): a server of its own with password authentication.
// Two test cases, because each form spawns about ten mtctl processes and the whole set took close to
// the 300 s test limit under TSan on a loaded machine.
static void check_no_password_reaches_output(bool connecting) {
    PrivateServer server;
    const std::string port = std::to_string([&] {
        const auto& u = server.admin_url();
        const auto colon = u.rfind(':');
        return std::stoi(u.substr(colon + 1, u.find('/', colon) - colon - 1));
    }());
    // The right password holds a space and a quote, so each form needs its own escaping.
    const std::string password = "Zq7 SECRET'pw";
    {
        pqxx::connection admin(server.admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec0("CREATE DATABASE app");
        // DDL takes no parameters: the literal is escaped by libpq.
        tx.exec0("CREATE ROLE secret_user LOGIN SUPERUSER PASSWORD " + tx.quote(password));
        // Only secret_user must authenticate (scram-sha-256); postgres keeps trust for the setup.
        const std::string hba = tx.exec1("SHOW hba_file")[0].c_str();
        write_file(hba, "host all secret_user 127.0.0.1/32 scram-sha-256\n" + read_file(hba));
        tx.exec1("SELECT pg_reload_conf()");
    }
    const std::string no_password = "postgresql://secret_user@127.0.0.1:" + port + "/app";
    // The reload is asynchronous: wait until the server asks secret_user for a password.
    wait_until(
        [&] {
            try {
                pqxx::connection probe(no_password);
            } catch (const pqxx::broken_connection& e) {
                return std::string(e.what()).find("no password supplied") != std::string::npos;
            }
            return false;
        },
        "the pg_hba.conf reload to make the server ask secret_user for a password");

    Project p(server.url_for("app"));
    p.set("plugins.load", "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential, "
                          "log-debug, metrics-prometheus");
    p.set("roles.sinks", "log-debug, metrics-prometheus");
    p.set("plugin.log-debug.level", "trace");
    p.set("plugin.retry-exponential.max_attempts", "2");
    p.set("plugin.retry-exponential.initial_delay", "10ms");
    p.set("database.connect_timeout", "2s");
    p.set("database.max_pools", "2");
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY);");
    p.tenants({"a", "b"});
    REQUIRE(p.mtctl("migrate --all").exit_code == 0);

    TempDir passdir;
    const auto passfile = passdir / "pgpass";
    write_file(passfile, "127.0.0.1:" + port + ":app:secret_user:" + password + "\n");
    std::filesystem::permissions(passfile, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

    const std::string keywords = "host=127.0.0.1 port=" + port + " dbname=app user=secret_user";
    const std::string auth_failed = "password authentication failed for user \"secret_user\"";
    const std::vector<Form> forms = {
        {"URL, percent-encoded", "postgresql://secret_user:Zq7%20SECRET%27pw@127.0.0.1:" + port + "/app", {},
         "postgresql://secret_user:***@127.0.0.1:" + port + "/app", std::nullopt},
        {"URL, ?password=", no_password + "?password=Zq7%20SECRET%27pw", {}, no_password + "?password=***", std::nullopt},
        {"keyword, single-quoted with a space and an escaped quote", keywords + " password='Zq7 SECRET\\'pw'", {},
         keywords + " password=***", std::nullopt},
        {"keyword, unquoted with backslash escapes", keywords + " password=Zq7\\ SECRET\\'pw", {},
         keywords + " password=***", std::nullopt},
        {"PGPASSWORD", no_password, {{"PGPASSWORD", password}}, no_password, std::nullopt},
        {".pgpass (PGPASSFILE)", no_password, {{"PGPASSFILE", passfile.string()}}, no_password, std::nullopt},
        {"URL, plain, wrong password", "postgresql://secret_user:Zq7SECRETwrong@127.0.0.1:" + port + "/app", {},
         "postgresql://secret_user:***@127.0.0.1:" + port + "/app", auth_failed},
        {"URL, invalid percent escape", "postgresql://secret_user:Zq7%9zSECRETpw@127.0.0.1:" + port + "/app", {},
         "postgresql://secret_user:***@127.0.0.1:" + port + "/app", "invalid percent-encoded token: \"***\""},
        {"URL, ?password= with an invalid percent escape", no_password + "?password=Zq7%zzSECRET", {},
         no_password + "?password=***", "invalid percent-encoded token: \"***\""},
        {"keyword, unquoted with a space", keywords + " password=Zq7 SECRETword connect_timeout=2", {},
         keywords + " password=*** connect_timeout=2", "missing \"=\" after \"***\" in connection info string"},
        {"keyword, double-quoted with a space", keywords + " password=\"Zq7 SECRETword\"", {},
         keywords + " password=***", "missing \"=\" after \"***\"\" in connection info string"},
        {"keyword, unterminated single quote", keywords + " password='Zq7 SECRETword", {}, keywords + " password=***",
         "unterminated quoted string in connection info string"},
        {"keyword, single-quoted wrong password with an escaped quote", keywords + " password='Zq7\\'SECRET wrong'", {},
         keywords + " password=***", auth_failed},
        {"PGPASSWORD, wrong", no_password, {{"PGPASSWORD", "Zq7SECRETwrong"}}, no_password, auth_failed},
    };

    size_t checked = 0;
    for (const auto& form : forms) {
        const bool connects = !form.error.has_value();
        if (connects != connecting) continue;
        ++checked;
        INFO("form: " << form.name << " (" << form.url << ")");
        std::string env = "MT_DATABASE__URL=" + shell_quote(form.url);
        for (const auto& [k, v] : form.env) env += " " + k + "=" + shell_quote(v);
        auto mtctl = [&](const std::string& args) {
            return run("cd " + shell_quote(p.dir().string()) + " && env " + env + " " + shell_quote(MT_MTCTL) +
                       " --no-color " + args);
        };
        auto no_leak = [](const std::string& what, const std::string& text) {
            INFO(what << ":\n" << text);
            CHECK(leaked(text).empty());
        };
        // What a failed connection says, after "cannot connect to ": the url as shown, then libpq's reason.
        const std::string refusal = "cannot connect to " + form.shown + ": ";

        struct Path {
            std::string args;
            int ok_exit;
            int failed_exit;
        };
        // SPEC §7: 3 when the database cannot be reached; doctor and health report it and exit 1.
        const std::vector<Path> paths = {
            {"status --all", 0, 3},        {"--json status --all", 0, 3}, {"migrate --all", 0, 3},
            {"--json migrate --all", 0, 3}, {"doctor", 0, 1},              {"--json doctor", 0, 1},
            {"health", 0, 1},              {"--json health --all", 0, 1}, {"-v status --all", 0, 3},
        };
        for (const auto& path : paths) {
            const auto r = mtctl(path.args);
            INFO("mtctl " << path.args << "\nstdout: " << r.out << "\nstderr: " << r.err);
            CHECK(r.exit_code == (connects ? path.ok_exit : path.failed_exit));
            no_leak("stdout of mtctl " + path.args, r.out);
            no_leak("stderr of mtctl " + path.args, r.err);
            const bool doctor = path.args.find("doctor") != std::string::npos;
            const bool health = path.args.find("health") != std::string::npos;
            if (doctor) {
                // doctor shows the connection string on success and in the failure's message.
                CHECK(r.out.find(connects ? form.shown : refusal) != std::string::npos);
            } else if (!connects && health) {
                const auto h = json::parse(r.out, nullptr, false);
                const std::string error =
                    h.is_object() ? h["shared"].value("error", "") : r.out;  // the human report is not JSON
                CHECK(error.find(refusal) != std::string::npos);
                CHECK(error.find(*form.error) != std::string::npos);
            } else if (!connects) {
                CHECK(r.err.find("mtctl: " + refusal) != std::string::npos);
                CHECK(r.err.find(*form.error) != std::string::npos);
            }
            // The log-debug sink saw the retry and its error text (redacted by then).
            if (path.args == "-v status --all" && !connects)
                CHECK(r.err.find("CONNECTION_RETRY attempt=2/2") != std::string::npos);
        }

        {
            ServeDaemon serve("env " + env + " " + shell_quote(MT_MTCTL) + " --no-color --json serve --listen 127.0.0.1:0 --refresh 0s",
                         p.dir());
            const int http_port = serve.serve_port();
            const auto health = http_get(http_port, "/health/db");
            CHECK(health.status == (connects ? 200 : 503));
            no_leak("/health/db", health.body);
            if (!connects) {
                const auto h = health.json();
                REQUIRE(h.is_object());
                const std::string error = h["shared"].value("error", "");
                CHECK(error.find(refusal) != std::string::npos);
                CHECK(error.find(*form.error) != std::string::npos);
            }
            const auto metrics = http_get(http_port, "/metrics");
            CHECK(metrics.status == 200);
            CHECK(metrics.body.find("mt_health_status " + std::string(connects ? "1" : "0")) != std::string::npos);
            no_leak("/metrics", metrics.body);
            CHECK(serve.stop(SIGTERM) == 0);
            no_leak("stdout of serve", serve.out());
            no_leak("stderr of serve", serve.err());
        }

        {
            ScopedEnv scoped(form.env);
            mt::ManifestInput in = p.manifest_input();
            in.overrides.push_back("database.url=" + form.url);
            mt::Kernel kernel(in);
            if (connects) {
                CHECK(kernel.connect()->is_open());
            } else {
                try {
                    kernel.connect();
                    FAIL("Kernel::connect succeeded");
                } catch (const mt::DatabaseUnavailable& e) {
                    const std::string what = e.what();
                    INFO("DatabaseUnavailable: " << what);
                    CHECK(e.exit_code() == mt::ExitCode::unreachable);
                    CHECK(what.rfind(refusal, 0) == 0);
                    CHECK(what.find(*form.error) != std::string::npos);
                    no_leak("Kernel::connect's exception", what);
                }
            }
        }
    }
    CHECK(checked == (connecting ? 6u : 8u));
}

TEST_CASE("no password reaches any output of mtctl, serve or the kernel, in any form that connects, with password authentication",
          "[secrets][serve][doctor][health][pg]") {
    check_no_password_reaches_output(true);
}

TEST_CASE("no password reaches any output of mtctl, serve or the kernel, in any form that fails, with password authentication",
          "[secrets][serve][doctor][health][pg]") {
    check_no_password_reaches_output(false);
}
