// The runtime's monotonic clock and its millisecond differences, shared by the pool, leases and
// health checks (one definition, so the runtime's sources can also be compiled together).
#pragma once

#include <chrono>

namespace mt::detail {

using Clock = std::chrono::steady_clock;

inline double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace mt::detail
