// Pass 2 of the manifest (SPEC §7): the fixed key table, each key's parser and check, and
// build_manifest, which turns RawSettings into a Manifest once the plugins' keys are known. Reading
// the file is in manifest_read.cpp, flags and environment variables in manifest_overrides.cpp.
#include "context/manifest_parts.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>
#include <mt/context/manifest_keys.hpp>
#include <mt/sdk/plugin.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <optional>
#include <regex>
#include <stdexcept>

namespace mt {

namespace fs = std::filesystem;
using namespace manifest_detail;

namespace {

struct Value {
    const std::string& key;     // "section.key"
    const std::string& source;  // where it came from
    std::string text;           // trimmed
    fs::path relative_to;       // for paths: base_dir for the file, the working directory otherwise
};

[[noreturn]] void malformed(const Value& v, const std::string& expected) {
    throw ManifestError(v.source, v.key, "expected " + expected + ", got '" + v.text + "'");
}

std::string non_empty(const Value& v, const std::string& expected) {
    if (v.text.empty()) throw ManifestError(v.source, v.key, "must not be empty; expected " + expected);
    return v.text;
}

int at_least_one(const Value& v) {
    int n = 0;
    const char* end = v.text.data() + v.text.size();
    const auto [ptr, ec] = std::from_chars(v.text.data(), end, n);
    if (ec != std::errc() || ptr != end || n < 1) malformed(v, "a whole number of at least 1 (for example 10)");
    return n;
}

int at_least_zero(const Value& v) {
    int n = 0;
    const char* end = v.text.data() + v.text.size();
    const auto [ptr, ec] = std::from_chars(v.text.data(), end, n);
    if (ec != std::errc() || ptr != end || n < 0) malformed(v, "a whole number of at least 0 (for example 20)");
    return n;
}

std::chrono::milliseconds duration(const Value& v) {
    try {
        return parse_duration(v.text);
    } catch (const std::invalid_argument&) {
        malformed(v, "a duration: a whole number with ms, s, m or h (for example 5s, 250ms; 0 for none)");
    }
}

bool boolean(const Value& v) {
    if (v.text == "true" || v.text == "yes" || v.text == "on" || v.text == "1") return true;
    if (v.text == "false" || v.text == "no" || v.text == "off" || v.text == "0") return false;
    malformed(v, "true or false (also yes/no, on/off, 1/0)");
}

PoolMode pool_mode(const Value& v) {
    if (v.text == "per-tenant") return PoolMode::per_tenant;
    if (v.text == "shared") return PoolMode::shared;
    if (v.text == "transaction") return PoolMode::transaction;
    malformed(v, "one of per-tenant, shared, transaction");
}

TransactionMode transaction_mode(const Value& v) {
    if (v.text == "per-migration") return TransactionMode::per_migration;
    if (v.text == "per-tenant") return TransactionMode::per_tenant;
    malformed(v, "one of per-migration, per-tenant");
}

fs::path resolve(const Value& v, const std::string& text) {
    const fs::path p(text);
    return (p.is_absolute() ? p : v.relative_to / p).lexically_normal();
}

// A fixed key: its parser and its documentation. The documentation is the one source of the
// starter manifest (`mtctl init`) and of multitenant.ini(5) (`mtctl __docs`), so a key the parser
// accepts cannot go undocumented.
struct Field {
    std::string name;
    std::string default_value;  // as written in the file; empty: none
    std::string description;
    std::function<void(Manifest&, const Value&)> apply;
    std::optional<std::string> starter = std::nullopt;  // what `mtctl init` writes, when not the default
    bool starter_commented = false;                      // written as "# key = value" (an example)
};

const std::vector<Field>& fixed_fields() {
    static const std::vector<Field> fields = {
        {"database.url", "",
         "required: a libpq URL or key=value string (application_name and connect_timeout added unless set)",
         [](Manifest& m, const Value& v) {
             m.database.url = non_empty(v, "a libpq URL or key=value string, for example ${DATABASE_URL}");
         }, "${DATABASE_URL}"},
        {"database.pool_mode", "per-tenant",
         "per-tenant | shared | transaction (behind PgBouncer in transaction mode)",
         [](Manifest& m, const Value& v) { m.database.pool_mode = pool_mode(v); }},
        {"database.pool_size", "10", "connections per pool",
         [](Manifest& m, const Value& v) { m.database.pool_size = at_least_one(v); }},
        {"database.max_pools", "50", "per-tenant mode: most tenant pools alive at once (least recently used evicted)",
         [](Manifest& m, const Value& v) { m.database.max_pools = at_least_one(v); }},
        {"database.pool_idle_timeout", "1h", "close a tenant pool unused this long; 0 = never",
         [](Manifest& m, const Value& v) { m.database.pool_idle_timeout = duration(v); }},
        {"database.connect_timeout", "5s", "opening a connection; also bounds the wait for a free pooled connection",
         [](Manifest& m, const Value& v) { m.database.connect_timeout = duration(v); }},
        {"database.statement_timeout", "0",
         "leases: cancel a statement running longer; 0: the server's setting (migrations are not affected)",
         [](Manifest& m, const Value& v) { m.database.statement_timeout = duration(v); }, "30s", true},
        {"database.application_name", "mtenant", "shown in pg_stat_activity",
         [](Manifest& m, const Value& v) { m.database.application_name = v.text; }},
        {"isolation.schema_template", "tenant_{id}", "a tenant's schema name; {id} is the tenant id",
         [](Manifest& m, const Value& v) {
             if (v.text.find("{id}") == std::string::npos) malformed(v, "a schema name containing {id}, such as tenant_{id}");
             m.isolation.schema_template = v.text;
         }},
        {"isolation.shared_schema", "public", "the schema shared by every tenant (mtctl migrate-shared)",
         [](Manifest& m, const Value& v) { m.isolation.shared_schema = non_empty(v, "a schema name such as public"); }},
        {"isolation.tenant_id_pattern", "^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$",
         "ECMAScript regular expression every tenant id must match",
         [](Manifest& m, const Value& v) {
             const std::string pattern = non_empty(v, "a regular expression for tenant ids");
             try {
                 std::regex check(pattern, std::regex::ECMAScript);
             } catch (const std::regex_error& e) {
                 malformed(v, std::string("an ECMAScript regular expression (") + e.what() + ")");
             }
             m.isolation.tenant_id_pattern = pattern;
         }},
        {"migrations.tenant_dir", "drizzle/tenant", "migrations applied to every tenant schema",
         [](Manifest& m, const Value& v) {
             m.migrations.tenant_dir = resolve(v, non_empty(v, "the folder of tenant migrations"));
         }},
        {"migrations.shared_dir", "", "migrations for the shared schema (mtctl migrate-shared); optional",
         [](Manifest& m, const Value& v) {
             if (v.text.empty()) m.migrations.shared_dir.reset();
             else m.migrations.shared_dir = resolve(v, v.text);
         }, "drizzle/shared"},
        {"migrations.table", "__drizzle_migrations", "tracking table in each tenant schema",
         [](Manifest& m, const Value& v) { m.migrations.table = non_empty(v, "a table name"); }},
        {"migrations.shared_table", "__drizzle_migrations", "tracking table in the shared schema",
         [](Manifest& m, const Value& v) { m.migrations.shared_table = non_empty(v, "a table name"); }},
        // Which names are valid depends on the tracking plugins loaded; the migration engine checks.
        {"migrations.format", "auto", "auto | name | hash | drizzle-kit | a loaded plugin's tracking format",
         [](Manifest& m, const Value& v) {
             m.migrations.format = non_empty(v, "auto or a tracking format (name, hash, drizzle-kit)");
         }},
        {"migrations.default_format", "name", "what auto creates in a schema that has no tracking table yet",
         [](Manifest& m, const Value& v) {
             m.migrations.default_format = non_empty(v, "a tracking format (name, hash, drizzle-kit)");
         }},
        {"migrations.concurrency", "10",
         "tenants migrated in parallel (per server); also the connections used; auto: migrate adapts it to the server",
         [](Manifest& m, const Value& v) {
             if (v.text == "auto") {
                 m.migrations.concurrency_auto = true;
                 return;
             }
             int n = 0;
             const char* end = v.text.data() + v.text.size();
             const auto [ptr, ec] = std::from_chars(v.text.data(), end, n);
             if (ec != std::errc() || ptr != end || n < 1) malformed(v, "a whole number of at least 1 (for example 10) or auto");
             m.migrations.concurrency = n;
             m.migrations.concurrency_auto = false;
         }},
        {"migrations.lock_timeout", "10s", "SET lock_timeout while migrating",
         [](Manifest& m, const Value& v) { m.migrations.lock_timeout = duration(v); }},
        {"migrations.transaction", "per-tenant",
         "per-tenant (all pending migrations of a tenant in one transaction) | per-migration (each on its own)",
         [](Manifest& m, const Value& v) { m.migrations.transaction = transaction_mode(v); }},
        {"migrations.fail_fast", "false", "stop every tenant at the first failure",
         [](Manifest& m, const Value& v) { m.migrations.fail_fast = boolean(v); }},
        {"migrations.template_schema", "public",
         "schema the tenant migrations name their own objects in (drizzle-kit: public)",
         [](Manifest& m, const Value& v) {
             m.migrations.template_schema = non_empty(v, "the schema the tenant migrations were generated against, such as public");
         }},
        {"migrations.rebase", "auto",
         "auto: rewrite template_schema.x to the tenant schema for objects the folder owns | off",
         [](Manifest& m, const Value& v) {
             if (v.text != "auto" && v.text != "off") malformed(v, "auto or off");
             m.migrations.rebase = v.text == "auto" ? RebaseMode::automatic : RebaseMode::off;
         }},
        {"migrations.auto_convert", "false",
         "true: migrate first converts a tracking table in another readable format to format",
         [](Manifest& m, const Value& v) { m.migrations.auto_convert = boolean(v); }},
        {"rollout.max_replica_lag", "",
         "migrate waits while a replica's replay lags more (pg_stat_replication and rollout.replicas); a flag overrides it",
         [](Manifest& m, const Value& v) { m.rollout.max_replica_lag = duration(v); }, "2s", true},
        {"rollout.max_active_backends", "", "migrate waits while more other backends of this database are active",
         [](Manifest& m, const Value& v) { m.rollout.max_active_backends = at_least_zero(v); }, "50", true},
        {"rollout.max_lock_waits", "", "migrate waits while more other backends of this database wait on a lock",
         [](Manifest& m, const Value& v) { m.rollout.max_lock_waits = at_least_zero(v); }, "5", true},
        {"rollout.throttle_timeout", "30m", "stop starting tenants after one throttle wait this long (0 = wait for ever)",
         [](Manifest& m, const Value& v) { m.rollout.throttle_timeout = duration(v); }},
        {"rollout.replicas", "", "standbys migrate asks directly for their replay lag (libpq URLs, comma-separated)",
         [](Manifest& m, const Value& v) { m.rollout.replicas = list(v.text); },
         "postgresql://monitor@replica1/app, postgresql://monitor@replica2/app", true},
        {"plugins.path", "", "folders searched first; the kernel's own plugin folder is always searched",
         [](Manifest& m, const Value& v) {
             m.plugins.path.clear();
             for (const auto& item : list(v.text)) m.plugins.path.push_back(resolve(v, item));
         }, "plugins", true},
        {"plugins.load", "", "plugins to load (comma-separated); their factories become available by name",
         [](Manifest& m, const Value& v) { m.plugins.load = list(v.text); },
         "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential"},
        {"roles.discovery", "", "the tenant_discovery instance",
         [](Manifest& m, const Value& v) { m.roles.discovery = v.text; }, "discovery-sql"},
        {"roles.retry", "", "the retry_policy instance (none: no retries)",
         [](Manifest& m, const Value& v) { m.roles.retry = v.text; }, "retry-exponential"},
        {"roles.sinks", "",
         "metrics_sink instances receiving every event, for example metrics-prometheus, log-debug (load them above)",
         [](Manifest& m, const Value& v) { m.roles.sinks = list(v.text); }},
        {"roles.extractor", "",
         "request_tenant_extractor instances for HTTP services, tried in order, for example extract-header",
         [](Manifest& m, const Value& v) { m.roles.extractor = list(v.text); }},
    };
    return fields;
}

const std::vector<std::string>& fixed_sections() {
    static const std::vector<std::string> sections = {"database", "isolation", "migrations", "rollout", "plugins", "roles"};
    return sections;
}

std::vector<std::string> keys_of_section(const std::string& section) {
    std::vector<std::string> out;
    for (const auto& f : fixed_fields()) {
        const auto [s, k] = split_key(f.name);
        if (s == section) out.push_back(k);
    }
    return out;
}

std::string sections_expected() {
    return "[database], [isolation], [migrations], [rollout], [plugins], [roles], [plugin.NAME], [servers.NAME]";
}

}  // namespace

Manifest build_manifest(const RawSettings& raw, const std::map<std::string, std::set<std::string>>& plugin_keys) {
    std::map<std::string, RawSettings::Entry> entries = raw.entries;
    resolve_pending_environment(raw, plugin_keys, entries);

    Manifest m;
    m.file = raw.file;
    m.base_dir = raw.base_dir.empty() ? fs::current_path() : raw.base_dir;
    m.migrations.tenant_dir = (m.base_dir / m.migrations.tenant_dir).lexically_normal();

    const auto& fields = fixed_fields();
    for (const auto& [key, entry] : entries) {
        const auto [section, name] = split_key(key);
        const std::string& source = entry.source;
        const bool from_file = !is_command_line(source) && !is_environment(source);
        const Value value{key, source, trim(entry.value), from_file ? m.base_dir : fs::current_path()};

        if (std::find(fixed_sections().begin(), fixed_sections().end(), section) != fixed_sections().end()) {
            auto field = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == key; });
            if (field == fields.end()) {
                const auto accepted = keys_of_section(section);
                throw ManifestError(source, key,
                                    "unknown key; [" + section + "] accepts " + join(accepted) +
                                        did_you_mean(name, accepted) + "; " + remove_advice(source));
            }
            field->apply(m, value);
        } else if (section.rfind("plugin.", 0) == 0) {
            const std::string factory = section.substr(7);
            auto accepted = plugin_keys.find(factory);
            if (accepted == plugin_keys.end()) {
                std::vector<std::string> names;
                for (const auto& [n, keys] : plugin_keys) names.push_back(n);
                throw ManifestError(source, key,
                                    "unknown plugin '" + factory + "'; [plugin.NAME] must name a loaded factory: " +
                                        (names.empty() ? std::string("none is loaded") : join(names)) +
                                        did_you_mean(factory, names) + "; add its plugin to [plugins] load, or " +
                                        remove_advice(source));
            }
            if (!accepted->second.count(name)) {
                const std::vector<std::string> names(accepted->second.begin(), accepted->second.end());
                throw ManifestError(source, key,
                                    names.empty()
                                        ? "unknown key; plugin '" + factory + "' takes no configuration; " +
                                              remove_advice(source)
                                        : "unknown key; plugin '" + factory + "' accepts " + join(names) +
                                              did_you_mean(name, names) + "; " + remove_advice(source));
            }
            m.plugin_config[factory][name] = value.text;
        } else if (section.rfind("servers.", 0) == 0) {
            if (name != "url")
                throw ManifestError(source, key, "unknown key; [servers.NAME] accepts only url; " + remove_advice(source));
            m.servers[section.substr(8)] = non_empty(value, "the server's libpq URL");
        } else if (section == "plugin" || section == "servers") {
            throw ManifestError(source, key,
                                "[" + section + "] needs a name: write [" + section + ".NAME], NAME being " +
                                    (section == "plugin" ? "a loaded plugin factory" : "the server's name"));
        } else if (section.empty()) {
            throw ManifestError(source, key,
                                "is outside any section; put it under one of " + sections_expected());
        } else {
            // [plugins.x] for [plugin.x] is the likely typo of a named section.
            std::vector<std::string> candidates = fixed_sections();
            if (const size_t dot = section.find('.'); dot != std::string::npos) {
                candidates.push_back("plugin" + section.substr(dot));
                candidates.push_back("servers" + section.substr(dot));
            }
            throw ManifestError(source, key,
                                "unknown section [" + section + "]; expected one of " + sections_expected() +
                                    did_you_mean(section, candidates) + "; " + remove_advice(source));
        }
    }

    if (m.database.url.empty()) {
        const std::string source = raw.file ? raw.file->string() : std::string("no manifest file");
        throw ManifestError(source, "database.url",
                            "is required; set url in [database] (url = ${DATABASE_URL}), export MT_DATABASE__URL, "
                            "or pass --database.url=URL" +
                                std::string(raw.file ? "" : "; `mtctl init` writes a starter manifest"));
    }
    return m;
}

const std::vector<std::string>& fixed_manifest_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> out;
        for (const auto& f : fixed_fields()) out.push_back(f.name);
        return out;
    }();
    return keys;
}

std::chrono::milliseconds parse_duration(const std::string& text) {
    const std::string t = trim(text);
    // Twelve digits of hours still fit in int64 milliseconds; anything longer is a typo.
    const size_t digits = static_cast<size_t>(std::find_if(t.begin(), t.end(), [](char c) {
                                                  return !std::isdigit(static_cast<unsigned char>(c));
                                              }) - t.begin());
    if (digits > 12) throw std::invalid_argument("duration '" + t + "' is too large");
    return sdk::parse_duration(t);
}

std::string to_string(PoolMode mode) {
    switch (mode) {
        case PoolMode::per_tenant: return "per-tenant";
        case PoolMode::shared: return "shared";
        case PoolMode::transaction: return "transaction";
    }
    return "unknown";
}

std::string to_string(TransactionMode mode) {
    switch (mode) {
        case TransactionMode::per_migration: return "per-migration";
        case TransactionMode::per_tenant: return "per-tenant";
    }
    return "unknown";
}

std::vector<ManifestKeyDoc> manifest_key_docs() {
    std::vector<ManifestKeyDoc> docs;
    for (const auto& f : fixed_fields()) docs.push_back({f.name, f.default_value, f.description});
    return docs;
}

std::string starter_manifest() {
    std::string text = R"(# mtenant manifest. '#' starts a comment.
# Every key can also come from an environment variable MT_SECTION__KEY (MT_DATABASE__POOL_SIZE=20)
# or a flag --section.key=value (--database.pool_size=20): a flag beats the environment, which
# beats this file, which beats the defaults written here. ${NAME} in a value is replaced by the
# environment variable NAME. '#' starts a comment even inside a value: a URL whose password holds
# one goes in an environment variable, written here as ${NAME}. Relative paths in this file are
# relative to this file's folder. `man multitenant.ini` describes every key.
)";
    // Every key of the table, in its order, with its default (or the starter's value) and its
    // description as the comment: the same text multitenant.ini(5) shows.
    std::string section;
    for (const auto& f : fixed_fields()) {
        const auto [s, key] = split_key(f.name);
        if (s != section) {
            section = s;
            text += "\n[" + section + "]\n";
        }
        std::string line = (f.starter_commented ? "# " : "") + key + " = " + f.starter.value_or(f.default_value);
        while (line.back() == ' ') line.pop_back();
        text += line + std::string(line.size() < 33 ? 33 - line.size() : 1, ' ') + "# " + f.description + "\n";
    }
    text += R"(
[plugin.discovery-sql]
query = SELECT id FROM public.tenants ORDER BY id

# [servers.eu1]                  # more database servers; discovery says which tenant lives where
# url = postgresql://app@db-eu1/app
)";
    return text;
}

}  // namespace mt
