#include "runtime/tenant_health.hpp"
#include "runtime/clock.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/tracking/status.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>

namespace mt::detail {

namespace {

constexpr const char* missing_schemas_sql =
    "SELECT s.name FROM jsonb_array_elements_text($1::jsonb) AS s(name) "
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = s.name)";

}  // namespace

std::string server_label(const std::optional<std::string>& server) {
    return server ? "servers." + *server : std::string("database.url");
}

std::vector<std::string> missing_schemas(const Kernel& kernel, TenantLease& lease, const std::vector<std::string>& schemas) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& s : schemas) names.push_back(s);
    const std::string list = names.dump();
    const auto rows = kernel.with_retry(lease.tenant_id(), [&] {
        pqxx::nontransaction tx(lease.connection());
        return exec_params(tx, missing_schemas_sql, {list});
    });
    std::vector<std::string> out;
    for (const auto& row : rows) out.emplace_back(row[0].c_str());
    return out;
}

std::string missing_schema_error(const std::string& tenant, const std::string& schema,
                                 const std::optional<std::string>& server) {
    return "schema " + quote_ident(schema) + " of tenant " + tenant + " does not exist on its server (" +
           server_label(server) + "): create it with `mtctl tenant create --id " + tenant +
           "`, or fix the tenant's server in discovery";
}

void probe_tenant(const Kernel& kernel, TenantLease& lease, const std::optional<std::string>& server) {
    if (!missing_schemas(kernel, lease, {lease.schema()}).empty())
        throw OperationError(missing_schema_error(lease.tenant_id(), lease.schema(), server), "3F000");
}

std::unordered_map<std::string, PendingCount> pending_migrations(const Kernel& kernel, const std::vector<Tenant>& tenants) {
    std::unordered_map<std::string, PendingCount> out;
    if (tenants.empty()) return out;
    auto fail_all = [&](const std::vector<Tenant>& group, const std::string& why) {
        for (const auto& t : group) out[t.id] = PendingCount{std::nullopt, "pending migrations unknown: " + why};
    };
    MigrationFolder folder;
    try {
        folder = read_migration_folder(kernel.manifest().migrations.tenant_dir);
    } catch (const std::exception& e) {
        fail_all(tenants, e.what());
        return out;
    }
    std::map<std::optional<std::string>, std::vector<Tenant>> by_server;
    for (const auto& t : tenants) by_server[t.server].push_back(t);
    const auto target = TrackingTarget::tenants(kernel.manifest());
    for (const auto& [server, group] : by_server) {
        FleetStatus fleet;
        try {
            fleet = fleet_status(kernel, group, folder, target);
        } catch (const std::exception& e) {
            fail_all(group, e.what());
            continue;
        }
        for (const auto& st : fleet.tenants) {
            auto& p = out[st.tenant.id];
            switch (st.state) {
                case TenantState::missing_schema: p.error = "schema missing"; break;
                case TenantState::unknown_format:
                    p.error = "pending migrations unknown: the tracking table " + target.table +
                              " has a layout no loaded tracking format recognises (see mtctl status)";
                    break;
                default: p.pending = st.pending.size(); break;
            }
        }
    }
    return out;
}

}  // namespace mt::detail

namespace mt {

namespace {

using detail::Clock;
using detail::ms_between;

std::string iso_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string waiting_error(size_t waiting) { return std::to_string(waiting) + " leases waiting for a connection"; }

}  // namespace

std::string to_string(HealthStatus s) {
    switch (s) {
        case HealthStatus::ok: return "ok";
        case HealthStatus::degraded: return "degraded";
        case HealthStatus::unhealthy: return "unhealthy";
    }
    return "?";
}

HealthReport TenantManager::health_check(HealthOptions options) {
    const auto start = Clock::now();
    HealthReport report;
    report.timestamp = iso_now();
    const double timeout_ms = static_cast<double>(options.timeout.count());
    auto& state = *state_;

    auto set_figures = [](PoolHealth& h, const detail::PoolFigures& f) {
        h.total = f.total;
        h.idle = f.idle;
        h.waiting = f.waiting;
    };
    // After a probe that answered: ok, degraded (slow or waiters) or unhealthy (too slow).
    auto judge = [&](PoolHealth& h) {
        if (h.response_ms > timeout_ms) {
            h.status = HealthStatus::unhealthy;
            h.error = "ping took " + std::to_string(static_cast<long>(h.response_ms)) + "ms (timeout " +
                      std::to_string(options.timeout.count()) + "ms)";
        } else if (h.response_ms > timeout_ms / 2) {
            h.status = HealthStatus::degraded;
            h.error = "slow: ping took " + std::to_string(static_cast<long>(h.response_ms)) + "ms";
        } else if (h.waiting > 0) {
            h.status = HealthStatus::degraded;
            h.error = waiting_error(h.waiting);
        }
    };
    // Routes a tenant as a lease would; one that cannot be routed (invalid, discovery failed) is unhealthy.
    auto routed = [&](const std::string& id, PoolHealth& h) {
        h.tenant = id;
        try {
            auto where = detail::route_of(state, id);
            h.schema = where.schema;
            h.server = where.server;
            return true;
        } catch (const std::exception& e) {
            h.status = HealthStatus::unhealthy;
            h.error = e.what();
            return false;
        }
    };
    // One lease and one round trip per tenant: the pool answers and the schema exists there.
    auto check_tenant = [&](const std::string& id) {
        PoolHealth h;
        if (!routed(id, h)) return h;
        set_figures(h, detail::tenant_figures(state, id, h.server));
        if (!options.ping) {
            if (h.waiting > 0) {
                h.status = HealthStatus::degraded;
                h.error = waiting_error(h.waiting);
            }
            return h;
        }
        const auto t0 = Clock::now();
        try {
            auto lease = tenant(id);
            detail::probe_tenant(kernel_, lease, h.server);
            h.response_ms = ms_between(t0, Clock::now());
            judge(h);
        } catch (const std::exception& e) {
            h.response_ms = ms_between(t0, Clock::now());
            h.status = HealthStatus::unhealthy;
            h.error = e.what();
        }
        return h;
    };
    // Shared/transaction modes: the tenants of one server share its pool, so one lease and one
    // catalog query check all their schemas.
    auto check_server = [&](const std::vector<std::string>& ids, std::vector<PoolHealth>& out) {
        std::vector<PoolHealth> group;
        std::vector<std::string> schemas;
        for (const auto& id : ids) {
            PoolHealth h;
            if (routed(id, h)) {
                schemas.push_back(h.schema);
                group.push_back(std::move(h));
            } else {
                out.push_back(std::move(h));
            }
        }
        if (group.empty()) return;
        const auto figures = detail::tenant_figures(state, group.front().tenant, group.front().server);
        for (auto& h : group) set_figures(h, figures);
        if (options.ping) {
            const auto t0 = Clock::now();
            try {
                auto lease = tenant(group.front().tenant);
                const auto missing = detail::missing_schemas(kernel_, lease, schemas);
                const double ms = ms_between(t0, Clock::now());
                for (auto& h : group) {
                    h.response_ms = ms;
                    if (std::find(missing.begin(), missing.end(), h.schema) != missing.end()) {
                        h.status = HealthStatus::unhealthy;
                        h.error = detail::missing_schema_error(h.tenant, h.schema, h.server);
                    } else {
                        judge(h);
                    }
                }
            } catch (const std::exception& e) {
                const double ms = ms_between(t0, Clock::now());
                for (auto& h : group) {
                    h.response_ms = ms;
                    h.status = HealthStatus::unhealthy;
                    h.error = e.what();
                }
            }
        } else if (figures.waiting > 0) {
            for (auto& h : group) {
                h.status = HealthStatus::degraded;
                h.error = waiting_error(h.waiting);
            }
        }
        for (auto& h : group) out.push_back(std::move(h));
    };

    if (!options.tenants.empty()) {
        for (const auto& id : options.tenants) report.pools.push_back(check_tenant(id));
    } else if (detail::per_tenant_mode(state)) {
        for (const auto& id : detail::live_tenants(state)) report.pools.push_back(check_tenant(id));
    } else {
        std::map<std::optional<std::string>, std::vector<std::string>> by_server;
        for (auto& [id, server] : detail::leased_tenants(state)) by_server[server].push_back(id);
        for (auto& [server, ids] : by_server) {
            std::sort(ids.begin(), ids.end());
            check_server(ids, report.pools);
        }
    }
    if (options.pending) {
        std::vector<Tenant> tenants;
        for (const auto& p : report.pools)
            if (p.status != HealthStatus::unhealthy) tenants.push_back(Tenant{p.tenant, p.schema, p.server});
        const auto counts = detail::pending_migrations(kernel_, tenants);
        for (auto& p : report.pools) {
            const auto it = counts.find(p.tenant);
            if (it == counts.end() || p.status == HealthStatus::unhealthy) continue;
            p.pending = it->second.pending;
            std::string why = it->second.error;
            if (p.pending && *p.pending > 0)
                why = std::to_string(*p.pending) + " pending migration" + (*p.pending == 1 ? "" : "s") +
                      " (run `mtctl migrate --tenant " + p.tenant + "`)";
            if (why.empty()) continue;
            p.status = HealthStatus::degraded;
            p.error = p.error.empty() ? why : p.error + "; " + why;
        }
    }
    // The shared schema (on database.url).
    {
        PoolHealth h;
        set_figures(h, detail::shared_figures(state));
        if (options.ping) {
            const auto t0 = Clock::now();
            try {
                auto lease = shared();
                const bool missing = !detail::missing_schemas(kernel_, lease, {lease.schema()}).empty();
                h.response_ms = ms_between(t0, Clock::now());
                if (missing) {
                    h.status = HealthStatus::unhealthy;
                    h.error = "the shared schema " + quote_ident(lease.schema()) +
                              " does not exist on database.url (see isolation.shared_schema)";
                } else {
                    judge(h);
                }
            } catch (const std::exception& e) {
                h.response_ms = ms_between(t0, Clock::now());
                h.status = HealthStatus::unhealthy;
                h.error = e.what();
            }
        } else if (h.waiting > 0) {
            h.status = HealthStatus::degraded;
            h.error = waiting_error(h.waiting);
        }
        report.shared.status = h.status;
        report.shared.response_ms = h.response_ms;
        report.shared.error = h.error;
    }
    report.total_pools = report.pools.size();
    for (const auto& p : report.pools) {
        if (p.status == HealthStatus::degraded) ++report.degraded_pools;
        if (p.status == HealthStatus::unhealthy) ++report.unhealthy_pools;
    }
    report.healthy = report.unhealthy_pools == 0 && report.shared.status != HealthStatus::unhealthy;
    report.duration_ms = ms_between(start, Clock::now());

    mt_event ev{};
    ev.struct_size = sizeof ev;
    ev.type = MT_EVENT_HEALTH;
    ev.ok = report.healthy ? 1 : 0;
    ev.duration_s = report.duration_ms / 1000.0;
    kernel_.emit(ev);
    return report;
}

std::string to_json(const HealthReport& r) {
    using nlohmann::json;
    json pools = json::array();
    for (const auto& p : r.pools) {
        json j = {{"tenant", p.tenant},     {"schema", p.schema}, {"status", to_string(p.status)},
                  {"total", p.total},       {"idle", p.idle},     {"waiting", p.waiting},
                  {"response_ms", p.response_ms}};
        if (!p.error.empty()) j["error"] = p.error;
        if (p.server) j["server"] = *p.server;
        if (p.pending) j["pending_migrations"] = *p.pending;
        pools.push_back(j);
    }
    json shared = {{"status", to_string(r.shared.status)}, {"response_ms", r.shared.response_ms}};
    if (!r.shared.error.empty()) shared["error"] = r.shared.error;
    return json{{"healthy", r.healthy},
                {"pools", pools},
                {"shared", shared},
                {"total_pools", r.total_pools},
                {"degraded_pools", r.degraded_pools},
                {"unhealthy_pools", r.unhealthy_pools},
                {"timestamp", r.timestamp},
                {"duration_ms", r.duration_ms}}
        .dump();
}

// Beside to_json(HealthReport): the renderings share this file's JSON include.
std::string to_json(const WarmupReport& r) {
    using nlohmann::json;
    json details = json::array();
    for (const auto& d : r.details) {
        json j = {{"tenant", d.tenant}, {"ok", d.ok}, {"already_warm", d.already_warm}, {"duration_ms", d.duration_ms}};
        if (!d.error.empty()) j["error"] = d.error;
        details.push_back(j);
    }
    return json{{"total", r.total},
                {"succeeded", r.succeeded},
                {"failed", r.failed},
                {"already_warm", r.already_warm},
                {"duration_ms", r.duration_ms},
                {"details", details}}
        .dump();
}

}  // namespace mt
