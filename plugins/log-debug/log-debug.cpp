// log-debug: one line per kernel event in the formats of SPEC §8, through a dedicated spdlog logger
// (pattern "%v", so every line starts with "[mt]"). Statements and errors are scrubbed of passwords
// and statements cut at 200 characters here too, whatever the kernel already did: a sink that
// writes text is the last place a secret can be stopped.
#include <mt/sdk/plugin.hpp>

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace {

using namespace mt::sdk;
using std::chrono::milliseconds;

constexpr size_t max_statement_chars = 200;
constexpr std::string_view redacted = "***";

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool starts_with_nocase(std::string_view text, size_t at, std::string_view word) {
    if (text.size() - at < word.size()) return false;
    for (size_t i = 0; i < word.size(); ++i)
        if (lower(text[at + i]) != word[i]) return false;
    return true;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// End of a quoted value starting at text[open] (the quote); backslash escapes and SQL's doubled
// quote are both taken as part of the value.
size_t quoted_end(std::string_view text, size_t open) {
    const char q = text[open];
    size_t i = open + 1;
    while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            i += 2;
        } else if (text[i] == q && i + 1 < text.size() && text[i + 1] == q) {
            i += 2;
        } else if (text[i] == q) {
            return i + 1;
        } else {
            ++i;
        }
    }
    return i;
}

// password=secret, password='se cret', "password": "x", ?password=x&…, PGPASSWORD=x, and SQL's
// PASSWORD 'secret' all lose their value.
std::string scrub_key_values(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t copied = 0;
    for (size_t at = 0; at < text.size(); ++at) {
        if (!starts_with_nocase(text, at, "password")) continue;
        size_t i = at + 8;
        if (i < text.size() && (text[i] == '"' || text[i] == '\'')) ++i;  // end of a quoted key
        while (i < text.size() && is_space(text[i])) ++i;
        bool separator = false;
        if (i < text.size() && (text[i] == '=' || text[i] == ':')) {
            separator = true;
            ++i;
            while (i < text.size() && is_space(text[i])) ++i;
        }
        if (i >= text.size()) break;
        size_t end;
        if (text[i] == '\'' || text[i] == '"') {
            end = quoted_end(text, i);
        } else if (separator) {
            end = i;
            while (end < text.size() && !is_space(text[end]) && text[end] != '&' && text[end] != ';' &&
                   text[end] != ',' && text[end] != ')' && text[end] != '}')
                ++end;
        } else {
            continue;  // "password" as a word, not followed by a value
        }
        if (end == i) continue;
        out.append(text.substr(copied, i - copied));
        out.append(redacted);
        copied = end;
        at = end - 1;
    }
    out.append(text.substr(copied));
    return out;
}

// scheme://user:secret@host → scheme://user:***@host. The user-info is everything up to an '@'
// before any space or quote, so a password holding '/' or '?' is caught too.
std::string scrub_urls(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t copied = 0;
    for (size_t scheme = text.find("://"); scheme != std::string_view::npos; scheme = text.find("://", scheme + 3)) {
        const size_t start = scheme + 3;
        if (start < copied) continue;  // inside user-info already redacted
        size_t at = start;
        while (at < text.size() && text[at] != '@' && !is_space(text[at]) && text[at] != '"' && text[at] != '\'')
            ++at;
        if (at >= text.size() || text[at] != '@') continue;
        const size_t colon = text.find(':', start);
        if (colon == std::string_view::npos || colon > at) continue;
        out.append(text.substr(copied, colon + 1 - copied));
        out.append(redacted);
        copied = at;
    }
    out.append(text.substr(copied));
    return out;
}

std::string scrub(std::string_view text) { return scrub_key_values(scrub_urls(text)); }

// At most `limit` UTF-8 characters; a cut text ends with "…".
std::string cut(std::string text, size_t limit) {
    size_t chars = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
        if (chars == limit) {
            text.resize(i);
            text += "\u2026";
            return text;
        }
        ++chars;
    }
    return text;
}

// A value inside "…" on a single line.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
        }
    }
    return out + '"';
}

std::string ms(double seconds) {
    const double m = seconds * 1000.0;
    if (m > 0 && m < 1) {
        std::string s = std::to_string(m);  // sub-millisecond: two decimals say more than "0ms"
        return s.substr(0, s.find('.') + 3) + "ms";
    }
    return std::to_string(std::llround(m)) + "ms";
}

spdlog::level::level_enum parse_level(const std::string& text) {
    static const std::pair<std::string_view, spdlog::level::level_enum> levels[] = {
        {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
        {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off}};
    for (const auto& [name, level] : levels)
        if (text == name) return level;
    throw ConfigError("level", "expected trace, debug, info, warn, error or off, got '" + text + "'");
}

class DebugLogSink final : public MetricsSink {
public:
    DebugLogSink(const Config& config, const Host&)
        : log_queries_(config.get_bool("log_queries", true)),
          log_pool_events_(config.get_bool("log_pool_events", true)),
          slow_(config.get_duration("slow_query_threshold", std::chrono::seconds(1))) {
        const auto level = parse_level(config.get("level", "debug"));
        spdlog::sink_ptr sink;
        const std::string file = config.get("file");
        if (!file.empty()) {
            try {
                sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false);
            } catch (const std::exception& e) {
                throw ConfigError("file", "cannot open '" + file + "' for appending: " + e.what());
            }
        } else {
            sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        }
        // Not registered with spdlog: two instances never clash and the app's default logger,
        // pattern and level are left alone.
        logger_ = std::make_shared<spdlog::logger>("mt.log-debug", std::move(sink));
        logger_->set_pattern("%v");
        logger_->set_level(level);
        logger_->flush_on(spdlog::level::trace);
    }

    void on_event(const mt_event& e) noexcept override {
        try {
            handle(e);
        } catch (...) {
            // A log line that cannot be written must never break the operation it observes.
        }
    }

private:
    // Query lines are debug, pool and migration lines info, slow queries, failures and retries warn:
    // `level` picks how much of that is written.
    void handle(const mt_event& e) {
        switch (e.type) {
        case MT_EVENT_QUERY: {
            const bool slow = slow_.count() > 0 && e.duration_s >= static_cast<double>(slow_.count()) / 1000.0;
            if (!slow && !log_queries_ && e.ok) return;
            const auto level = (slow || !e.ok) ? spdlog::level::warn : spdlog::level::debug;
            if (!logger_->should_log(level)) return;
            std::string line = head(e) + (slow ? "SLOW_QUERY " : "") +
                               "query=" + quoted(cut(scrub(view(e.statement)), max_statement_chars)) +
                               " duration=" + ms(e.duration_s);
            if (!e.ok) line += " error=" + quoted(scrub(view(e.error)));
            write(level, line);
            break;
        }
        case MT_EVENT_POOL_CREATED:
            if (log_pool_events_) write(spdlog::level::info, head(e) + "POOL_CREATED schema=" + std::string(view(e.schema)));
            break;
        case MT_EVENT_POOL_EVICTED:
            if (log_pool_events_) {
                const auto reason = view(e.reason);
                write(spdlog::level::info,
                      head(e) + "POOL_EVICTED reason=" + (reason.empty() ? std::string("unknown") : std::string(reason)));
            }
            break;
        case MT_EVENT_POOL_STATS:
            if (log_pool_events_)
                write(spdlog::level::trace, head(e) + "POOL_STATS active=" + std::to_string(e.active) +
                                                " idle=" + std::to_string(e.idle) +
                                                " waiting=" + std::to_string(e.waiting) +
                                                " pools=" + std::to_string(e.pools_active) + "/" +
                                                std::to_string(e.pools_max));
            break;
        case MT_EVENT_RETRY:
            write(spdlog::level::warn, head(e) + "CONNECTION_RETRY attempt=" + std::to_string(e.attempt) + "/" +
                                           std::to_string(e.max_attempts) + " delay=" + ms(e.delay_s) +
                                           " error=" + quoted(scrub(view(e.error))));
            break;
        case MT_EVENT_MIGRATION: {
            std::string line = head(e) + "MIGRATION name=" + std::string(view(e.name)) +
                               " duration=" + ms(e.duration_s) + " ok=" + (e.ok ? "true" : "false");
            if (!e.ok) line += " error=" + quoted(scrub(view(e.error)));
            write(e.ok ? spdlog::level::info : spdlog::level::warn, line);
            break;
        }
        case MT_EVENT_HEALTH: {
            std::string line = head(e) + "HEALTH healthy=" + (e.ok ? "true" : "false") + " duration=" + ms(e.duration_s);
            if (!view(e.error).empty()) line += " error=" + quoted(scrub(view(e.error)));
            write(e.ok ? spdlog::level::info : spdlog::level::warn, line);
            break;
        }
        case MT_EVENT_FLEET:
            // mtctl serve's snapshot: one line per tenant (trace, there may be thousands), one summary.
            if (!view(e.tenant).empty()) {
                write(spdlog::level::trace, head(e) + "FLEET pending=" + std::to_string(e.pending));
            } else {
                std::string line = "[mt] FLEET tenants=" + std::to_string(e.tenants) + " pending=" + std::to_string(e.pending);
                if (e.drift_groups >= 0) line += " drift_groups=" + std::to_string(e.drift_groups);
                write(spdlog::level::debug, line);
            }
            break;
        default:
            break;  // an event type newer than this plugin
        }
    }

    // "[mt] tenant=abc "; events about no tenant (the shared schema, the whole fleet) omit it.
    static std::string head(const mt_event& e) {
        const auto tenant = view(e.tenant);
        return tenant.empty() ? std::string("[mt] ") : "[mt] tenant=" + std::string(tenant) + " ";
    }

    void write(spdlog::level::level_enum level, const std::string& line) {
        if (logger_->should_log(level)) logger_->log(level, spdlog::string_view_t(line.data(), line.size()));
    }

    bool log_queries_;
    bool log_pool_events_;
    milliseconds slow_;
    std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

MT_PLUGIN("log-debug", MT_SDK_VERSION,
          MT_FACTORY(DebugLogSink, "log-debug", "log_queries", "log_pool_events", "slow_query_threshold", "file",
                     "level"))
