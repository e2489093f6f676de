// mtctl serve: a long-running exporter with /health/db (200 healthy / 503 + the health JSON) and
// /metrics (the sinks' exposition, with fleet gauges refreshed at most every --refresh).
#include "cli.hpp"

#include <mt/errors.hpp>
#include <mt/fleet_metrics.hpp>
#include <mt/tenant_manager.hpp>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <sys/socket.h>
#include <iostream>
#include <mutex>

namespace mtctl {

namespace {

httplib::Server* running_server = nullptr;

void stop_on_signal(int) {
    if (running_server) running_server->stop();
}

std::pair<std::string, int> parse_listen(const std::string& addr) {
    const auto colon = addr.rfind(':');
    if (colon == std::string::npos || colon + 1 >= addr.size())
        throw mt::UsageError("--listen " + addr + ": expected HOST:PORT, e.g. 127.0.0.1:9465");
    std::string host = addr.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    try {
        size_t used = 0;
        const int port = std::stoi(addr.substr(colon + 1), &used);
        if (used != addr.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("port");
        return {host.empty() ? "0.0.0.0" : host, port};
    } catch (const std::exception&) {
        throw mt::UsageError("--listen " + addr + ": the port must be a number from 0 to 65535");
    }
}

int cmd_serve(const Invocation& inv, const Output& out) {
    po::options_description desc("serve options");
    desc.add_options()("listen", po::value<std::string>()->required(), "HOST:PORT to serve /health/db and /metrics on")(
        "refresh", po::value<std::string>()->default_value("15s"), "how stale the fleet gauges may get");
    const auto vm = parse_options(inv, desc);
    const auto [host, port] = parse_listen(vm["listen"].as<std::string>());
    const auto refresh = duration_flag(vm, "refresh");

    mt::Kernel kernel(inv.globals.manifest_input());
    mt::TenantManager manager(kernel);
    if (kernel.sinks().empty())
        spdlog::warn("no metrics sink configured: /metrics stays empty until metrics-prometheus is in [roles] sinks");

    std::mutex fleet_mutex;
    std::chrono::steady_clock::time_point fleet_at{};

    httplib::Server server;
    server.Get("/health/db", [&](const httplib::Request&, httplib::Response& res) {
        const auto report = manager.health_check();
        res.status = report.healthy ? 200 : 503;
        res.set_content(mt::to_json(report), "application/json");
    });
    server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
        {
            std::lock_guard lock(fleet_mutex);
            const auto now = std::chrono::steady_clock::now();
            if (fleet_at == std::chrono::steady_clock::time_point{} || now - fleet_at >= refresh) {
                try {
                    mt::publish_fleet_metrics(kernel);
                } catch (const std::exception& e) {
                    spdlog::warn("fleet gauges not refreshed: {}", e.what());
                }
                fleet_at = now;
            }
        }
        res.set_content(manager.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("mtctl serve: /health/db, /metrics\n", "text/plain");
    });

    // cpp-httplib's default sets SO_REUSEPORT, with which a second exporter on a port in use binds
    // too and silently shares its connections: keep SO_REUSEADDR only (restarts over TIME_WAIT).
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    int bound = port;
    if (port == 0) bound = server.bind_to_any_port(host);
    else if (!server.bind_to_port(host, port)) bound = -1;
    if (bound < 0) throw mt::UsageError("cannot listen on " + host + ":" + std::to_string(port) + " (in use?)");
    running_server = &server;
    std::signal(SIGINT, stop_on_signal);
    std::signal(SIGTERM, stop_on_signal);
    out.json({{"listening", host + ":" + std::to_string(bound)}});
    if (!inv.globals.json) std::cout << "serving /health/db and /metrics on " << host << ":" << bound << "\n";
    // Whoever started us (a supervisor, a test) learns the port from this line: do not leave it in
    // the buffer of a redirected stdout.
    std::cout.flush();
    server.listen_after_bind();
    running_server = nullptr;
    return 0;
}

const bool registered = register_command(
    {"serve", "serve --listen HOST:PORT [--refresh 15s]", "exporter: /health/db and /metrics with fleet gauges", 90,
     cmd_serve});

}  // namespace
}  // namespace mtctl
