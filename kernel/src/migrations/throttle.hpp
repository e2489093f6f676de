// migrate's throttle (issue 14, docs/rollouts.md "Throttling"): one probe connection shared by
// every worker, asked at most once per probe interval, and the adaptive worker count of
// `--concurrency auto` (kernel-private).
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/migrations/rollout.hpp>

#include <chrono>
#include <condition_variable>
#include <stop_token>
#include <thread>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

namespace mt {

// The limits in force: the flags over the manifest's [rollout] keys.
struct ThrottleSettings {
    std::optional<std::chrono::milliseconds> max_replica_lag;
    std::optional<int> max_active_backends;
    std::optional<int> max_lock_waits;
    std::chrono::milliseconds timeout = kDefaultThrottleTimeout;
    std::vector<std::string> replicas;
    bool any_limit() const { return max_replica_lag || max_active_backends || max_lock_waits; }
};
ThrottleSettings resolve_throttle(const Manifest& manifest, const ThrottleOptions& flags);

// A worker asks wait_turn() before each tenant and between a tenant's migrations. One probe thread
// asks the server once per probe interval on one connection, for every worker; wait_turn() returns
// at once while the last answer is within the limits and blocks (no new migration starts) while it
// is not. A wait that outlasts the timeout ends the probing: wait_turn() then returns false.
class Throttle {
public:
    static constexpr std::chrono::milliseconds kProbeInterval{200};

    Throttle(const Kernel& kernel, ThrottleSettings settings, std::function<void(const std::string&)> on_change);
    ~Throttle();
    Throttle(const Throttle&) = delete;
    Throttle& operator=(const Throttle&) = delete;

    // A backend of this run: not counted among the other backends.
    void own(int pid);
    void own(const std::vector<int>& pids);
    // Blocks while a limit is exceeded; false once one wait outlasted the timeout (then at once).
    bool wait_turn();
    // For the concurrency controller: the latest probe's round trip, and whether a limit was
    // exceeded since the last call.
    double probe_latency_ms();
    bool take_throttled();
    bool timed_out();
    // Fills the run's summary (and the stop reason's wording).
    ThrottleSummary summary();
    std::string timeout_text() const;
    std::string stopped_by();  // the kind of limit in force when the timeout passed

private:
    struct Verdict {
        bool over = false;
        std::string kind;    // "replica lag", "active backends", "lock waits", "a failed probe"
        std::string reason;  // with the figures: "replica lag 3.4 s > 1s (walreceiver at 127.0.0.1)"
    };
    void run(std::stop_token stop);
    Verdict probe(const std::set<int>& own);
    Verdict replica_lag(pqxx::transaction_base& tx, int64_t current_lsn, std::chrono::steady_clock::time_point now);
    struct Lag {
        std::chrono::milliseconds lag{0};
        bool before_first_probe = false;  // behind WAL already there at the first probe
    };
    Lag lag_behind(int64_t replay_lsn, std::chrono::steady_clock::time_point now) const;
    void note(const std::string& text);

    const Kernel& kernel_;
    ThrottleSettings settings_;
    std::function<void(const std::string&)> on_change_;

    std::mutex mutex_;
    std::condition_variable_any wake_;
    // The probe thread's own: its connections and the WAL history.
    std::unique_ptr<pqxx::connection> conn_;
    std::vector<std::unique_ptr<pqxx::connection>> replica_conns_;
    std::set<int> own_;
    // (first seen, primary WAL position): when the primary's WAL first reached each position, so
    // that a replica's lag is how long ago the first WAL it has not replayed appeared.
    std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> wal_history_;
    bool origin_kept_ = false;  // wal_history_.front() is the first probe's sample
    bool probed_ = false;
    Verdict last_;
    double latency_ms_ = 0;
    bool throttled_since_taken_ = false;
    bool waiting_ = false;
    std::chrono::steady_clock::time_point wait_start_{};
    bool timed_out_ = false;
    std::string stopped_by_;
    std::string shown_;
    ThrottleSummary summary_;
    std::jthread prober_;  // last: stopped and joined before the rest goes
};

// `--concurrency auto`: gates the workers (started at the controller's maximum) so that at most
// target() tenants run at once, and feeds the controller once per window.
class AdaptiveConcurrency {
public:
    static constexpr std::chrono::milliseconds kWindow{1000};
    AdaptiveConcurrency(int start, int max, Throttle* throttle);
    // Waits for a slot (released by finish()).
    void acquire();
    void finish();
    ConcurrencySummary summary();

private:
    ConcurrencyController controller_;
    Throttle* throttle_;
    std::mutex mutex_;
    std::condition_variable freed_;
    int running_ = 0;
    int start_;
    size_t finished_in_window_ = 0;
    std::chrono::steady_clock::time_point window_start_;
    size_t adjustments_ = 0;
};

// The most workers `--concurrency auto` may use against the server: half the connections left
// (max_connections − superuser_reserved_connections − backends now), between 1 and 64.
int auto_concurrency_max(pqxx::connection& conn);

}  // namespace mt
