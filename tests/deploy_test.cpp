// The operations kit under deploy/ (issue 15, item 4): the Prometheus alert rules pass promtool's
// checks and unit tests, the systemd unit passes systemd-analyze verify with its hardening, and
// every metric the Grafana dashboard and the alert rules name is one that a running `mtctl serve`
// and the sample service (samples/http-service, after some traffic) really export.
#include "support/daemon.hpp"
#include "support/http.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mt::test;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

std::filesystem::path deploy_dir() { return source_dir() / "deploy"; }

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }

// Index just past the bracket that closes the one at `open` (strings inside skipped).
size_t past_closing(const std::string& s, size_t open) {
    const char o = s[open], c = o == '(' ? ')' : o == '{' ? '}' : ']';
    int depth = 0;
    for (size_t i = open; i < s.size(); ++i) {
        if (s[i] == '"' || s[i] == '\'' || s[i] == '`') {
            const char q = s[i];
            for (++i; i < s.size() && s[i] != q; ++i)
                if (s[i] == '\\') ++i;
        } else if (s[i] == o) {
            ++depth;
        } else if (s[i] == c && --depth == 0) {
            return i + 1;
        }
    }
    return s.size();
}

// The metric names a PromQL expression selects: identifiers outside strings, label matchers and
// range brackets that are neither a function call, an aggregation, a keyword nor a number.
// Grafana's variables ($job, $__rate_interval) are dropped first; `label_values(SELECTOR, label)`
// (a dashboard variable's query) counts its selector only.
std::set<std::string> promql_metric_names(std::string expr) {
    static const std::set<std::string> keywords{
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile", "inf", "nan", "atan2"};
    static const std::set<std::string> label_lists{"by", "without", "on", "ignoring", "group_left", "group_right"};
    expr = std::regex_replace(expr, std::regex(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"), "");
    std::smatch m;
    if (std::regex_match(expr, m, std::regex(R"(\s*label_values\((.*),\s*[A-Za-z_]+\s*\)\s*)")))
        expr = m[1];
    else if (std::regex_match(expr, std::regex(R"(\s*label_values\(\s*[A-Za-z_]+\s*\)\s*)")))
        return {};
    std::set<std::string> names;
    size_t i = 0;
    while (i < expr.size()) {
        const char c = expr[i];
        if (c == '"' || c == '\'' || c == '`' || c == '{' || c == '[') {
            if (c == '{' || c == '[') {
                i = past_closing(expr, i);
            } else {
                for (++i; i < expr.size() && expr[i] != c; ++i)
                    if (expr[i] == '\\') ++i;
                ++i;
            }
        } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < expr.size() && std::isdigit(static_cast<unsigned char>(expr[i + 1])))) {
            while (i < expr.size() && (is_name_char(expr[i]) || expr[i] == '.' ||
                                       ((expr[i] == '+' || expr[i] == '-') && (expr[i - 1] == 'e' || expr[i - 1] == 'E'))))
                ++i;
        } else if (is_name_start(c)) {
            const size_t start = i;
            while (i < expr.size() && is_name_char(expr[i])) ++i;
            const std::string word = expr.substr(start, i - start);
            size_t next = i;
            while (next < expr.size() && std::isspace(static_cast<unsigned char>(expr[next]))) ++next;
            const bool call = next < expr.size() && expr[next] == '(';
            if (label_lists.count(word) && call) i = past_closing(expr, next);
            else if (!call && !keywords.count(word)) names.insert(word);
        } else {
            ++i;
        }
    }
    return names;
}

// Every `expr:` of a rules file: one line, or a folded block (`expr: >-` and the lines indented
// deeper than the key).
std::vector<std::string> rule_expressions(const std::string& yaml) {
    std::vector<std::string> out;
    std::istringstream in(yaml);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line)) lines.push_back(line);
    for (size_t i = 0; i < lines.size(); ++i) {
        const auto at = lines[i].find("expr:");
        if (at == std::string::npos || lines[i].find_first_not_of(' ') != at) continue;
        std::string value = lines[i].substr(at + 5);
        value.erase(0, value.find_first_not_of(' '));
        if (value == ">-" || value == ">" || value == "|" || value == "|-") {
            value.clear();
            for (size_t j = i + 1; j < lines.size(); ++j) {
                const auto indent = lines[j].find_first_not_of(' ');
                if (indent == std::string::npos || indent <= at) break;
                value += lines[j].substr(indent) + " ";
            }
        }
        out.push_back(value);
    }
    return out;
}

// The values of `key: VALUE` lines (alert names, alertnames of the unit tests), in order.
std::vector<std::string> yaml_values(const std::string& yaml, const std::string& key) {
    std::vector<std::string> out;
    const std::regex line("^\\s*-?\\s*" + key + ":\\s*(\\S+)\\s*$");
    std::istringstream in(yaml);
    std::string text;
    std::smatch m;
    while (std::getline(in, text))
        if (std::regex_match(text, m, line)) out.push_back(m[1]);
    return out;
}

// Every PromQL expression of the dashboard: panels' (and rows' nested panels') targets, and the
// query variables of its templating.
void dashboard_expressions(const json& panels, std::vector<std::string>& out) {
    for (const auto& p : panels) {
        if (p.contains("targets"))
            for (const auto& t : p["targets"])
                if (t.contains("expr")) out.push_back(t["expr"].get<std::string>());
        if (p.contains("panels")) dashboard_expressions(p["panels"], out);
    }
}

std::vector<std::string> dashboard_expressions(const json& dashboard) {
    std::vector<std::string> out;
    dashboard_expressions(dashboard.at("panels"), out);
    for (const auto& v : dashboard.at("templating").at("list"))
        if (v.value("type", "") == "query") {
            const auto& q = v.at("query");
            out.push_back(q.is_object() ? q.at("query").get<std::string>() : q.get<std::string>());
        }
    return out;
}

// Metric names with at least one sample in a Prometheus exposition (not just a # TYPE line).
std::set<std::string> exposed_names(const std::string& exposition) {
    std::set<std::string> out;
    for (const auto& [sample, value] : scrape(exposition)) out.insert(sample.substr(0, sample.find('{')));
    return out;
}

// A process that prints "<marker>HOST:PORT" once listening; the port, or the test fails.
int port_after(Daemon& process, const std::string& marker, const std::string& what) {
    int port = 0;
    bool exited = false;
    poll_until([&] {
        const auto out = process.out();
        if (const auto at = out.find(marker); at != std::string::npos) {
            const auto colon = out.find(':', at + marker.size());
            if (colon != std::string::npos && out.find_first_of("\n\"", colon) != std::string::npos) {
                port = std::stoi(out.substr(colon + 1));
                return true;
            }
        }
        exited = !process.running();
        return exited;
    });
    if (port == 0) FAIL(what << (exited ? " exited" : " did not listen") << "; stdout: " << process.out() << "\nstderr: " << process.err());
    return port;
}

}  // namespace

TEST_CASE("the PromQL name tokenizer finds metric names and skips functions, labels, keywords and variables", "[deploy]") {
    using S = std::set<std::string>;
    CHECK(promql_metric_names("sum by (job, instance) (rate(mt_retries_total{job=~\"$job\"}[5m])) > 1") == S{"mt_retries_total"});
    CHECK(promql_metric_names("max by (job, instance) (mt_pools_active / (mt_pools_max > 0)) >= 0.9") ==
          S{"mt_pools_active", "mt_pools_max"});
    CHECK(promql_metric_names("histogram_quantile(0.95, sum by (le) (rate(mt_query_duration_seconds_bucket{le!=\"x y\"}[$__rate_interval])))") ==
          S{"mt_query_duration_seconds_bucket"});
    CHECK(promql_metric_names("topk($topn, sum without (state) (a_total offset 5m)) and on (tenant) group_left(x) b unless c") ==
          S{"a_total", "b", "c"});
    CHECK(promql_metric_names("label_values({__name__=~\"mt_.+\"}, job)").empty());
    CHECK(promql_metric_names("label_values(mt_tenants{a=\"b\"}, instance)") == S{"mt_tenants"});
    CHECK(promql_metric_names("count(up == bool 1) * 1e3 + 2.5E-3") == S{"up"});
}

TEST_CASE("promtool checks the alert rules and their unit tests fire and clear every alert", "[deploy]") {
    const auto dir = deploy_dir() / "prometheus";
    const auto check = run("cd " + shell_quote(dir.string()) + " && promtool check rules mtenant-alerts.yml");
    INFO(both(check));
    REQUIRE(check.exit_code == 0);
    CHECK_THAT(check.out, Contains("SUCCESS: 10 rules found"));
    const auto test = run("cd " + shell_quote(dir.string()) + " && promtool test rules mtenant-alerts.test.yml");
    INFO(both(test));
    REQUIRE(test.exit_code == 0);
    CHECK_THAT(test.out, Contains("SUCCESS"));

    // Each alert has an evaluation where it fires and one where it must not.
    const auto rules = read_file(dir / "mtenant-alerts.yml");
    const auto tests = read_file(dir / "mtenant-alerts.test.yml");
    const auto alerts = yaml_values(rules, "alert");
    REQUIRE(alerts.size() == 10);
    std::map<std::string, std::pair<int, int>> evaluations;  // alert -> (silent, firing)
    std::istringstream in(tests);
    std::string line, current;
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_match(line, m, std::regex(R"(\s*alertname:\s*(\S+)\s*)"))) current = m[1];
        else if (std::regex_match(line, std::regex(R"(\s*exp_alerts:\s*\[\]\s*)"))) ++evaluations[current].first;
        else if (std::regex_match(line, std::regex(R"(\s*exp_alerts:\s*)"))) ++evaluations[current].second;
    }
    for (const auto& alert : alerts) {
        INFO(alert);
        CHECK(evaluations[alert].first >= 1);
        CHECK(evaluations[alert].second >= 1);
    }
}

TEST_CASE("the systemd unit for mtctl serve passes systemd-analyze verify with its hardening", "[deploy]") {
    const auto unit = deploy_dir() / "systemd/mtctl-serve.service";
    const std::string text = read_file(unit);
    for (const char* setting : {"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                                "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                                "SystemCallFilter=@system-service", "EnvironmentFile=/etc/mtenant/mtctl-serve.env",
                                "--config /etc/mtenant/multitenant.ini", "ExecStart=/usr/bin/mtctl "}) {
        INFO(setting);
        CHECK_THAT(text, Contains(setting));
    }
    if (run("command -v systemd-analyze").exit_code != 0) {
        // Debian's systemd package (tools/setup.sh installs it) provides systemd-analyze.
        WARN("systemd-analyze is not installed: the unit's verification did not run");
        return;
    }
    // The packages install mtctl as /usr/bin/mtctl; verify checks that ExecStart's binary exists,
    // so the copy verified here names the mtctl of this build instead (the only change).
    TempDir dir;
    const auto copy = dir / "mtctl-serve.service";
    write_file(copy, std::regex_replace(text, std::regex("/usr/bin/mtctl"), std::string(MT_MTCTL)));
    // --man=no: the Documentation= man page is the package's, not installed on a build machine.
    const auto verify = run("cd / && systemd-analyze verify --man=no " + shell_quote(copy.string()));
    INFO(both(verify));
    CHECK(verify.exit_code == 0);
    CHECK(verify.err.empty());
    const auto security = run("systemd-analyze security --offline=true --no-pager " + shell_quote(copy.string()));
    INFO(both(security));
    std::smatch m;
    REQUIRE(std::regex_search(security.out, m, std::regex(R"(Overall exposure level for mtctl-serve.service: ([0-9.]+))")));
    std::cout << "figure: systemd-analyze security exposure of mtctl-serve.service: " << m[1] << "\n";
    CHECK(std::stod(m[1]) <= 2.0);

    // The ExecStart line's flags are mtctl's: the same command with --help parses them and exits 0.
    std::smatch exec;
    REQUIRE(std::regex_search(text, exec, std::regex(R"(ExecStart=/usr/bin/mtctl ([^\n]*) serve ([^\n]*))")));
    const auto help = run(shell_quote(MT_MTCTL) + " " + exec[1].str() + " serve " + exec[2].str() + " --help");
    INFO(both(help));
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Contains("--refresh"));
}

TEST_CASE("every metric the dashboard and the alert rules name is exported by mtctl serve or the sample service",
          "[deploy][pg]") {
    Project p;
    configure_http(p);
    // One live pool at most: the second tenant's request evicts the first one's pool (an LRU eviction).
    p.set("database.max_pools", "1");
    p.migration("0000_tasks", "CREATE TABLE IF NOT EXISTS tasks (id serial PRIMARY KEY, title text NOT NULL);");
    tenants_with_tasks(p, {"a", "b"});
    std::set<std::string> exported;

    {
        Daemon service(shell_quote(std::string(MT_BINARY_DIR) + "/samples/http-service/http-service") + " -c " +
                           shell_quote((p.dir() / "multitenant.ini").string()) + " --listen 127.0.0.1:0",
                       p.dir());
        const int port = port_after(service, "listening on ", "http-service");
        for (const char* tenant : {"a", "b", "a"}) REQUIRE(tenant_get(port, tenant).status == 200);
        REQUIRE(http_post(port, "/tasks", R"({"title":"scraped"})", {{"X-Tenant-Id", "b"}}).status == 201);
        REQUIRE(http_get(port, "/health/db").status == 200);
        const auto metrics = http_get(port, "/metrics");
        REQUIRE(metrics.status == 200);
        const auto names = exposed_names(metrics.body);
        INFO(metrics.body);
        CHECK(names.count("mt_pool_evictions_total") == 1);
        CHECK(names.count("mt_query_duration_seconds_bucket") == 1);
        // The alert on slow queries reads the 1 s bucket as the sink writes it.
        CHECK_THAT(metrics.body, Contains("mt_query_duration_seconds_bucket{le=\"1\"}"));
        exported.insert(names.begin(), names.end());
        CHECK(service.stop() == 0);
    }
    {
        Daemon serve(shell_quote(MT_MTCTL) + " --no-color --json serve --listen 127.0.0.1:0 --refresh 0s", p.dir());
        const int port = port_after(serve, "\"listening\": \"", "mtctl serve");
        REQUIRE(http_get(port, "/health/db").status == 200);
        const auto metrics = http_get(port, "/metrics");
        REQUIRE(metrics.status == 200);
        const auto names = exposed_names(metrics.body);
        INFO(metrics.body);
        for (const char* fleet : {"mt_tenants", "mt_tenant_pending_migrations", "mt_drift_groups"}) {
            INFO(fleet);
            CHECK(names.count(fleet) == 1);
        }
        exported.insert(names.begin(), names.end());
    }

    std::vector<std::pair<std::string, std::string>> used;  // (where, expression)
    const auto dashboard = json::parse(read_file(deploy_dir() / "grafana/mtenant.json"));
    for (const auto& e : dashboard_expressions(dashboard)) used.emplace_back("deploy/grafana/mtenant.json", e);
    const auto rules = read_file(deploy_dir() / "prometheus/mtenant-alerts.yml");
    for (const auto& e : rule_expressions(rules)) used.emplace_back("deploy/prometheus/mtenant-alerts.yml", e);
    CHECK(rule_expressions(rules).size() == 10);
    CHECK(used.size() > 30);

    std::string exported_list;
    for (const auto& n : exported) exported_list += " " + n;
    std::set<std::string> named;
    for (const auto& [where, expr] : used) {
        for (const auto& name : promql_metric_names(expr)) {
            INFO(where << ": " << expr << "\nnames " << name << "; exported:" << exported_list);
            CHECK(exported.count(name) == 1);
            named.insert(name);
        }
    }
    // The dashboard and the rules between them cover every family the exporters have.
    for (const char* family : {"mt_pools_active", "mt_pools_max", "mt_pool_connections", "mt_pool_evictions_total",
                               "mt_query_duration_seconds_bucket", "mt_queries_total", "mt_retries_total",
                               "mt_migrations_applied_total", "mt_migrations_failed_total",
                               "mt_migration_duration_seconds_bucket", "mt_health_status",
                               "mt_tenant_pending_migrations", "mt_tenants", "mt_drift_groups"}) {
        INFO(family);
        CHECK(named.count(family) == 1);
    }

    // The dashboard's queries are valid PromQL: promtool checks them as recording rules, with
    // Grafana's variables replaced by values of theirs.
    std::string recording = "groups:\n  - name: dashboard\n    rules:\n";
    int n = 0;
    for (const auto& e : dashboard_expressions(dashboard)) {
        std::string expr = std::regex_replace(e, std::regex(R"(\$__rate_interval)"), "5m");
        expr = std::regex_replace(expr, std::regex(R"(\$topn)"), "10");
        expr = std::regex_replace(expr, std::regex(R"(\$job)"), ".*");
        if (expr.rfind("label_values(", 0) == 0) continue;
        recording += "      - record: dashboard_query_" + std::to_string(++n) + "\n        expr: " + json(expr).dump() + "\n";
    }
    TempDir dir;
    write_file(dir / "dashboard.rules.yml", recording);
    const auto check = run("promtool check rules " + shell_quote((dir / "dashboard.rules.yml").string()));
    INFO(recording << both(check));
    CHECK(check.exit_code == 0);
}

TEST_CASE("the Grafana dashboard has the fleet, per-tenant top N, pool and query latency sections", "[deploy]") {
    const auto dashboard = json::parse(read_file(deploy_dir() / "grafana/mtenant.json"));
    std::vector<std::string> rows;
    bool heatmap = false, topk = false, quantile = false;
    for (const auto& p : dashboard.at("panels")) {
        if (p.at("type") == "row") rows.push_back(p.at("title"));
        heatmap = heatmap || p.at("type") == "heatmap";
        for (const auto& t : p.value("targets", json::array())) {
            topk = topk || t.at("expr").get<std::string>().rfind("topk($topn,", 0) == 0;
            quantile = quantile || t.at("expr").get<std::string>().find("histogram_quantile(0.99") != std::string::npos;
        }
    }
    CHECK(rows == std::vector<std::string>{"Fleet overview", "Tenants (top $topn)", "Pools", "Queries"});
    CHECK(heatmap);
    CHECK(topk);
    CHECK(quantile);
    CHECK(dashboard.at("uid") == "mtenant-overview");
}
