// The SDK's configuration parsing (mt/sdk/plugin.hpp: parse_duration and Config), the kernel's
// manifest durations built on it, and two plugins that read durations and numbers through it
// (retry-exponential, log-debug), loaded through the real registry.
// Input: lines "key=value" (the [plugin.NAME] section a plugin would be handed).
//
// Properties:
// - sdk::parse_duration accepts exactly <digits>[ms|s|m|h] whose value fits a 64-bit count of
//   milliseconds, returns that value exactly (checked in 128-bit arithmetic), and refuses with
//   std::invalid_argument only, as documented (mt::parse_duration's callers catch only that).
// - mt::parse_duration (manifest keys) agrees with the SDK on everything it accepts.
// - Config's getters refuse only with ConfigError naming the key.
// - retry-exponential either refuses its config at the "config" stage or, created, never asks for
//   a negative delay or one above max_delay, and stops at max_attempts.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/sdk/plugin.hpp>

#include <limits>
#include <map>
#include <memory>
#include <set>

namespace {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// What parse_duration should return for text, or nullopt for a refusal.
std::optional<long long> expected_duration(std::string_view text) {
    size_t i = 0;
    __int128 n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        n = n * 10 + (text[i] - '0');
        if (n > std::numeric_limits<long long>::max()) return std::nullopt;
        ++i;
    }
    if (i == 0) return std::nullopt;
    const std::string_view unit = text.substr(i);
    __int128 factor = 0;
    if (unit.empty() || unit == "ms") factor = 1;
    else if (unit == "s") factor = 1000;
    else if (unit == "m") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else return std::nullopt;
    if (n * factor > std::numeric_limits<long long>::max()) return std::nullopt;
    return static_cast<long long>(n * factor);
}

void check_durations(const std::string& text) {
    const auto expected = expected_duration(text);
    std::optional<long long> sdk_value;
    try {
        sdk_value = mt::sdk::parse_duration(text).count();
    } catch (const std::invalid_argument&) {
    } catch (const std::exception& e) {
        fuzz::violated("sdk::parse_duration refuses with std::invalid_argument only", text + ": " + e.what());
    }
    fuzz::check(sdk_value == expected, "sdk::parse_duration accepts exactly <digits>[ms|s|m|h] that fit, with their value",
                text + " -> " + (sdk_value ? std::to_string(*sdk_value) : "refused") + ", expected " +
                    (expected ? std::to_string(*expected) : "refused"));
    try {
        const long long kernel_value = mt::parse_duration(text).count();
        const auto trimmed = expected_duration(trim(text));
        fuzz::check(trimmed && *trimmed == kernel_value, "mt::parse_duration agrees with the SDK", text);
    } catch (const std::invalid_argument&) {
    } catch (const std::exception& e) {
        fuzz::violated("mt::parse_duration refuses with std::invalid_argument only", text + ": " + e.what());
    }
}

template <class F>
void only_config_errors(const std::string& key, F&& f) {
    try {
        f();
    } catch (const mt::sdk::ConfigError& e) {
        fuzz::check(e.key == key, "a ConfigError names the key it is about", e.what());
    } catch (const std::exception& e) {
        fuzz::violated("Config getters refuse only with ConfigError", e.what());
    }
}

mt::PluginRegistry& registry() {
    static mt::PluginRegistry* r = [] {
        auto* reg = new mt::PluginRegistry({MT_PLUGIN_DIR});  // lives for the whole run
        reg->load("retry-exponential");
        reg->load("log-debug");
        return reg;
    }();
    return *r;
}

void check_retry(const std::map<std::string, std::string>& config) {
    std::shared_ptr<mt::PluginInstance> instance;
    try {
        instance = registry().create("retry-exponential", MT_KIND_RETRY_POLICY, config);
    } catch (const mt::PluginError& e) {
        fuzz::check(e.stage == "config", "retry-exponential refuses a config at the config stage", e.what());
        return;
    }
    const mt::RetryPolicy policy(instance);
    const int max_attempts = policy.max_attempts();
    fuzz::check(max_attempts >= 1 && max_attempts <= 1000, "max_attempts is within 1..1000", std::to_string(max_attempts));
    const auto max_delay = config.count("max_delay") ? mt::sdk::parse_duration(config.at("max_delay")).count() : 5000;
    for (int attempt = 1; attempt <= std::min(max_attempts, 80); ++attempt) {
        const mt::sdk::Failure failure{"", "connection refused", true, attempt};
        const auto delay = policy.decide(failure);
        if (attempt >= max_attempts) {
            fuzz::check(!delay, "no retry after max_attempts", std::to_string(attempt));
        } else {
            fuzz::check(delay.has_value(), "a connection failure before max_attempts is retried", std::to_string(attempt));
            fuzz::check(delay->count() >= 0 && delay->count() <= max_delay, "a retry delay is within 0..max_delay",
                        std::to_string(delay->count()));
        }
    }
}

void check_log_debug(const std::map<std::string, std::string>& config) {
    try {
        registry().create("log-debug", MT_KIND_METRICS_SINK, config);
    } catch (const mt::PluginError& e) {
        fuzz::check(e.stage == "config", "log-debug refuses a config at the config stage", e.what());
    }
}

}  // namespace

// Loading plugins and building kernels once, before the first input's timeout clock starts.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    registry();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::pair<std::string, std::string>> pairs;
    for (auto line : fuzz::split(input, "\n")) {
        const size_t eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        pairs.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
    }
    std::vector<mt_config_entry> entries;
    for (const auto& [k, v] : pairs) {
        check_durations(v);
        entries.push_back({mt::sdk::str(k), mt::sdk::str(v)});
    }
    const mt_config c{entries.data(), entries.size()};
    const mt::sdk::Config config(&c);
    for (const auto& [key, value] : config.values()) {
        only_config_errors(key, [&] { config.get_int(key, 0); });
        only_config_errors(key, [&] { config.get_double(key, 0); });
        only_config_errors(key, [&] { config.get_bool(key, false); });
        only_config_errors(key, [&] { config.get_duration(key, std::chrono::milliseconds(0)); });
        only_config_errors(key, [&] { config.require(key); });
    }

    static const std::set<std::string> retry_keys{"max_attempts", "initial_delay", "max_delay", "multiplier", "jitter"};
    static const std::set<std::string> log_keys{"log_queries", "log_pool_events", "slow_query_threshold"};
    std::map<std::string, std::string> retry_config, log_config;
    for (const auto& [key, value] : config.values()) {
        if (retry_keys.count(key)) retry_config[key] = value;
        if (log_keys.count(key)) log_config[key] = value;
    }
    check_retry(retry_config);
    check_log_debug(log_config);
    return 0;
}
