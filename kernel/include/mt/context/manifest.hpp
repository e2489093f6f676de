// The manifest (SPEC §4): INI file + MT_SECTION__KEY environment + --section.key=value flags,
// parsed with Boost.Program_options. Precedence: flag, environment, file, default.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mt {

enum class PoolMode { per_tenant, shared, transaction };
enum class TransactionMode { per_migration, per_tenant };
enum class RebaseMode { automatic, off };  // [migrations] rebase = auto | off (issue 13)

struct ManifestInput {
    // -c/--config; when empty, MT_CONFIG, then ./multitenant.ini. An explicitly named file must exist;
    // the default one may be absent (then only environment and flags count).
    std::optional<std::filesystem::path> file;
    // "--section.key=value" (or "section.key=value") overrides from the command line.
    std::vector<std::string> overrides;
    bool use_environment = true;
};

// Pass 1: every key=value as given, ${VAR} already expanded, with where each came from.
struct RawSettings {
    struct Entry {
        std::string value;
        std::string source;  // the file path, "environment (MT_X__Y)" or "command line"
    };
    std::map<std::string, Entry> entries;      // "section.key" -> value
    std::optional<std::filesystem::path> file;  // the file that was read, if any
    // The manifest file's folder (absolute), or the working directory when no file was read.
    // Relative paths written in the file resolve against it, so `mtctl -c /srv/app/multitenant.ini`
    // means the same from any directory; paths given by a flag or an environment variable resolve
    // against the working directory, as any command-line path would.
    std::filesystem::path base_dir;

    // MT_SECTION__KEY variables that matched no key known in pass 1 (the fixed keys and every key
    // the file or a flag named). Environment names cannot tell "plugin.discovery-sql" from
    // "plugin.discovery_sql", so these wait for build_manifest, which knows the plugins' keys.
    struct PendingVariable {
        std::string variable;  // "MT_PLUGIN_DISCOVERY_SQL__QUERY"
        std::string section;   // "PLUGIN_DISCOVERY_SQL"
        std::string key;       // "QUERY"
        std::string value;
    };
    std::vector<PendingVariable> pending_environment;

    std::optional<std::string> get(const std::string& key) const;
    // The comma-separated list under key, trimmed, empty items dropped.
    std::vector<std::string> get_list(const std::string& key) const;
};

struct Manifest {
    struct Database {
        std::string url;  // required
        PoolMode pool_mode = PoolMode::per_tenant;
        int pool_size = 10;
        int max_pools = 50;
        std::chrono::milliseconds pool_idle_timeout = std::chrono::hours(1);
        std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
        // Applied to every lease's session (SET at the lease's start); 0 = the server's default.
        std::chrono::milliseconds statement_timeout{0};
        std::string application_name = "mtenant";
    } database;

    struct Isolation {
        std::string schema_template = "tenant_{id}";
        std::string shared_schema = "public";
        std::string tenant_id_pattern = "^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$";
    } isolation;

    struct Migrations {
        std::filesystem::path tenant_dir = "drizzle/tenant";  // absolute after build_manifest
        std::optional<std::filesystem::path> shared_dir;
        std::string table = "__drizzle_migrations";
        std::string shared_table = "__drizzle_migrations";
        std::string format = "auto";
        std::string default_format = "name";
        int concurrency = 10;
        // concurrency = auto: migrate adapts its worker count (docs/rollouts.md); other commands
        // then use `concurrency` (10).
        bool concurrency_auto = false;
        std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
        TransactionMode transaction = TransactionMode::per_tenant;
        bool fail_fast = false;
        // Schema rebasing of tenant migrations (mt/tracking/rebase.hpp): references to objects the
        // tenant folder owns in template_schema are rewritten to the tenant's schema.
        std::string template_schema = "public";
        RebaseMode rebase = RebaseMode::automatic;
        // migrate converts a tenant's tracking table that is in another readable format than
        // `format` (as convert-format would) in the transaction of its first migration (issue 14).
        bool auto_convert = false;
    } migrations;

    // [rollout]: migrate's throttle defaults (issue 14, docs/rollouts.md); a flag overrides each.
    struct Rollout {
        std::optional<std::chrono::milliseconds> max_replica_lag;
        std::optional<int> max_active_backends;
        std::optional<int> max_lock_waits;
        std::optional<std::chrono::milliseconds> throttle_timeout;
        std::vector<std::string> replicas;  // connection URLs of replicas probed directly
    } rollout;

    struct Plugins {
        std::vector<std::filesystem::path> path;  // absolute; empty = only the kernel's own folder
        std::vector<std::string> load;
    } plugins;

    struct Roles {
        std::string discovery;
        std::string retry;
        std::vector<std::string> sinks;
        std::vector<std::string> extractor;  // chained: first that finds an id wins
    } roles;

    // [plugin.NAME] key -> value, NAME being a factory (instance) name.
    std::map<std::string, std::map<std::string, std::string>> plugin_config;
    // [servers.NAME] url
    std::map<std::string, std::string> servers;

    std::optional<std::filesystem::path> file;
    std::filesystem::path base_dir;
};

// Reads file, environment and flags. Throws ManifestError for an unreadable or malformed file,
// an undefined ${VAR}, or a flag that is not section.key=value.
RawSettings read_settings(const ManifestInput& input);

// Pass 2: checks every key against the fixed table and, for [plugin.NAME], the keys that factory
// declares (plugin_keys: factory name -> accepted keys). Unknown key, malformed value or missing
// required key -> ManifestError naming the source, the key and what was expected.
Manifest build_manifest(const RawSettings& raw, const std::map<std::string, std::set<std::string>>& plugin_keys);

// The fixed "section.key" names of SPEC §4 ([database] … [roles]), in manifest order; mtctl can
// offer each as a --section.key flag.
const std::vector<std::string>& fixed_manifest_keys();

// Helpers shared with plugins' config parsing.
// "250ms", "5s", "2m", "1h"; a bare number is milliseconds (as mt::sdk::parse_duration, which plugins
// use, so a duration reads the same in every section). Throws std::invalid_argument.
std::chrono::milliseconds parse_duration(const std::string& text);
std::string to_string(PoolMode);
std::string to_string(TransactionMode);

// The starter manifest `mtctl init` writes (commented, every key at its default).
std::string starter_manifest();

}  // namespace mt
