// retry-exponential: retries transient failures (SPEC §5.1) with exponential back-off. The delay
// before attempt n+1 is min(initial_delay * multiplier^(n-1), max_delay); with jitter it is drawn
// uniformly from [delay/2, delay] so that many workers hitting the same restart do not retry in step.
#include <mt/sdk/plugin.hpp>

#include <cmath>
#include <mutex>
#include <random>

namespace {

using namespace mt::sdk;
using std::chrono::milliseconds;

bool retryable(const Failure& f) {
    if (f.is_connection) return true;
    const std::string& s = f.sqlstate;
    if (s.size() != 5) return false;
    if (s.compare(0, 2, "08") == 0) return true;  // connection exception
    static const char* const transient[] = {"57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03"};
    for (const char* t : transient)
        if (s == t) return true;
    return false;
}

class ExponentialRetry final : public RetryPolicy {
public:
    ExponentialRetry(const Config& config, const Host&)
        : max_attempts_(static_cast<int>(config.get_int("max_attempts", 3))),
          initial_(config.get_duration("initial_delay", milliseconds(100))),
          max_(config.get_duration("max_delay", std::chrono::seconds(5))),
          multiplier_(config.get_double("multiplier", 2.0)),
          jitter_(config.get_bool("jitter", true)),
          rng_(std::random_device{}()) {
        if (max_attempts_ < 1) throw ConfigError("max_attempts", "must be at least 1 (it counts the first try)");
        if (multiplier_ < 1.0) throw ConfigError("multiplier", "must be at least 1");
        if (max_ < initial_) throw ConfigError("max_delay", "must not be shorter than initial_delay");
    }

    std::optional<milliseconds> decide(const Failure& failure) override {
        if (failure.attempt >= max_attempts_ || !retryable(failure)) return std::nullopt;
        const double base = static_cast<double>(initial_.count()) * std::pow(multiplier_, failure.attempt - 1);
        auto delay = static_cast<long long>(std::min(base, static_cast<double>(max_.count())));
        if (jitter_ && delay > 1) {
            std::lock_guard lock(mutex_);
            delay = std::uniform_int_distribution<long long>(delay / 2, delay)(rng_);
        }
        return milliseconds(delay);
    }

    int max_attempts() const override { return max_attempts_; }

private:
    int max_attempts_;
    milliseconds initial_, max_;
    double multiplier_;
    bool jitter_;
    std::mutex mutex_;
    std::mt19937_64 rng_;
};

}  // namespace

MT_PLUGIN("retry-exponential", "0.1.0",
          MT_FACTORY(ExponentialRetry, "retry-exponential", "max_attempts", "initial_delay", "max_delay", "multiplier",
                     "jitter"))
