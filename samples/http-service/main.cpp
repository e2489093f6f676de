// A small REST service over cpp-httplib and the mtenant adapter: tasks per tenant.
//
//   http-service [-c FILE] [--listen HOST:PORT] [--threads N] [--directory-refresh 30s]
//                [--bench-raw] [--section.key=value ...]      (--help lists them)
//
// Flags are parsed with Boost.Program_options like mtctl's; a bad flag exits 2 with a message.
// --threads: requests handled at once (default 8); idle keep-alive connections hold none. The
// listen address defaults to 127.0.0.1:8080 (loopback).
//
//   GET  /tasks        the tenant's tasks (JSON array)
//   POST /tasks        {"title": "..."} -> the created task (201); 400 for a title PostgreSQL cannot
//                      hold as text (an embedded NUL, invalid UTF-8), nothing stored
//   GET  /health/db    200/503 + the health report
//   GET  /metrics      Prometheus exposition (with metrics-prometheus in [roles] sinks)
//   GET  /             public: what this is
//
// The tenant comes from the [roles] extractor chain (for example extract-header: X-Tenant-Id).
// Each tenant schema needs a `tasks` table (id serial, title text, ...): see README.md.
// --bench-raw adds the baselines of tools/bench/bench_http.sh: GET /raw/tasks, the same listing
// without the adapter (one fixed connection per server thread, schema named from X-Tenant-Id), and
// GET /lease/tasks, through a lease from the manager but without extraction or tenant directory.
#include <mt/adapter/httplib.hpp>
#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <boost/program_options.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <optional>
#include <sys/socket.h>

namespace {

namespace adapter = mt::adapter::httplib;
namespace po = boost::program_options;
using json = nlohmann::json;

httplib::Server* running = nullptr;
void stop_on_signal(int) {
    if (running) running->stop();
}

struct Options {
    mt::ManifestInput manifest;
    std::string host = "127.0.0.1";
    int port = 8080;
    size_t threads = 8;
    std::chrono::milliseconds directory_refresh = std::chrono::seconds(30);
    bool bench_raw = false;
};

constexpr const char* usage_line =
    "usage: http-service [-c FILE] [--listen HOST:PORT] [--threads N] [--directory-refresh 30s] [--bench-raw]\n"
    "                    [--section.key=value ...]\n";

// Any --section.key=value argument is a manifest override, as with mtctl: it goes to the kernel
// verbatim (mt::ManifestInput::overrides), which checks the key and the value like the file's.
std::pair<std::string, std::string> manifest_override(const std::string& arg) {
    const auto eq = arg.find('=');
    const auto dot = arg.find('.');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos && dot < eq) return {"manifest-override", arg};
    return {};
}

// The options, or nothing when --help printed the usage.
std::optional<Options> parse(int argc, char** argv) {
    po::options_description desc("options");
    desc.add_options()("help,h", "show this help")(
        "config,c", po::value<std::string>()->value_name("FILE"),
        "manifest (default: $MT_CONFIG, then ./multitenant.ini)")(
        "listen", po::value<std::string>()->default_value("127.0.0.1:8080")->value_name("HOST:PORT"),
        "where to listen (port 0: a free one; the first line on stdout says which)")(
        "threads", po::value<int>()->default_value(8)->value_name("N"),
        "requests handled at once; idle keep-alive connections hold none")(
        "directory-refresh", po::value<std::string>()->default_value("30s")->value_name("DURATION"),
        "how often the tenant directory re-runs discovery")(
        "bench-raw", "add the benchmark baselines GET /raw/tasks and GET /lease/tasks (not for production)");
    po::options_description hidden;
    hidden.add_options()("manifest-override", po::value<std::vector<std::string>>()->composing());
    po::options_description all;
    all.add(desc).add(hidden);
    // No positional arguments: an empty description makes a stray word an error, not ignored.
    const po::positional_options_description none;
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(none).extra_parser(manifest_override).run(),
              vm);
    if (vm.count("help")) {
        std::cout << usage_line << "\nA REST service over the mtenant httplib adapter: tasks per tenant.\n\n"
                  << desc;
        // Overrides are not options of desc (any section.key goes): listed in its columns by hand.
        std::string overrides = "  --section.key=value";
        overrides.resize(std::max<size_t>(desc.get_option_column_width(), overrides.size() + 1), ' ');
        std::cout << overrides << "override any manifest key\n";
        return std::nullopt;
    }
    po::notify(vm);

    Options o;
    if (vm.count("config")) o.manifest.file = vm["config"].as<std::string>();
    if (vm.count("manifest-override")) o.manifest.overrides = vm["manifest-override"].as<std::vector<std::string>>();
    const auto addr = vm["listen"].as<std::string>();
    const auto colon = addr.rfind(':');
    if (colon == std::string::npos) throw mt::UsageError("--listen " + addr + ": expected HOST:PORT");
    o.host = addr.substr(0, colon);
    try {
        size_t used = 0;
        o.port = std::stoi(addr.substr(colon + 1), &used);
        if (used != addr.size() - colon - 1) throw std::invalid_argument("port");
    } catch (const std::exception&) {
        throw mt::UsageError("--listen " + addr + ": the port must be a number");
    }
    if (o.port < 0 || o.port > 65535) throw mt::UsageError("--listen " + addr + ": the port must be from 0 to 65535");
    const int threads = vm["threads"].as<int>();
    if (threads < 1) throw mt::UsageError("--threads " + std::to_string(threads) + ": at least 1");
    o.threads = static_cast<size_t>(threads);
    const auto refresh = vm["directory-refresh"].as<std::string>();
    try {
        o.directory_refresh = mt::parse_duration(refresh);
    } catch (const std::exception& e) {
        throw mt::UsageError("--directory-refresh " + refresh + ": " + e.what());
    }
    o.bench_raw = vm.count("bench-raw") != 0;
    return o;
}

void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

void list_tasks(const httplib::Request&, httplib::Response& res, mt::TenantContext& ctx) {
    // The whole listing as one jsonb value: whatever columns the tenant's tasks table has.
    const auto rows = ctx.lease.query("SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') FROM tasks t");
    res.set_content(rows[0][0].c_str(), "application/json");
}

void create_task(const httplib::Request& req, httplib::Response& res, mt::TenantContext& ctx) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return send_json(res, 400, {{"error", "expected a JSON object such as {\"title\": \"Write the report\"}"}});
    const auto title = body.find("title");
    if (title == body.end() || !title->is_string() || title->get<std::string>().empty())
        return send_json(res, 400, {{"error", "title: expected a non-empty string"}});
    if (title->get<std::string>().size() > 500) return send_json(res, 400, {{"error", "title: at most 500 bytes"}});
    const auto rows = ctx.lease.query("INSERT INTO tasks (title) VALUES ($1) RETURNING to_jsonb(tasks)",
                                      {title->get<std::string>()});
    res.status = 201;
    res.set_content(rows[0][0].c_str(), "application/json");
}

// Baseline for the benchmark: no extractor, no validation, no directory, no pool.
void raw_list_tasks(const mt::Kernel& kernel, const httplib::Request& req, httplib::Response& res) {
    thread_local std::unique_ptr<pqxx::connection> conn;
    if (!conn || !conn->is_open()) conn = std::make_unique<pqxx::connection>(kernel.connection_string());
    const std::string schema = mt::quote_ident("tenant_" + req.get_header_value("X-Tenant-Id"));
    pqxx::nontransaction tx(*conn);
    const auto rows =
        tx.exec("SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') FROM " + schema + ".tasks t");
    res.set_content(rows[0][0].c_str(), "application/json");
}

int run(const Options& options) {
    mt::Kernel kernel(options.manifest);
    if (kernel.extractors().empty())
        throw mt::UsageError(
            "no tenant extractor configured: set [roles] extractor (for example extract-header, and add it to "
            "[plugins] load)");
    mt::TenantManager manager(kernel);
    mt::TenantGate gate(manager, {{options.directory_refresh, std::chrono::seconds(1)}, true});

    // The adapter's server: 1 MiB bodies (413 past it), 16 KiB heads (431), 5 s read/write/idle
    // timeouts, idle keep-alive connections wait without holding a worker (docs/http.md), and a
    // handler's exception answers 500 {"error":"internal error"} with its text only in the log.
    adapter::ServerOptions limits;
    limits.worker_threads = options.threads;
    adapter::Server server(limits);
    server.Get("/", adapter::public_route([](const httplib::Request&, httplib::Response& res) {
        res.set_content("mtenant http-service: GET/POST /tasks (tenant from the configured extractor), "
                        "GET /health/db, GET /metrics\n",
                        "text/plain");
    }));
    server.Get("/tasks", adapter::with_tenant(gate, list_tasks));
    server.Post("/tasks", adapter::with_tenant(gate, create_task));
    server.Get("/health/db", adapter::health_handler(manager));
    server.Get("/metrics", adapter::metrics_handler(manager));
    if (options.bench_raw) {
        server.Get("/raw/tasks", [&kernel](const httplib::Request& req, httplib::Response& res) {
            raw_list_tasks(kernel, req, res);
        });
        // The lease alone (no extraction, no directory): separates the adapter's cost from the pool's.
        server.Get("/lease/tasks", [&manager](const httplib::Request& req, httplib::Response& res) {
            mt::TenantContext ctx{req.get_header_value("X-Tenant-Id"), manager.tenant(req.get_header_value("X-Tenant-Id"))};
            list_tasks(req, res, ctx);
        });
    }

    int port = options.port;
    // cpp-httplib sets SO_REUSEPORT by default: a second service on a port in use would bind too and
    // silently share its connections. SO_REUSEADDR alone still allows a restart over TIME_WAIT.
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    if (port == 0) port = server.bind_to_any_port(options.host);
    else if (!server.bind_to_port(options.host, port)) port = -1;
    if (port < 0)
        throw mt::UsageError("cannot listen on " + options.host + ":" + std::to_string(options.port) + " (in use?)");
    running = &server;
    std::signal(SIGINT, stop_on_signal);
    std::signal(SIGTERM, stop_on_signal);
    std::cout << "listening on " << options.host << ":" << port << std::endl;
    server.listen_after_bind();
    running = nullptr;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const auto options = parse(argc, argv);
        return options ? run(*options) : 0;
    } catch (const po::error& e) {
        std::cerr << "http-service: " << e.what() << "\n" << usage_line << "(see http-service --help)\n";
        return static_cast<int>(mt::ExitCode::usage);
    } catch (const mt::Error& e) {
        std::cerr << "http-service: " << e.what() << "\n";
        return static_cast<int>(e.exit_code());
    } catch (const std::exception& e) {
        std::cerr << "http-service: " << e.what() << "\n";
        return 1;
    }
}
