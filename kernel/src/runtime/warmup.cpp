// TenantManager::warmup: leases each tenant once from a few threads so its pool exists (and, with
// ping, checks its schema as health_check does) before traffic arrives.
#include "runtime/manager_state.hpp"
#include "runtime/tenant_health.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <thread>

namespace mt {

using detail::Clock;
using detail::ms_between;

WarmupReport TenantManager::warmup(const std::vector<std::string>& ids, WarmupOptions options) {
    const auto start = Clock::now();
    WarmupReport report;
    report.details.resize(ids.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t i; (i = next++) < ids.size();) {
            auto& d = report.details[i];
            d.tenant = ids[i];
            const auto t0 = Clock::now();
            try {
                if (state_->mode == PoolMode::per_tenant) {
                    std::shared_lock lock(state_->pools_mutex);
                    auto it = state_->pools.find(ids[i]);
                    if (it != state_->pools.end()) {
                        std::lock_guard pl(it->second->mutex);
                        d.already_warm = it->second->open > 0;
                    }
                }
                const auto server = state_->route(ids[i])->server;
                auto lease = tenant(ids[i]);
                // The same check as health_check's: the schema exists on the tenant's own server.
                if (options.ping) detail::probe_tenant(kernel_, lease, server);
                d.ok = true;
            } catch (const std::exception& e) {
                d.ok = false;
                d.error = e.what();
            }
            d.duration_ms = ms_between(t0, Clock::now());
        }
    };
    {
        std::vector<std::jthread> workers;
        const int n = std::max(1, std::min<int>(options.concurrency, static_cast<int>(ids.size())));
        for (int w = 0; w < n; ++w) workers.emplace_back(work);
    }
    report.total = ids.size();
    for (const auto& d : report.details) {
        if (d.ok) ++report.succeeded;
        else ++report.failed;
        if (d.already_warm) ++report.already_warm;
    }
    report.duration_ms = ms_between(start, Clock::now());
    return report;
}

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
