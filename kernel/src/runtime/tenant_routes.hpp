// The tenant -> server table of a TenantManager (SPEC §9), private to the kernel. It is filled only
// from a discovery that succeeded: a failed discovery keeps the previous table and is retried, an
// empty table is never made up. It is refreshed on a miss (an id the table does not hold), at most
// once per kMissInterval however many ids miss, and when older than kRefreshPeriod by the first
// lookup that notices (refresh-on-use; the other lookups keep the current table meanwhile).
#pragma once

#include <mt/context/kernel.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace mt::detail {

class RouteTable {
public:
    // A flood of unknown ids costs at most one discovery per kMissInterval; the lease of an id
    // missing from the table waits at most that long (plus one discovery) for the refresh.
    static constexpr std::chrono::milliseconds kMissInterval{250};
    // A tenant moved to another server is routed there at most this long after the move.
    static constexpr std::chrono::milliseconds kRefreshPeriod{30000};

    explicit RouteTable(const Kernel& kernel);

    // false without [servers.*]: every tenant is on database.url and discovery is never run.
    bool enabled() const { return enabled_; }

    // The table generation, increased by every successful discovery (0 before the first).
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

    struct Resolution {
        std::optional<std::string> server;  // nullopt: database.url
        uint64_t generation = 0;            // of the table that answered
        bool listed = false;                // the id is in that table (else: the default server)
    };

    // The server of `id`. `confirmed_after`: a generation whose table was already asked about this
    // id (0: never); an id missing from a newer table, or whose absence a discovery after an earlier
    // miss confirmed, is taken as absent (default server) without another discovery; otherwise a
    // miss refreshes (rate-limited, coalesced). Throws when no table can answer: discovery never
    // succeeded, or it failed on the miss for this id.
    Resolution resolve(const std::string& id, uint64_t confirmed_after = 0);

    // Runs discovery when the table is older than kRefreshPeriod and no other thread is already
    // doing it; a failure is logged and the table kept. Cheap when fresh (one clock read).
    void refresh_if_stale();

    // Runs discovery now. Throws on failure; the previous table stays.
    void refresh();

private:
    struct Table {
        std::unordered_map<std::string, std::optional<std::string>> servers;
        uint64_t generation = 0;
    };
    std::shared_ptr<const Table> table() const;
    static Resolution answer(const Table& table, const std::string& id);
    // Caller holds refresh_mutex_. Replaces the table or throws (recording the failure).
    void refresh_locked();
    // Caller holds refresh_mutex_. Waits for the next slot of the miss rate limit.
    void wait_for_slot(std::unique_lock<std::mutex>& lock);
    [[noreturn]] void throw_unroutable(const std::string& id) const;

    const Kernel& kernel_;
    const bool enabled_;
    mutable std::shared_mutex table_mutex_;
    std::shared_ptr<const Table> table_;  // null until a discovery succeeded
    std::atomic<uint64_t> generation_{0};
    std::mutex refresh_mutex_;  // one discovery at a time; guards last_error_, last_failure_unavailable_
    // Steady-clock start times of the last discovery attempt and of the last that succeeded (0: never).
    std::atomic<int64_t> last_attempt_ns_{0};
    std::atomic<int64_t> last_success_ns_{0};
    std::string last_error_;  // why the last attempt failed ("" when it succeeded)
    bool last_failure_unavailable_ = false;  // the last failure was an unreachable server
    // Ids a discovery after their miss did not list -> that table's generation; emptied when full.
    std::mutex absent_mutex_;
    std::unordered_map<std::string, uint64_t> absent_;
    static constexpr size_t kAbsentCap = 16384;
};

}  // namespace mt::detail
