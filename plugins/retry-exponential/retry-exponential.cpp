// retry-exponential: retries transient failures (SPEC §5.1) with exponential back-off. The delay
// before attempt n+1 is min(initial_delay * multiplier^(n-1), max_delay), rounded to the nearest
// millisecond; with jitter it is drawn uniformly from [delay/2, delay] so that many workers hitting
// the same restart do not retry in step.
#include <mt/sdk/plugin.hpp>

#include <cmath>
#include <mutex>
#include <random>

namespace {

using namespace mt::sdk;
using std::chrono::milliseconds;

constexpr long long max_attempts_limit = 1000;
// A retry delay blocks the caller (a connect, a migration): anything longer is a typo.
constexpr milliseconds longest_delay = std::chrono::hours(1);

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

int attempts_of(const Config& config) {
    const long long n = config.get_int("max_attempts", 3);
    if (n < 1 || n > max_attempts_limit)
        throw ConfigError("max_attempts", "must be between 1 and " + std::to_string(max_attempts_limit) +
                                              " (it counts the first try), got '" + config.get("max_attempts") + "'");
    return static_cast<int>(n);
}

// Like Config::get_duration, but a value too large to be a sensible delay (or to fit the count
// without overflow) is refused rather than wrapped.
milliseconds delay_of(const Config& config, const std::string& key, milliseconds fallback) {
    if (!config.has(key)) return fallback;
    const std::string text = config.get(key);
    const size_t digits = text.find_first_not_of("0123456789");
    const auto too_long = [&] {
        return ConfigError(key, "must be at most 1h (a retry delay blocks the caller), got '" + text + "'");
    };
    // Ten digits of hours still fit a 64-bit count of milliseconds; more would overflow it.
    if ((digits == std::string::npos ? text.size() : digits) > 10) throw too_long();
    const milliseconds d = config.get_duration(key, fallback);
    if (d > longest_delay) throw too_long();
    return d;
}

std::string show(milliseconds d) {
    const long long ms = d.count();
    if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
    if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
    if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

class ExponentialRetry final : public RetryPolicy {
public:
    ExponentialRetry(const Config& config, const Host&)
        : max_attempts_(attempts_of(config)),
          initial_(delay_of(config, "initial_delay", milliseconds(100))),
          max_(delay_of(config, "max_delay", std::chrono::seconds(5))),
          multiplier_(config.get_double("multiplier", 2.0)),
          jitter_(config.get_bool("jitter", true)),
          rng_(std::random_device{}()) {
        // stod reads "nan" and "inf": neither is a growth factor.
        if (!std::isfinite(multiplier_) || multiplier_ < 1.0)
            throw ConfigError("multiplier", "must be a finite number of at least 1, got '" + config.get("multiplier") + "'");
        if (max_ < initial_) {
            // Name the key the operator wrote: with max_delay left at its default, that is initial_delay.
            if (config.has("max_delay"))
                throw ConfigError("max_delay", show(max_) + " is shorter than initial_delay (" + show(initial_) +
                                                   "); set max_delay to at least initial_delay");
            throw ConfigError("initial_delay", show(initial_) + " is longer than max_delay (" + show(max_) +
                                                   ", its default); lower it or set max_delay too");
        }
    }

    std::optional<milliseconds> decide(const Failure& failure) override {
        if (failure.attempt >= max_attempts_ || !retryable(failure)) return std::nullopt;
        const int exponent = std::max(failure.attempt, 1) - 1;
        // pow may reach infinity for a large exponent; min() then yields the cap.
        const double base = static_cast<double>(initial_.count()) * std::pow(multiplier_, exponent);
        long long delay = std::llround(std::min(base, static_cast<double>(max_.count())));
        if (jitter_ && delay > 1) {
            std::lock_guard lock(mutex_);
            delay = std::uniform_int_distribution<long long>((delay + 1) / 2, delay)(rng_);
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

MT_PLUGIN("retry-exponential", MT_SDK_VERSION,
          MT_FACTORY(ExponentialRetry, "retry-exponential", "max_attempts", "initial_delay", "max_delay", "multiplier",
                     "jitter"))
