// Waiting for a condition with a deadline, instead of sleeping and assuming that something
// happened meanwhile. The deadline only matters when the test fails: on a loaded machine the
// condition simply takes longer to become true.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace mt::test {

// Long enough for a 2-core machine running seven builds; a passing test never waits for it.
inline constexpr std::chrono::milliseconds kDefaultDeadline{30000};

// Checks `done` every `every` until it returns true or `within` has passed; returns the last
// answer. For support code that reports a timeout its own way (and for threads other than the
// test's, where Catch's assertions must not be used).
template <class Predicate>
bool poll_until(Predicate&& done, std::chrono::milliseconds within = kDefaultDeadline,
                std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return done();
        std::this_thread::sleep_for(every);
    }
}

// The same, failing the test with `what` (the condition waited for) on timeout.
template <class Predicate>
void wait_until(Predicate&& done, const std::string& what, std::chrono::milliseconds within = kDefaultDeadline,
                std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
    if (!poll_until(done, within, every))
        FAIL("timed out after " << within.count() << " ms waiting for: " << what);
}

}  // namespace mt::test
