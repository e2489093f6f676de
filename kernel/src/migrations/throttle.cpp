// migrate's throttle (issue 14). Replica lag is measured as how long ago the primary's WAL first
// passed the replica's replay position (a history of pg_current_wal_lsn() samples, one per probe):
// pg_stat_replication.replay_lag is NULL or frozen while replay is paused and the primary is idle,
// and now() - pg_last_xact_replay_timestamp() counts an idle primary's quiet time as lag.
#include "migrations/throttle.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/redact.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace mt {

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds_text(std::chrono::milliseconds d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
    return buf;
}

// As the manifest writes durations: 250ms, 2s, 5m, 1h.
std::string duration_text(std::chrono::milliseconds d) {
    const auto ms = d.count();
    if (ms == 0) return "0";
    if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
    if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

// A replica's URL with a connect timeout, so that an unreachable one costs a probe at most that long.
std::string with_connect_timeout(const std::string& url, std::chrono::milliseconds timeout) {
    const std::string seconds = std::to_string(std::max<long long>(1, (timeout.count() + 999) / 1000));
    if (url.find("connect_timeout") != std::string::npos) return url;
    if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0)
        return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=" + seconds;
    return url + " connect_timeout=" + seconds;
}

std::string first_line(std::string text) {
    if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
    return text;
}

}  // namespace

int parse_limit(const std::string& text, const std::string& flag) {
    int n = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, n);
    if (text.empty() || ec != std::errc() || ptr != end || n < 0)
        throw UsageError(flag + " " + text + ": expected a whole number of backends, 0 or more (for example 20)");
    return n;
}

std::chrono::milliseconds parse_duration_flag(const std::string& text, const std::string& flag) {
    try {
        return parse_duration(text);
    } catch (const std::exception&) {
        throw UsageError(flag + " " + text + ": expected a duration: a whole number with ms, s, m or h (for example 2s, 500ms)");
    }
}

ConcurrencyController::ConcurrencyController(int start, int max)
    : max_(std::max(1, max)), target_(std::clamp(start, 1, std::max(1, max))), peak_(target_) {}

int ConcurrencyController::observe(const Observation& o) {
    const double best = best_latency_;
    if (o.probe_latency_ms > 0 && (best_latency_ < 0 || o.probe_latency_ms < best_latency_)) best_latency_ = o.probe_latency_ms;
    auto raise = [&] {
        if (target_ >= max_) return;
        previous_ = target_;
        previous_tps_ = o.tenants_per_second;
        target_ = std::min(max_, target_ + std::max(1, target_ / 2));
    };
    if (o.throttled) {
        target_ = std::max(1, target_ / 2);
        previous_ = 0;
        hold_ = 3;
    } else if (best >= 0 && o.probe_latency_ms > 2 * best && o.probe_latency_ms > best + 20) {
        target_ = std::max(1, target_ - 1);
        previous_ = 0;
        hold_ = 3;
    } else if (previous_ > 0) {
        if (o.tenants_per_second >= previous_tps_ * 1.1) {
            raise();
        } else {
            // The last raise bought nothing: the server is the bottleneck at this level.
            target_ = previous_;
            previous_ = 0;
            hold_ = 5;
        }
    } else if (hold_ > 0) {
        --hold_;
    } else {
        raise();
    }
    peak_ = std::max(peak_, target_);
    return target_;
}

ThrottleSettings resolve_throttle(const Manifest& manifest, const ThrottleOptions& flags) {
    ThrottleSettings s;
    const auto& r = manifest.rollout;
    s.max_replica_lag = flags.max_replica_lag ? flags.max_replica_lag : r.max_replica_lag;
    s.max_active_backends = flags.max_active_backends ? flags.max_active_backends : r.max_active_backends;
    s.max_lock_waits = flags.max_lock_waits ? flags.max_lock_waits : r.max_lock_waits;
    s.timeout = flags.timeout ? *flags.timeout : r.throttle_timeout.value_or(kDefaultThrottleTimeout);
    s.replicas = r.replicas;
    return s;
}

Throttle::Throttle(const Kernel& kernel, ThrottleSettings settings, std::function<void(const std::string&)> on_change)
    : kernel_(kernel), settings_(std::move(settings)), on_change_(std::move(on_change)) {
    summary_.enabled = settings_.any_limit();
    summary_.max_replica_lag = settings_.max_replica_lag;
    summary_.max_active_backends = settings_.max_active_backends;
    summary_.max_lock_waits = settings_.max_lock_waits;
    summary_.timeout = settings_.timeout;
    for (const auto& url : settings_.replicas) summary_.replicas.push_back(redact_url(url));
    replica_conns_.resize(settings_.replicas.size());
    prober_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Throttle::own(const std::vector<int>& pids) {
    std::lock_guard lock(mutex_);
    own_.insert(pids.begin(), pids.end());
}


Throttle::~Throttle() {
    prober_.request_stop();
    if (prober_.joinable()) prober_.join();
}

void Throttle::own(int pid) {
    std::lock_guard lock(mutex_);
    own_.insert(pid);
}

std::string Throttle::timeout_text() const { return duration_text(settings_.timeout); }

std::string Throttle::stopped_by() {
    std::lock_guard lock(mutex_);
    return stopped_by_;
}

void Throttle::note(const std::string& text) {
    if (text == shown_) return;
    shown_ = text;
    if (on_change_) on_change_(text);
}

bool Throttle::wait_turn() {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return timed_out_ || (probed_ && !last_.over); });
    return !timed_out_;
}

// The probe thread: one probe per interval for the whole run, whether or not a worker is asking,
// so that the WAL history has a sample every interval even while every worker is inside a long
// migration (a position first seen late would make the lag look smaller than it is).
void Throttle::run(std::stop_token stop) {
    while (!stop.stop_requested()) {
        std::set<int> own;
        {
            std::lock_guard lock(mutex_);
            own = own_;
        }
        const Verdict v = probe(own);
        std::unique_lock lock(mutex_);
        const auto now = Clock::now();
        last_ = v;
        probed_ = true;
        ++summary_.probes;
        if (v.over) {
            throttled_since_taken_ = true;
            summary_.last_reason = v.reason;
            if (!waiting_) {
                waiting_ = true;
                wait_start_ = now;
                ++summary_.waits;
                spdlog::info("throttled: {}", v.reason);
            }
            note(v.reason);
            if (!timed_out_ && settings_.timeout.count() > 0 && now - wait_start_ >= settings_.timeout) {
                timed_out_ = true;
                stopped_by_ = v.kind;
                spdlog::info("throttle: throttled longer than {} ({}): no further tenant starts",
                             duration_text(settings_.timeout), v.reason);
            }
        } else if (waiting_) {
            waiting_ = false;
            const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - wait_start_);
            summary_.waited_ms += static_cast<double>(waited.count());
            spdlog::info("throttle: resumed after {}", seconds_text(waited));
            note("");
        }
        wake_.notify_all();
        if (timed_out_) {
            // Nothing waits for the probe any more: the run only finishes what is running.
            if (waiting_) {
                summary_.waited_ms += std::chrono::duration<double, std::milli>(now - wait_start_).count();
                waiting_ = false;
            }
            note("");
            return;
        }
        wake_.wait_for(lock, stop, kProbeInterval, [] { return false; });
    }
}

Throttle::Verdict Throttle::probe(const std::set<int>& own) {
    const auto start = Clock::now();
    Verdict v;
    try {
        if (!conn_ || !conn_->is_open()) conn_ = kernel_.connect();
        std::string pids = "{";
        for (int pid : own) pids += (pids.size() > 1 ? "," : "") + std::to_string(pid);
        pids += "}";
        pqxx::nontransaction tx(*conn_);
        // Other client backends of this database: 'active' ones, and those waiting on a
        // heavyweight lock (wait_event_type 'Lock': row, table, advisory, transaction id …).
        const auto row = exec_params(
            tx,
            "SELECT CASE WHEN $2::bool AND NOT pg_is_in_recovery()"
            "  THEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END,"
            " count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE wait_event_type = 'Lock')"
            " FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() AND pid <> ALL ($1::int[])",
            {pids, settings_.max_replica_lag ? "true" : "false"})[0];
        const auto active = row[1].as<int>();
        const auto waits = row[2].as<int>();
        if (settings_.max_replica_lag && !row[0].is_null())
            v = replica_lag(tx, row[0].as<int64_t>(), Clock::now());
        if (!v.over && settings_.max_active_backends && active > *settings_.max_active_backends)
            v = {true, "active backends",
                 "active backends " + std::to_string(active) + " > " + std::to_string(*settings_.max_active_backends)};
        if (!v.over && settings_.max_lock_waits && waits > *settings_.max_lock_waits)
            v = {true, "lock waits", "lock waits " + std::to_string(waits) + " > " + std::to_string(*settings_.max_lock_waits)};
    } catch (const std::exception& e) {
        // A probe that cannot see the server cannot say it is safe to go on (without limits it
        // only measures its latency for --concurrency auto).
        conn_.reset();
        if (settings_.any_limit()) v = {true, "a failed probe", "throttle probe failed: " + first_line(redact_text(e.what()))};
    }
    const double latency = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::lock_guard lock(mutex_);
    latency_ms_ = latency;
    return v;
}

Throttle::Lag Throttle::lag_behind(int64_t replay_lsn, Clock::time_point now) const {
    for (size_t k = 0; k < wal_history_.size(); ++k)
        if (wal_history_[k].second > replay_lsn)
            return {std::chrono::duration_cast<std::chrono::milliseconds>(now - wal_history_[k].first), k == 0 && origin_kept_};
    return {};
}

Throttle::Verdict Throttle::replica_lag(pqxx::transaction_base& tx, int64_t current_lsn, Clock::time_point now) {
    if (wal_history_.empty()) origin_kept_ = true;
    if (wal_history_.empty() || wal_history_.back().second < current_lsn) wal_history_.emplace_back(now, current_lsn);
    struct Seen {
        std::string name;
        std::optional<int64_t> replay;
        // What the server itself says of the lag, for a replica already behind at the first probe.
        std::optional<std::chrono::milliseconds> estimate;
    };
    const auto optional_ms = [](const pqxx::field& f) {
        return f.is_null() ? std::nullopt : std::optional(std::chrono::milliseconds(f.as<int64_t>()));
    };
    std::vector<Seen> replicas;
    // The manifest's replicas first (they win a tie), asked directly: their replay position is
    // current, not the last one they reported to the primary.
    for (size_t i = 0; i < settings_.replicas.size(); ++i) {
        const std::string name = redact_url(settings_.replicas[i]);
        auto& conn = replica_conns_[i];
        try {
            if (!conn || !conn->is_open())
                conn = std::make_unique<pqxx::connection>(
                    with_connect_timeout(settings_.replicas[i], kernel_.manifest().database.connect_timeout));
            pqxx::nontransaction rtx(*conn);
            // now() - pg_last_xact_replay_timestamp() only while WAL waits to be replayed: on an
            // idle primary the last commit may be hours old without the replica being behind.
            const auto row = rtx.exec1(
                "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,"
                " CASE WHEN pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
                "  THEN (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint END");
            if (!row[0].as<bool>())
                return {true, "replica lag", "replica " + name + " is not in recovery: rollout.replicas must list standbys"};
            replicas.push_back({name, row[1].is_null() ? std::nullopt : std::optional(row[1].as<int64_t>()), optional_ms(row[2])});
        } catch (const std::exception& e) {
            conn.reset();
            return {true, "replica lag", "replica " + name + " unreachable: " + first_line(redact_text(e.what()))};
        }
    }
    // Physical standbys streaming from this server (a logical walsender holds a logical slot).
    for (const auto& row :
         tx.exec("SELECT coalesce(nullif(r.application_name, ''), 'walreceiver') || ' at ' ||"
                 " coalesce(host(r.client_addr), 'local socket'), pg_wal_lsn_diff(r.replay_lsn, '0/0')::bigint,"
                 " (extract(epoch FROM r.replay_lag) * 1000)::bigint"
                 " FROM pg_stat_replication r WHERE r.state = 'streaming' AND NOT EXISTS (SELECT 1 FROM"
                 " pg_replication_slots s WHERE s.active_pid = r.pid AND s.slot_type = 'logical') ORDER BY r.pid"))
        replicas.push_back({row[0].as<std::string>(), row[1].is_null() ? std::nullopt : std::optional(row[1].as<int64_t>()),
                            optional_ms(row[2])});
    Verdict worst;
    std::optional<Lag> most;
    int64_t min_replay = current_lsn;
    const std::string limit = duration_text(*settings_.max_replica_lag);
    for (const auto& r : replicas) {
        if (!r.replay) {
            // Visible to superusers and pg_monitor / pg_read_all_stats only, and NULL until the
            // standby first reports.
            return {true, "replica lag", "replica " + r.name +
                                             ": replay position not visible (grant pg_monitor to the migrating role)"};
        }
        min_replay = std::min(min_replay, *r.replay);
        Lag lag = lag_behind(*r.replay, now);
        // Behind WAL that was there at the first probe, since an unknown time: at least since the
        // first probe ("≥"), or the server's own figure where it is larger (the age of the
        // replica's last replayed commit, as gh-ost's heartbeat; the walsender's replay_lag).
        if (lag.before_first_probe && r.estimate) lag.lag = std::max(lag.lag, *r.estimate);
        if (!most || lag.lag > most->lag) {
            most = lag;
            worst = {lag.lag > *settings_.max_replica_lag, "replica lag",
                     "replica lag " + std::string(lag.before_first_probe ? "≥ " : "") + seconds_text(lag.lag) +
                         " (limit " + limit + "; " + r.name + ")"};
        }
    }
    // Positions every replica has replayed are of no further use (the last of them stays as the start).
    while (wal_history_.size() > 1 && wal_history_[1].second <= min_replay) {
        wal_history_.pop_front();
        origin_kept_ = false;
    }
    if (wal_history_.front().second <= min_replay) origin_kept_ = false;
    if (wal_history_.size() > 100000) {
        wal_history_.pop_front();
        origin_kept_ = false;
    }
    if (!worst.over) worst.reason.clear();
    return worst;
}

double Throttle::probe_latency_ms() {
    std::lock_guard lock(mutex_);
    return latency_ms_;
}

bool Throttle::take_throttled() {
    std::lock_guard lock(mutex_);
    const bool was = throttled_since_taken_ || waiting_;
    throttled_since_taken_ = false;
    return was;
}

bool Throttle::timed_out() {
    std::lock_guard lock(mutex_);
    return timed_out_;
}

ThrottleSummary Throttle::summary() {
    std::lock_guard lock(mutex_);
    ThrottleSummary s = summary_;
    if (waiting_) s.waited_ms += std::chrono::duration<double, std::milli>(Clock::now() - wait_start_).count();
    return s;
}

AdaptiveConcurrency::AdaptiveConcurrency(int start, int max, Throttle* throttle)
    : controller_(start, max), throttle_(throttle), start_(controller_.target()), window_start_(Clock::now()) {}

void AdaptiveConcurrency::acquire() {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return running_ < controller_.target(); });
    ++running_;
}

void AdaptiveConcurrency::finish() {
    std::lock_guard lock(mutex_);
    --running_;
    ++finished_in_window_;
    const auto now = Clock::now();
    if (now - window_start_ >= kWindow) {
        ConcurrencyController::Observation o;
        o.tenants_per_second =
            static_cast<double>(finished_in_window_) / std::chrono::duration<double>(now - window_start_).count();
        if (throttle_) {
            o.probe_latency_ms = throttle_->probe_latency_ms();
            o.throttled = throttle_->take_throttled();
        }
        const int before = controller_.target();
        const int after = controller_.observe(o);
        if (after != before) {
            ++adjustments_;
            spdlog::debug("concurrency auto: {} → {} ({:.1f} tenants/s, probe {:.1f} ms{})", before, after,
                          o.tenants_per_second, o.probe_latency_ms, o.throttled ? ", throttled" : "");
        }
        finished_in_window_ = 0;
        window_start_ = now;
    }
    freed_.notify_all();
}

ConcurrencySummary AdaptiveConcurrency::summary() {
    std::lock_guard lock(mutex_);
    ConcurrencySummary s;
    s.automatic = true;
    s.start = start_;
    s.max = controller_.max();
    s.final = controller_.target();
    s.peak = controller_.peak();
    s.adjustments = adjustments_;
    return s;
}

int auto_concurrency_max(pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec1(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
        " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int");
    return std::clamp(row[0].as<int>() / 2, 1, 64);
}

}  // namespace mt
