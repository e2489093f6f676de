// metrics-prometheus: turns kernel events into the Prometheus metrics of SPEC §8 (prometheus-cpp).
// The registry is rendered by render() for manager.metrics_text(), and optionally served on
// `listen` by a built-in prometheus::Exposer. Tenant labels are bounded by `tenant_labels` so a
// fleet of 10,000 tenants cannot blow up the series count.
#include <mt/sdk/plugin.hpp>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace {

using namespace mt::sdk;

// Where the overflow of a bounded tenant label goes (SPEC §8).
constexpr std::string_view other_tenant = "other";

enum class LabelMode { none, all, top };

struct TenantLabels {
    LabelMode mode = LabelMode::top;
    size_t top = 100;
};

TenantLabels parse_tenant_labels(const std::string& text) {
    const auto refuse = [&] {
        return ConfigError("tenant_labels", "expected none, all or top:N with N >= 1, got '" + text + "'");
    };
    if (text == "none") return {LabelMode::none, 0};
    if (text == "all") return {LabelMode::all, 0};
    if (text.rfind("top:", 0) != 0) throw refuse();
    const std::string n = text.substr(4);
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) throw refuse();
    const size_t top = std::stoul(n);
    if (top == 0) throw refuse();
    return {LabelMode::top, top};
}

// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*
std::string checked_prefix(const std::string& prefix) {
    const auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; };
    const auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
    bool ok = !prefix.empty() && head(prefix[0]);
    for (char c : prefix) ok = ok && tail(c);
    if (!ok)
        throw ConfigError("prefix", "expected a Prometheus name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got '" + prefix + "'");
    return prefix;
}

// host:port (IPv6 as [addr]:port); port 0 lets the system choose.
std::string checked_listen(const std::string& listen) {
    const auto refuse = [&](const std::string& why) {
        return ConfigError("listen", "expected host:port such as 127.0.0.1:9464 (" + why + "), got '" + listen + "'");
    };
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) throw refuse("no port");
    const std::string host = listen.substr(0, colon);
    const std::string port = listen.substr(colon + 1);
    if (host.empty()) throw refuse("no host");
    if (host.find_first_of(" \t/,") != std::string::npos) throw refuse("bad host");
    if (host.front() == '[' ? host.back() != ']' : host.find(':') != std::string::npos)
        throw refuse("write IPv6 addresses as [addr]:port");
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
        throw refuse("port must be a number from 0 to 65535");
    return listen;
}

std::string_view eviction_reason(std::string_view reason) {
    for (std::string_view known : {"lru", "idle", "error", "manual"})
        if (reason == known) return known;
    return other_tenant;  // keeps the label set bounded whatever a future kernel sends
}

struct Connections {
    int64_t active = 0, idle = 0, waiting = 0;
};

struct ConnectionSeries {
    prometheus::Gauge* active = nullptr;
    prometheus::Gauge* idle = nullptr;
    prometheus::Gauge* waiting = nullptr;
    void set(const Connections& c) const {
        active->Set(static_cast<double>(c.active));
        idle->Set(static_cast<double>(c.idle));
        waiting->Set(static_cast<double>(c.waiting));
    }
};

const prometheus::Histogram::BucketBoundaries query_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const prometheus::Histogram::BucketBoundaries migration_buckets{0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                                 5,    10,   30,  60,   120, 300, 600};

class PrometheusSink final : public MetricsSink {
public:
    PrometheusSink(const Config& config, const Host& host)
        : labels_(parse_tenant_labels(config.get("tenant_labels", "top:100"))),
          registry_(std::make_shared<prometheus::Registry>()) {
        const std::string p = checked_prefix(config.get("prefix", "mt"));
        auto& r = *registry_;
        pools_active_ = &prometheus::BuildGauge().Name(p + "_pools_active").Help("Live connection pools").Register(r).Add({});
        pools_max_ = &prometheus::BuildGauge().Name(p + "_pools_max").Help("Cap on live tenant pools (max_pools)").Register(r).Add({});
        connections_ = &prometheus::BuildGauge()
                            .Name(p + "_pool_connections")
                            .Help("Connections of a pool by state; tenant bounded by tenant_labels")
                            .Register(r);
        evictions_ = &prometheus::BuildCounter().Name(p + "_pool_evictions_total").Help("Pools evicted, by reason").Register(r);
        query_duration_ = &prometheus::BuildHistogram()
                               .Name(p + "_query_duration_seconds")
                               .Help("Duration of observed queries")
                               .Register(r)
                               .Add({}, query_buckets);
        auto& queries = prometheus::BuildCounter().Name(p + "_queries_total").Help("Observed queries, by status").Register(r);
        queries_ok_ = &queries.Add({{"status", "ok"}});
        queries_error_ = &queries.Add({{"status", "error"}});
        // A write whose connection broke after it was sent (mt::OutcomeUnknown): counted apart.
        queries_unknown_ = &queries.Add({{"status", "outcome_unknown"}});
        retries_ = &prometheus::BuildCounter().Name(p + "_retries_total").Help("Retries made by the retry policy").Register(r).Add({});
        migrations_applied_ = &prometheus::BuildCounter()
                                   .Name(p + "_migrations_applied_total")
                                   .Help("Migrations applied successfully")
                                   .Register(r)
                                   .Add({});
        migrations_failed_ =
            &prometheus::BuildCounter().Name(p + "_migrations_failed_total").Help("Migrations that failed").Register(r).Add({});
        migration_duration_ = &prometheus::BuildHistogram()
                                   .Name(p + "_migration_duration_seconds")
                                   .Help("Duration of migrations, applied or failed")
                                   .Register(r)
                                   .Add({}, migration_buckets);
        // No series until the first health check: a 0 before any check would read as unhealthy.
        health_ = &prometheus::BuildGauge()
                       .Name(p + "_health_status")
                       .Help("1 when the last health check was healthy, else 0")
                       .Register(r);
        // Fleet gauges (mtctl serve); like health, absent until the first snapshot.
        pending_ = &prometheus::BuildGauge()
                        .Name(p + "_tenant_pending_migrations")
                        .Help("Pending migrations per tenant; tenant bounded by tenant_labels")
                        .Register(r);
        tenants_ = &prometheus::BuildGauge().Name(p + "_tenants").Help("Tenants discovered").Register(r);
        drift_groups_ = &prometheus::BuildGauge()
                             .Name(p + "_drift_groups")
                             .Help("Distinct tenant schema structures (1 = no drift)")
                             .Register(r);

        if (config.has("listen")) {
            const std::string listen = checked_listen(config.get("listen"));
            try {
                exposer_ = std::make_unique<prometheus::Exposer>(listen);
            } catch (const std::exception& e) {
                throw Error("listen: cannot serve /metrics on " + listen + ": " + e.what());
            }
            exposer_->RegisterCollectable(registry_);
            for (int port : exposer_->GetListeningPorts())
                host.log(MT_LOG_INFO, "serving /metrics on port " + std::to_string(port));
        }
    }

    void on_event(const mt_event& e) noexcept override {
        try {
            handle(e);
        } catch (...) {
            // A metric that cannot be recorded must never break the operation it observes.
        }
    }

    bool can_render() const override { return true; }

    std::string render() override { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

private:
    void handle(const mt_event& e) {
        switch (e.type) {
        case MT_EVENT_QUERY:
            query_duration_->Observe(e.duration_s);
            (e.ok ? queries_ok_ : (view(e.reason) == "outcome_unknown" ? queries_unknown_ : queries_error_))->Increment();
            break;
        case MT_EVENT_RETRY:
            retries_->Increment();
            break;
        case MT_EVENT_MIGRATION:
            migration_duration_->Observe(e.duration_s);
            (e.ok ? migrations_applied_ : migrations_failed_)->Increment();
            break;
        case MT_EVENT_HEALTH:
            // Per-pool results carry a tenant; the overall verdict does not.
            if (view(e.tenant).empty()) health_->Add({}).Set(e.ok ? 1 : 0);
            break;
        case MT_EVENT_POOL_CREATED:
            pool_counts(e, +1);
            touch(std::string(view(e.tenant)));
            break;
        case MT_EVENT_POOL_EVICTED:
            pool_counts(e, -1);
            evictions_->Add({{"reason", std::string(eviction_reason(view(e.reason)))}}).Increment();
            forget(std::string(view(e.tenant)));
            break;
        case MT_EVENT_POOL_STATS:
            if (e.pools_max > 0) {
                pools_active_->Set(static_cast<double>(e.pools_active));
                pools_max_->Set(static_cast<double>(e.pools_max));
            }
            update(std::string(view(e.tenant)), Connections{e.active, e.idle, e.waiting});
            break;
        case MT_EVENT_FLEET:
            fleet(e);
            break;
        default:
            break;  // an event type newer than this plugin
        }
    }

    // An event that carries the fleet numbers (pools_max > 0) is taken as is; otherwise the count
    // of live pools follows creations and evictions.
    void pool_counts(const mt_event& e, int delta) {
        std::lock_guard lock(mutex_);
        if (e.pools_max > 0) {
            pools_active_->Set(static_cast<double>(e.pools_active));
            pools_max_->Set(static_cast<double>(e.pools_max));
        } else if (delta > 0) {
            pools_active_->Increment();
        } else if (pools_active_->Value() > 0) {
            pools_active_->Decrement();
        }
    }

    ConnectionSeries series_for(const std::string& label) {
        return ConnectionSeries{&connections_->Add({{"tenant", label}, {"state", "active"}}),
                                &connections_->Add({{"tenant", label}, {"state", "idle"}}),
                                &connections_->Add({{"tenant", label}, {"state", "waiting"}})};
    }

    // Whether a tenant is shown under its own label. One slot set serves every tenant-labelled
    // metric, so the same tenants are labelled everywhere. Caller holds mutex_.
    bool own_label(const std::string& tenant) {
        switch (labels_.mode) {
        case LabelMode::none: return false;
        case LabelMode::all: return true;
        case LabelMode::top:
            if (slots_.count(tenant)) return true;
            if (slots_.size() >= labels_.top) return false;
            slots_.insert(tenant);
            return true;
        }
        return false;
    }

    // The shared pool (empty tenant) is one series of its own and takes no tenant slot.
    bool own_pool_series(const std::string& tenant) { return tenant.empty() || own_label(tenant); }

    // Gives a tenant its label slot (or its place under "other") when its pool first appears.
    void touch(const std::string& tenant) {
        std::lock_guard lock(mutex_);
        if (own_pool_series(tenant)) {
            if (!pool_series_.count(tenant)) {
                auto s = series_for(tenant);
                s.set({});
                pool_series_.emplace(tenant, s);
            }
        } else {
            in_other_.try_emplace(tenant);
            other().set(other_sum_);
        }
    }

    void update(const std::string& tenant, const Connections& now) {
        std::lock_guard lock(mutex_);
        if (own_pool_series(tenant)) {
            auto it = pool_series_.find(tenant);
            if (it == pool_series_.end()) it = pool_series_.emplace(tenant, series_for(tenant)).first;
            it->second.set(now);
            return;
        }
        // "other" is the sum over the tenants folded into it, so each one's last numbers are kept.
        Connections& last = in_other_[tenant];
        other_sum_.active += now.active - last.active;
        other_sum_.idle += now.idle - last.idle;
        other_sum_.waiting += now.waiting - last.waiting;
        last = now;
        other().set(other_sum_);
    }

    // A closed pool has no connections. With tenant_labels = all its series go away with it; a
    // top:N slot stays with its tenant (the first N seen keep their label).
    void forget(const std::string& tenant) {
        std::lock_guard lock(mutex_);
        if (auto it = pool_series_.find(tenant); it != pool_series_.end()) {
            if (labels_.mode == LabelMode::all && !tenant.empty()) {
                connections_->Remove(it->second.active);
                connections_->Remove(it->second.idle);
                connections_->Remove(it->second.waiting);
                pool_series_.erase(it);
            } else {
                it->second.set({});
            }
            return;
        }
        if (auto it = in_other_.find(tenant); it != in_other_.end()) {
            other_sum_.active -= it->second.active;
            other_sum_.idle -= it->second.idle;
            other_sum_.waiting -= it->second.waiting;
            in_other_.erase(it);
            other().set(other_sum_);
        }
    }

    const ConnectionSeries& other() {
        if (!other_series_.active) other_series_ = series_for(std::string(other_tenant));
        return other_series_;
    }

    // `mtctl serve` sends one FLEET event per tenant, then a summary with an empty tenant. The
    // per-tenant numbers are gathered and published at the summary, replacing the previous
    // snapshot whole: a tenant dropped since then loses its series, and "other" is a fresh sum.
    void fleet(const mt_event& e) {
        std::lock_guard lock(mutex_);
        const std::string tenant(view(e.tenant));
        if (!tenant.empty()) {
            fleet_next_[own_label(tenant) ? tenant : std::string(other_tenant)] += e.pending;
            return;
        }
        for (auto it = fleet_published_.begin(); it != fleet_published_.end();) {
            if (fleet_next_.count(it->first)) {
                ++it;
            } else {
                pending_->Remove(it->second);
                it = fleet_published_.erase(it);
            }
        }
        for (const auto& [label, pending] : fleet_next_) {
            auto it = fleet_published_.find(label);
            if (it == fleet_published_.end()) it = fleet_published_.emplace(label, &pending_->Add({{"tenant", label}})).first;
            it->second->Set(static_cast<double>(pending));
        }
        fleet_next_.clear();
        tenants_->Add({}).Set(static_cast<double>(e.tenants));
        if (e.drift_groups >= 0) {
            drift_groups_->Add({}).Set(static_cast<double>(e.drift_groups));
        } else if (drift_groups_->Has({})) {
            drift_groups_->Remove(&drift_groups_->Add({}));  // not computed this time: no number beats a stale one
        }
    }

    const TenantLabels labels_;
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Gauge* pools_active_ = nullptr;
    prometheus::Gauge* pools_max_ = nullptr;
    prometheus::Family<prometheus::Gauge>* connections_ = nullptr;
    prometheus::Family<prometheus::Counter>* evictions_ = nullptr;
    prometheus::Histogram* query_duration_ = nullptr;
    prometheus::Counter* queries_ok_ = nullptr;
    prometheus::Counter* queries_error_ = nullptr;
    prometheus::Counter* queries_unknown_ = nullptr;
    prometheus::Counter* retries_ = nullptr;
    prometheus::Counter* migrations_applied_ = nullptr;
    prometheus::Counter* migrations_failed_ = nullptr;
    prometheus::Histogram* migration_duration_ = nullptr;
    prometheus::Family<prometheus::Gauge>* health_ = nullptr;

    prometheus::Family<prometheus::Gauge>* pending_ = nullptr;
    prometheus::Family<prometheus::Gauge>* tenants_ = nullptr;
    prometheus::Family<prometheus::Gauge>* drift_groups_ = nullptr;

    std::mutex mutex_;  // guards the pool counts and the tenant label bookkeeping below
    std::unordered_set<std::string> slots_;  // top:N: the tenants that have their own label
    std::unordered_map<std::string, ConnectionSeries> pool_series_;
    std::unordered_map<std::string, Connections> in_other_;
    Connections other_sum_;
    ConnectionSeries other_series_;
    std::unordered_map<std::string, int64_t> fleet_next_;                  // label -> pending, being gathered
    std::unordered_map<std::string, prometheus::Gauge*> fleet_published_;  // label -> its series

    // Declared last: stops serving before the registry it reads goes away.
    std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace

MT_PLUGIN("metrics-prometheus", MT_SDK_VERSION,
          MT_FACTORY(PrometheusSink, "metrics-prometheus", "prefix", "listen", "tenant_labels"))
