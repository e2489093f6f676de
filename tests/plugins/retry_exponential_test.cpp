// retry-exponential (SPEC §4, §5.1): the built plugin loaded through the real loader; its delay
// schedule, cap and jitter bounds, max_attempts, which failures it retries, the configs it refuses
// (in-process and through mtctl), and end to end the retries the kernel makes with it against a
// port where nothing listens and against real server errors.
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/context/metrics.hpp>
#include <mt/plugin_host/plugins.hpp>

#include "support/pgbouncer.hpp"  // free_loopback_port

#include <catch2/catch.hpp>


#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using Catch::Matchers::Contains;
using Config = std::map<std::string, std::string>;

namespace {

struct Loaded {
    mt::PluginRegistry registry{{mt::test::plugin_dir()}};
    Loaded() { registry.load("retry-exponential"); }
    mt::RetryPolicy policy(const Config& config = {}) const {
        return mt::RetryPolicy(registry.create("retry-exponential", MT_KIND_RETRY_POLICY, config));
    }
};

mt::sdk::Failure connection_failure(int attempt = 1) {
    return mt::sdk::Failure{"", "connection to server at \"127.0.0.1\", port 1 failed: Connection refused", true, attempt};
}

mt::sdk::Failure server_error(const std::string& sqlstate, int attempt = 1) {
    return mt::sdk::Failure{sqlstate, "ERROR: SQLSTATE " + sqlstate, false, attempt};
}

// The delay before each retry (attempt 1 failed, attempt 2 failed, …) until the policy gives up.
std::vector<long long> schedule(const mt::RetryPolicy& policy, int limit = 100) {
    std::vector<long long> out;
    for (int attempt = 1; attempt <= limit; ++attempt) {
        const auto delay = policy.decide(connection_failure(attempt));
        if (!delay) break;
        out.push_back(delay->count());
    }
    return out;
}

mt::PluginError refusal(const Loaded& loaded, const Config& config) {
    try {
        loaded.policy(config);
    } catch (const mt::PluginError& e) {
        return e;
    }
    FAIL("expected the config to be refused");
    throw std::logic_error("unreachable");
}

// A manifest that loads retry-exponential (with `retry` as its section body) and the given sinks.
std::string manifest(const std::string& url, const std::string& retry, const std::string& extra_load = "",
                     const std::string& sinks = "", const std::string& extra = "") {
    return "[database]\n"
           "url = " + url + "\n"
           "[plugins]\n"
           "path = " + mt::test::plugin_dir().string() + "\n"
           "load = retry-exponential" + (extra_load.empty() ? "" : ", " + extra_load) + "\n"
           "[roles]\n"
           "retry = retry-exponential\n" +
           (sinks.empty() ? "" : "sinks = " + sinks + "\n") +
           "[plugin.retry-exponential]\n" + retry + extra;
}

mt::ManifestInput input_of(const std::filesystem::path& file) {
    mt::ManifestInput input;
    input.file = file;
    input.use_environment = false;
    return input;
}

// The value of an unlabelled sample in a Prometheus exposition.
std::optional<double> sample(const std::string& text, const std::string& name) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return std::nullopt;
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

const std::vector<std::string> retryable_states = {"08000", "08001", "08003", "08004", "08006", "08P01", "57P01",
                                                   "57P02", "57P03", "53300", "40001", "40P01", "55P03"};

}  // namespace

TEST_CASE("retry-exponential waits initial_delay times multiplier^(attempt-1) without jitter", "[retry]") {
    Loaded loaded;
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "8"}, {"max_delay", "1h"}})) ==
          std::vector<long long>{100, 200, 400, 800, 1600, 3200, 6400});
    CHECK(schedule(loaded.policy({{"jitter", "false"},
                                  {"max_attempts", "6"},
                                  {"initial_delay", "20ms"},
                                  {"multiplier", "3"},
                                  {"max_delay", "1m"}})) == std::vector<long long>{20, 60, 180, 540, 1620});
    // Non-integer products are rounded to the nearest millisecond: 100 × 1.7² is 289, not the 288 a
    // truncated 288.99999999999994 would give.
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "6"}, {"multiplier", "1.7"}})) ==
          std::vector<long long>{100, 170, 289, 491, 835});
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "5"}, {"multiplier", "1.5"}})) ==
          std::vector<long long>{100, 150, 225, 338});
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "4"}, {"multiplier", "1"},
                                  {"initial_delay", "250"}})) == std::vector<long long>{250, 250, 250});
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "3"}, {"initial_delay", "0ms"}})) ==
          std::vector<long long>{0, 0});
    // Units s and m; and the SPEC §4 defaults (100ms, ×2, 3 attempts).
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "3"}, {"initial_delay", "2s"}, {"max_delay", "1h"}})) ==
          std::vector<long long>{2000, 4000});
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "2"}, {"initial_delay", "1m"}, {"max_delay", "1h"}})) ==
          std::vector<long long>{60000});
    CHECK(schedule(loaded.policy({{"jitter", "false"}})) == std::vector<long long>{100, 200});
    // A server error is scheduled the same way as a connection failure.
    const auto policy = loaded.policy({{"jitter", "false"}, {"max_attempts", "4"}});
    CHECK(policy.decide(server_error("40001", 1)) == std::chrono::milliseconds(100));
    CHECK(policy.decide(server_error("40P01", 3)) == std::chrono::milliseconds(400));
}

TEST_CASE("retry-exponential never waits longer than max_delay", "[retry]") {
    Loaded loaded;
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "9"}, {"max_delay", "1s"}})) ==
          std::vector<long long>{100, 200, 400, 800, 1000, 1000, 1000, 1000});
    // The default max_delay is 5s.
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "9"}, {"initial_delay", "1s"}})) ==
          std::vector<long long>{1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000});
    CHECK(schedule(loaded.policy({{"jitter", "false"}, {"max_attempts", "4"}, {"initial_delay", "300ms"},
                                  {"max_delay", "300ms"}})) == std::vector<long long>{300, 300, 300});
    // Far past the point where multiplier^(attempt-1) overflows a double, the delay is still the cap.
    const auto policy = loaded.policy(
        {{"jitter", "false"}, {"max_attempts", "1000"}, {"multiplier", "10"}, {"max_delay", "2s"}});
    CHECK(policy.decide(connection_failure(999)) == std::chrono::milliseconds(2000));
    const auto jittered = loaded.policy({{"max_attempts", "1000"}, {"multiplier", "10"}, {"max_delay", "2s"}});
    for (int i = 0; i < 200; ++i) {
        const auto d = jittered.decide(connection_failure(999));
        REQUIRE(d);
        CHECK(d->count() >= 1000);
        CHECK(d->count() <= 2000);
    }
}

TEST_CASE("with jitter every delay is drawn from [delay/2, delay] and varies", "[retry]") {
    Loaded loaded;
    // jitter defaults to true.
    const auto policy = loaded.policy({{"max_attempts", "8"}, {"initial_delay", "1s"}, {"max_delay", "20s"}});
    for (int attempt = 1; attempt < 8; ++attempt) {
        const long long full = std::min(1000LL << (attempt - 1), 20000LL);
        std::set<long long> seen;
        long long lowest = full, highest = 0;
        for (int i = 0; i < 2000; ++i) {
            const auto d = policy.decide(connection_failure(attempt));
            REQUIRE(d);
            const long long ms = d->count();
            seen.insert(ms);
            lowest = std::min(lowest, ms);
            highest = std::max(highest, ms);
        }
        INFO("attempt " << attempt << ": " << lowest << ".." << highest << " over " << seen.size() << " values");
        CHECK(lowest >= full / 2);
        CHECK(highest <= full);
        // 2000 uniform draws cover the range: both ends are approached and hundreds of values occur.
        CHECK(lowest < full / 2 + full / 20);
        CHECK(highest > full - full / 20);
        CHECK(seen.size() > 300);
    }
    // An odd delay: 5ms halves to 2.5ms, so nothing below 3ms.
    const auto odd = loaded.policy({{"initial_delay", "5ms"}, {"multiplier", "1"}, {"max_attempts", "2"}});
    std::set<long long> seen;
    for (int i = 0; i < 500; ++i) seen.insert(odd.decide(connection_failure(1)).value().count());
    CHECK(seen == std::set<long long>{3, 4, 5});
    // 1ms has nothing to draw from.
    const auto one = loaded.policy({{"initial_delay", "1ms"}, {"multiplier", "1"}, {"max_attempts", "2"}});
    for (int i = 0; i < 50; ++i) CHECK(one.decide(connection_failure(1)) == std::chrono::milliseconds(1));

    // Two policies (two workers hitting the same restart) do not retry in step.
    const auto a = loaded.policy(), b = loaded.policy();
    std::vector<long long> da, db;
    for (int i = 0; i < 20; ++i) {
        da.push_back(a.decide(connection_failure(2)).value().count());
        db.push_back(b.decide(connection_failure(2)).value().count());
    }
    CHECK(da != db);

    // One policy serves every pool thread at once: draws stay in bounds under contention.
    const auto shared = loaded.policy({{"max_attempts", "3"}});
    std::atomic<int> out_of_bounds{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                const auto d = shared.decide(connection_failure(2));
                if (!d || d->count() < 100 || d->count() > 200) ++out_of_bounds;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(out_of_bounds == 0);
}

TEST_CASE("max_attempts counts the first try", "[retry]") {
    Loaded loaded;
    const auto once = loaded.policy({{"max_attempts", "1"}});
    CHECK(once.max_attempts() == 1);
    CHECK_FALSE(once.decide(connection_failure(1)));
    CHECK_FALSE(once.decide(server_error("40001", 1)));

    const auto three = loaded.policy({{"max_attempts", "3"}, {"jitter", "false"}});
    CHECK(three.max_attempts() == 3);
    CHECK(three.decide(connection_failure(1)) == std::chrono::milliseconds(100));
    CHECK(three.decide(connection_failure(2)) == std::chrono::milliseconds(200));
    CHECK_FALSE(three.decide(connection_failure(3)));
    CHECK_FALSE(three.decide(connection_failure(4)));
    CHECK(schedule(three).size() == 2);

    CHECK(loaded.policy().max_attempts() == 3);
    CHECK(schedule(loaded.policy()).size() == 2);
    CHECK(schedule(loaded.policy({{"max_attempts", "10"}})).size() == 9);
}

TEST_CASE("retry-exponential retries connection failures and the SPEC transient SQLSTATEs only", "[retry]") {
    Loaded loaded;
    const auto policy = loaded.policy({{"jitter", "false"}, {"max_attempts", "3"}});
    CHECK(policy.decide(connection_failure(1)) == std::chrono::milliseconds(100));
    // A broken connection is retried whatever SQLSTATE came with it.
    CHECK(policy.decide(mt::sdk::Failure{"57P01", "terminating connection", true, 2}) == std::chrono::milliseconds(200));
    for (const auto& state : retryable_states) {
        INFO(state);
        CHECK(policy.decide(server_error(state, 1)) == std::chrono::milliseconds(100));
        CHECK(policy.decide(server_error(state, 2)) == std::chrono::milliseconds(200));
        CHECK_FALSE(policy.decide(server_error(state, 3)));
    }
    // Never: syntax, constraint, permission errors, nor anything the SPEC does not name
    // (57014 a cancelled statement, 57P04 a dropped database, 53200 out of memory, 40002 another
    // class-40 error), nor a failure with no SQLSTATE that is not a connection failure.
    for (const std::string state : {"42601", "42P01", "23505", "23503", "23502", "23514", "42501", "28P01", "22012",
                                    "P0001", "XX000", "57014", "57P04", "53200", "40002", "40003", "55000", "", "0",
                                    "08", "0800", "080000", "40001 "}) {
        INFO("'" << state << "'");
        CHECK_FALSE(policy.decide(server_error(state, 1)));
    }
    CHECK_FALSE(policy.decide(mt::sdk::Failure{"", "std::bad_alloc", false, 1}));
}

TEST_CASE("retry-exponential refuses a bad config at create, naming the key and what it expects", "[retry]") {
    Loaded loaded;
    const std::vector<std::pair<Config, std::string>> cases = {
        {{{"max_attempts", "0"}}, "max_attempts: must be between 1 and 1000 (it counts the first try), got '0'"},
        {{{"max_attempts", "-2"}}, "max_attempts: must be between 1 and 1000 (it counts the first try), got '-2'"},
        {{{"max_attempts", "1001"}}, "max_attempts: must be between 1 and 1000 (it counts the first try), got '1001'"},
        // Would wrap to 1 if cut to an int.
        {{{"max_attempts", "4294967297"}},
         "max_attempts: must be between 1 and 1000 (it counts the first try), got '4294967297'"},
        {{{"max_attempts", "three"}}, "max_attempts: expected an integer, got 'three'"},
        {{{"max_attempts", "2.5"}}, "max_attempts: expected an integer, got '2.5'"},
        {{{"max_attempts", ""}}, "max_attempts: expected an integer, got ''"},
        {{{"initial_delay", "fast"}},
         "initial_delay: expected a duration such as 250ms, 5s, 2m or 1h, got 'fast'"},
        {{{"initial_delay", "-5ms"}},
         "initial_delay: expected a duration such as 250ms, 5s, 2m or 1h, got '-5ms'"},
        {{{"initial_delay", "100us"}}, "initial_delay: unknown duration unit 'us' (use ms, s, m or h), got '100us'"},
        {{{"initial_delay", "1.5s"}}, "initial_delay: unknown duration unit '.5s' (use ms, s, m or h), got '1.5s'"},
        {{{"initial_delay", ""}}, "initial_delay: expected a duration such as 250ms, 5s, 2m or 1h, got ''"},
        {{{"initial_delay", "99999999999999999999ms"}, {"max_delay", "1h"}},
         "initial_delay: must be at most 1h (a retry delay blocks the caller), got '99999999999999999999ms'"},
        {{{"max_delay", "2h"}}, "max_delay: must be at most 1h (a retry delay blocks the caller), got '2h'"},
        {{{"max_delay", "9999999999999h"}},
         "max_delay: must be at most 1h (a retry delay blocks the caller), got '9999999999999h'"},
        {{{"max_delay", "soon"}}, "max_delay: expected a duration such as 250ms, 5s, 2m or 1h, got 'soon'"},
        {{{"initial_delay", "2s"}, {"max_delay", "1s"}},
         "max_delay: 1s is shorter than initial_delay (2s); set max_delay to at least initial_delay"},
        // Only initial_delay was set: the key to change is the one the operator wrote.
        {{{"initial_delay", "10s"}},
         "initial_delay: 10s is longer than max_delay (5s, its default); lower it or set max_delay too"},
        {{{"multiplier", "0.5"}}, "multiplier: must be a finite number of at least 1, got '0.5'"},
        {{{"multiplier", "0"}}, "multiplier: must be a finite number of at least 1, got '0'"},
        {{{"multiplier", "-2"}}, "multiplier: must be a finite number of at least 1, got '-2'"},
        {{{"multiplier", "nan"}}, "multiplier: must be a finite number of at least 1, got 'nan'"},
        {{{"multiplier", "inf"}}, "multiplier: must be a finite number of at least 1, got 'inf'"},
        {{{"multiplier", "two"}}, "multiplier: expected a number, got 'two'"},
        {{{"jitter", "maybe"}}, "jitter: expected true or false, got 'maybe'"},
        {{{"jitter", "2"}}, "jitter: expected true or false, got '2'"},
    };
    for (const auto& [config, message] : cases) {
        INFO(config.begin()->first << " = '" << config.begin()->second << "'");
        const auto e = refusal(loaded, config);
        CHECK(e.stage == "config");
        CHECK_THAT(e.file, Contains("retry-exponential.so"));
        CHECK(e.reason == "retry-exponential: " + message);
    }
    // A misspelt key is refused by the loader with the keys the plugin accepts.
    const auto e = refusal(loaded, {{"max_retries", "3"}});
    CHECK(e.stage == "config");
    CHECK(e.reason ==
          "unknown key 'max_retries' for retry-exponential (accepted: max_attempts, initial_delay, max_delay, "
          "multiplier, jitter)");
    // The boundaries themselves are accepted.
    CHECK(loaded.policy({{"max_attempts", "1000"}, {"multiplier", "1"}, {"initial_delay", "1h"}, {"max_delay", "1h"},
                         {"jitter", "off"}})
              .max_attempts() == 1000);
}

TEST_CASE("mtctl refuses a bad [plugin.retry-exponential] with exit 2 and says which key and why", "[retry]") {
    mt::test::TempDir dir;
    const auto file = dir / "multitenant.ini";
    const std::string url = "postgresql://nobody@127.0.0.1:" + std::to_string(mt::test::free_loopback_port()) + "/none";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"max_attempts = 0\n", "retry-exponential: max_attempts: must be between 1 and 1000 (it counts the first try), got '0'"},
        {"max_attempts = -1\n", "retry-exponential: max_attempts: must be between 1 and 1000 (it counts the first try), got '-1'"},
        {"max_attempts = many\n", "retry-exponential: max_attempts: expected an integer, got 'many'"},
        {"initial_delay = 10 ms\n", "retry-exponential: initial_delay: unknown duration unit ' ms' (use ms, s, m or h), got '10 ms'"},
        {"initial_delay = 1s\nmax_delay = 500ms\n",
         "retry-exponential: max_delay: 500ms is shorter than initial_delay (1s); set max_delay to at least initial_delay"},
        {"multiplier = 0.9\n", "retry-exponential: multiplier: must be a finite number of at least 1, got '0.9'"},
        {"jitter = sometimes\n", "retry-exponential: jitter: expected true or false, got 'sometimes'"},
    };
    for (const auto& [section, message] : cases) {
        INFO(section);
        mt::test::write_file(file, manifest(url, section));
        const auto r = mt::test::mtctl("-c " + mt::test::shell_quote(file.string()) + " status", dir.path());
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Contains("retry-exponential.so: config: " + message));
    }
    // A misspelt key: the manifest names its file and the key, and what the plugin accepts.
    mt::test::write_file(file, manifest(url, "max_attempts = 3\nmax_retry = 4\n"));
    const auto r = mt::test::mtctl("-c " + mt::test::shell_quote(file.string()) + " status", dir.path());
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(file.string()));
    CHECK_THAT(r.err, Contains("plugin.retry-exponential.max_retry: unknown key; plugin 'retry-exponential' accepts "
                               "initial_delay, jitter, max_attempts, max_delay, multiplier"));
}

TEST_CASE("the kernel retries a refused connection max_attempts-1 times and counts them in mt_retries_total",
          "[retry]") {
    mt::test::TempDir dir;
    const int port = mt::test::free_loopback_port();
    const auto file = dir / "multitenant.ini";
    mt::test::write_file(file, manifest("postgresql://nobody@127.0.0.1:" + std::to_string(port) + "/none",
                                        "max_attempts = 3\ninitial_delay = 40ms\nmultiplier = 3\njitter = false\n",
                                        "metrics-prometheus", "metrics-prometheus"));
    mt::Kernel kernel(input_of(file));
    REQUIRE(kernel.retry_policy());
    CHECK(sample(mt::metrics_text(kernel), "mt_retries_total") == 0.0);

    const auto start = std::chrono::steady_clock::now();
    try {
        kernel.connect();
        FAIL("connected to a port where nothing listens");
    } catch (const mt::DatabaseUnavailable& e) {
        CHECK_THAT(std::string(e.what()), Contains("cannot connect to postgresql://nobody@127.0.0.1:" + std::to_string(port)));
        CHECK(e.exit_code() == mt::ExitCode::unreachable);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(sample(mt::metrics_text(kernel), "mt_retries_total") == 2.0);
    // The two waits, 40ms then 120ms, are the least it can take; the upper bound catches a unit
    // mistake (seconds for milliseconds) without depending on the machine's speed.
    CHECK(elapsed >= std::chrono::milliseconds(160));
    CHECK(elapsed < std::chrono::seconds(30));

    // max_attempts = 1: one try, no retry, nothing counted.
    mt::test::write_file(file, manifest("postgresql://nobody@127.0.0.1:" + std::to_string(port) + "/none",
                                        "max_attempts = 1\n", "metrics-prometheus", "metrics-prometheus"));
    mt::Kernel once(input_of(file));
    CHECK_THROWS_AS(once.connect(), mt::DatabaseUnavailable);
    CHECK(sample(mt::metrics_text(once), "mt_retries_total") == 0.0);
}

TEST_CASE("mtctl status against a dead port exits 3 after exactly two logged retries", "[retry]") {
    mt::test::TempDir dir;
    const int port = mt::test::free_loopback_port();
    const auto file = dir / "multitenant.ini";
    const auto log = dir / "retries.log";
    mt::test::write_file(file, manifest("postgresql://nobody@127.0.0.1:" + std::to_string(port) + "/none",
                                        "max_attempts = 3\ninitial_delay = 30ms\nmultiplier = 2\njitter = false\n",
                                        "log-debug", "log-debug", "[plugin.log-debug]\nfile = " + log.string() + "\n"));
    mt::test::write_file(dir / "drizzle/tenant/0001_init.sql", "CREATE TABLE items (id int);\n");
    const auto start = std::chrono::steady_clock::now();
    const auto r = mt::test::mtctl("-c " + mt::test::shell_quote(file.string()) + " status --tenant acme", dir.path());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Contains("cannot connect to postgresql://nobody@127.0.0.1:" + std::to_string(port)));
    const std::string lines = mt::test::read_file(log);
    INFO(lines);
    CHECK(count_of(lines, "CONNECTION_RETRY") == 2);
    CHECK_THAT(lines, Contains("CONNECTION_RETRY attempt=2/3 delay=30ms"));
    CHECK_THAT(lines, Contains("CONNECTION_RETRY attempt=3/3 delay=60ms"));
    CHECK(elapsed >= std::chrono::milliseconds(90));
}

namespace {

// A kernel with retry-exponential (3 attempts, 1ms apart) and metrics-prometheus on a fresh database.
struct ServerErrors {
    mt::test::TempDatabase db;
    mt::test::TempDir dir;
    std::unique_ptr<mt::Kernel> kernel;
    std::unique_ptr<pqxx::connection> conn;
    double counted = 0;

    ServerErrors() {
        db.exec("CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO items VALUES (1)");
        mt::test::write_file(dir / "multitenant.ini",
                             manifest(db.url(), "max_attempts = 3\ninitial_delay = 1ms\njitter = false\n",
                                      "metrics-prometheus", "metrics-prometheus"));
        kernel = std::make_unique<mt::Kernel>(input_of(dir / "multitenant.ini"));
        conn = kernel->connect();
    }

    // Runs `sql` through with_retry and returns how many times it was sent; every run fails.
    int attempts_of(const std::string& sql) {
        int sent = 0;
        try {
            kernel->with_retry("acme", [&] {
                ++sent;
                pqxx::work tx(*conn);
                tx.exec(sql);
                tx.commit();
            });
            FAIL("the statement succeeded: " << sql);
        } catch (const std::exception&) {
        }
        return sent;
    }

    // Retries counted in mt_retries_total since the last call.
    double retries() {
        const double now = sample(mt::metrics_text(*kernel), "mt_retries_total").value_or(-1);
        const double made = now - counted;
        counted = now;
        return made;
    }
};

std::string raise(const std::string& sqlstate) {
    return "DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '" + sqlstate + "'; END $$";
}

}  // namespace

TEST_CASE("real server errors: the transient SQLSTATEs are retried, syntax, unique and permission errors are not",
          "[retry][pg]") {
    ServerErrors s;
    // 40001 and 40P01 have their own test case below.
    for (const auto& state : retryable_states) {
        if (state.rfind("40", 0) == 0) continue;
        INFO(state);
        CHECK(s.attempts_of(raise(state)) == 3);
        CHECK(s.retries() == 2.0);
    }
    CHECK(s.attempts_of("SELEC 1") == 1);  // 42601
    CHECK(s.retries() == 0.0);
    CHECK(s.attempts_of("INSERT INTO items VALUES (1)") == 1);  // 23505
    CHECK(s.retries() == 0.0);
    CHECK(s.attempts_of(raise("42501")) == 1);
    CHECK(s.retries() == 0.0);
    CHECK(s.attempts_of("DO $$ BEGIN RAISE EXCEPTION 'plain'; END $$") == 1);  // P0001
    CHECK(s.retries() == 0.0);

    // An error that is no database error at all.
    int sent = 0;
    CHECK_THROWS_WITH(s.kernel->with_retry("acme", [&] {
        ++sent;
        throw std::runtime_error("not a database error");
    }), "not a database error");
    CHECK(sent == 1);
    CHECK(s.retries() == 0.0);

    // A retried failure that then succeeds returns its value after one retry.
    sent = 0;
    const int value = s.kernel->with_retry("acme", [&] {
        pqxx::work tx(*s.conn);
        const int n = tx.exec_params1("SELECT $1::int + 1", sent++)[0].as<int>();
        if (n == 1) tx.exec(raise("55P03"));
        return n;
    });
    CHECK(value == 2);
    CHECK(s.retries() == 1.0);
}

// libpqxx 6 throws serialization_failure / deadlock_detected without a SQLSTATE (they derive from
// pqxx::failure, not sql_error), so the kernel must still tell the policy which error it was.
TEST_CASE("a serialization failure and a deadlock reported by the server are retried through the kernel",
          "[retry][pg]") {
    ServerErrors s;
    CHECK(s.attempts_of(raise("40001")) == 3);
    CHECK(s.retries() == 2.0);
    CHECK(s.attempts_of(raise("40P01")) == 3);
    CHECK(s.retries() == 2.0);

    // A real one: a REPEATABLE READ transaction updates a row another session changed after its
    // snapshot; the replayed transaction succeeds.
    auto other = s.db.connect();
    int runs = 0;
    const int n = s.kernel->with_retry("acme", [&] {
        ++runs;
        pqxx::transaction<pqxx::repeatable_read> tx(*s.conn);
        tx.exec("SELECT n FROM items WHERE id = 1");  // takes the snapshot
        if (runs == 1) {
            pqxx::work w(other);
            w.exec("UPDATE items SET n = n + 10 WHERE id = 1");
            w.commit();
        }
        const int result = tx.exec("UPDATE items SET n = n + 1 WHERE id = 1 RETURNING n")[0][0].as<int>();
        tx.commit();
        return result;
    });
    CHECK(runs == 2);
    CHECK(n == 11);
    CHECK(s.retries() == 1.0);
    CHECK(s.db.scalar("SELECT n FROM items WHERE id = 1") == "11");
}
