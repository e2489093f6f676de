// The manifest reader (SPEC §4): INI text through Boost.Program_options, ${NAME} substitution,
// MT_SECTION__KEY environment variables and --section.key=value flags, then the key table.
// Input: the file's text, then optional "=== FLAGS" and "=== ENV" sections, one item a line:
//   [database]
//   url = ${DATABASE_URL}
//   === FLAGS
//   --database.pool_size=20
//   === ENV
//   MT_MIGRATIONS__CONCURRENCY=4
//
// Properties:
// - Every refusal is a ManifestError naming where (file, environment variable or command line)
//   and which key; no other exception escapes.
// - Reading is deterministic (twice, the same entries and sources).
// - A flag beats everything: each key given as a flag has the last flag's value, from "command line".
// - An accepted manifest holds only valid values: a URL, counts of at least 1, durations of at
//   least 0, a template with {id}, an absolute tenant_dir, only declared plugin keys.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>

#include <cstdlib>
#include <map>
#include <set>

extern char** environ;

namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::set<std::string>>& plugin_keys() {
    static const std::map<std::string, std::set<std::string>> keys{
        {"discovery-sql", {"query"}},
        {"retry-exponential", {"max_attempts", "initial_delay", "max_delay", "multiplier", "jitter"}},
        {"extract-header", {"header"}},
        {"extract-path", {"segment", "prefix"}},
        {"log-debug", {"log_queries", "log_pool_events", "slow_query_threshold"}},
        {"tracking-name", {}}};
    return keys;
}

// Manifest variables (MT_X__Y) of the calling environment would make runs differ: start clean.
void clear_manifest_variables() {
    std::vector<std::string> names;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry(*e);
        const std::string name(entry.substr(0, entry.find('=')));
        if (name.starts_with("MT_")) names.push_back(name);
    }
    for (const auto& n : names) ::unsetenv(n.c_str());
}

bool valid_env_name(std::string_view name) {
    if (!name.starts_with("MT_") || name.size() > 64) return false;
    for (unsigned char c : name)
        if (!(std::isalnum(c) || c == '_')) return false;
    return true;
}

struct Input {
    std::string file;
    std::vector<std::string> flags;
    std::vector<std::pair<std::string, std::string>> env;
};

Input parse_input(std::string_view text) {
    Input in;
    const size_t flags_at = text.find("=== FLAGS\n");
    const size_t env_at = text.find("=== ENV\n");
    const size_t file_end = std::min(flags_at, env_at);
    in.file = std::string(text.substr(0, file_end));
    if (flags_at != std::string_view::npos) {
        const size_t end = env_at > flags_at ? env_at : std::string_view::npos;
        const auto block = text.substr(flags_at + 10, end == std::string_view::npos ? end : end - flags_at - 10);
        for (auto line : fuzz::split(block, "\n"))
            if (!line.empty() && line.find('\0') == std::string_view::npos) in.flags.emplace_back(line);
    }
    if (env_at != std::string_view::npos) {
        const size_t end = flags_at > env_at ? flags_at : std::string_view::npos;
        const auto block = text.substr(env_at + 8, end == std::string_view::npos ? end : end - env_at - 8);
        for (auto line : fuzz::split(block, "\n")) {
            const size_t eq = line.find('=');
            if (eq == std::string_view::npos || line.find('\0') != std::string_view::npos) continue;
            if (valid_env_name(line.substr(0, eq))) in.env.emplace_back(line.substr(0, eq), line.substr(eq + 1));
        }
    }
    return in;
}

void check_error(const mt::ManifestError& e) {
    fuzz::check(!e.source.empty() && !e.key.empty(), "a manifest error names where and which key", e.what());
}

template <class F>
bool only_manifest_errors(F&& f) {
    try {
        f();
        return true;
    } catch (const mt::ManifestError& e) {
        check_error(e);
    } catch (const std::exception& e) {
        fuzz::violated("the manifest reader refuses only with ManifestError", e.what());
    }
    return false;
}

void check_manifest(const mt::Manifest& m) {
    fuzz::check(!m.database.url.empty(), "an accepted manifest has a database.url");
    fuzz::check(m.database.pool_size >= 1 && m.database.max_pools >= 1 && m.migrations.concurrency >= 1,
                "counts are at least 1");
    for (auto d : {m.database.pool_idle_timeout, m.database.connect_timeout, m.database.statement_timeout,
                   m.migrations.lock_timeout})
        fuzz::check(d.count() >= 0, "durations are not negative", std::to_string(d.count()));
    fuzz::check(m.isolation.schema_template.find("{id}") != std::string::npos, "the schema template holds {id}");
    fuzz::check(!m.isolation.shared_schema.empty(), "the shared schema is named");
    fuzz::check(!m.migrations.template_schema.empty(), "the template schema is named");
    fuzz::check(m.migrations.tenant_dir.is_absolute(), "tenant_dir is absolute", m.migrations.tenant_dir.string());
    for (const auto& p : m.plugins.path) fuzz::check(p.is_absolute(), "plugin paths are absolute", p.string());
    for (const auto& [factory, values] : m.plugin_config) {
        const auto known = plugin_keys().find(factory);
        fuzz::check(known != plugin_keys().end(), "plugin config only for a known factory", factory);
        for (const auto& [key, value] : values)
            fuzz::check(known->second.count(key) == 1, "plugin config holds only declared keys", factory + "." + key);
    }
    for (const auto& [name, url] : m.servers) fuzz::check(!url.empty(), "a server has a URL", name);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    clear_manifest_variables();
    ::setenv("DATABASE_URL", "postgresql://fuzz@127.0.0.1:1/fuzz", 1);
    ::setenv("FUZZ_EMPTY", "", 1);
    ::setenv("FUZZ_HASH", "a#b", 1);
    ::setenv("FUZZ_NESTED", "${DATABASE_URL}", 1);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::Scratch scratch("manifest");
    const Input in = parse_input(std::string_view(reinterpret_cast<const char*>(data), size));
    if (in.flags.size() > 64 || in.env.size() > 32) return 0;
    const fs::path file = scratch.dir() / "multitenant.ini";
    fuzz::Scratch::write(file, in.file);
    for (const auto& [name, value] : in.env) ::setenv(name.c_str(), value.c_str(), 1);

    mt::ManifestInput input;
    input.file = file;
    input.overrides = in.flags;
    mt::RawSettings raw, again;
    const bool read = only_manifest_errors([&] { raw = mt::read_settings(input); });
    if (read) {
        fuzz::check(only_manifest_errors([&] { again = mt::read_settings(input); }), "reading is deterministic");
        fuzz::check(raw.entries.size() == again.entries.size(), "reading is deterministic");
        for (const auto& [key, entry] : raw.entries) {
            const auto it = again.entries.find(key);
            fuzz::check(it != again.entries.end() && it->second.value == entry.value && it->second.source == entry.source,
                        "reading is deterministic", key);
        }
        // Flags parse as "--section.key=value" with the key trimmed; the last one for a key wins.
        std::map<std::string, std::string> flags;
        for (const auto& f : in.flags) {
            std::string text = f.starts_with("--") ? f.substr(2) : f;
            const size_t eq = text.find('=');
            std::string key = text.substr(0, eq);
            key.erase(0, key.find_first_not_of(" \t\r\n"));
            key.erase(key.find_last_not_of(" \t\r\n") + 1);
            flags[key] = text.substr(eq + 1);
        }
        for (const auto& [key, value] : flags) {
            const auto it = raw.entries.find(key);
            fuzz::check(it != raw.entries.end() && it->second.source == "command line" && it->second.value == value,
                        "a flag beats the file and the environment", key);
        }
        only_manifest_errors([&] { check_manifest(mt::build_manifest(raw, plugin_keys())); });
    }
    for (const auto& [name, value] : in.env) ::unsetenv(name.c_str());
    return 0;
}
