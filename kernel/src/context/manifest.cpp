#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>
#include <mt/sdk/plugin.hpp>

#include <boost/program_options/errors.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unistd.h>

extern char** environ;

namespace mt {

namespace fs = std::filesystem;
namespace po = boost::program_options;

namespace {

const std::string command_line_source = "command line";
const std::string environment_prefix = "environment (";

std::string trim(std::string_view s) {
    const char* ws = " \t\r\n";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    const size_t e = s.find_last_not_of(ws);
    return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Environment names cannot hold '.' or '-', so names are compared with '.', '-' and '_' (and runs
// of them) folded into one '_': MT_PLUGIN_DISCOVERY_SQL__QUERY meets plugin.discovery-sql.query.
std::string fold(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '.' || c == '-' || c == '_') {
            if (out.empty() || out.back() != '_') out += '_';
        } else {
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return out;
}

// "plugin.discovery-sql.query" -> {"plugin.discovery-sql", "query"}: keys never hold a dot.
std::pair<std::string, std::string> split_key(const std::string& full) {
    const size_t dot = full.rfind('.');
    if (dot == std::string::npos) return {"", full};
    return {full.substr(0, dot), full.substr(dot + 1)};
}

std::string join(const std::vector<std::string>& items, const std::string& separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// " (did you mean X?)" when one candidate is a likely typo of what was given.
std::string did_you_mean(const std::string& given, const std::vector<std::string>& candidates) {
    const std::string* best = nullptr;
    size_t best_distance = 0;
    for (const auto& c : candidates) {
        const size_t d = fold(c) == fold(given) ? 0 : edit_distance(lower(given), lower(c));
        if (!best || d < best_distance) {
            best = &c;
            best_distance = d;
        }
    }
    if (!best || best_distance > std::max<size_t>(2, given.size() / 3)) return {};
    return " (did you mean " + *best + "?)";
}

bool is_environment(const std::string& source) { return source.rfind(environment_prefix, 0) == 0; }
bool is_command_line(const std::string& source) { return source == command_line_source; }

// What to do about an unwanted key, in the terms of where it came from.
std::string remove_advice(const std::string& source) {
    if (is_command_line(source)) return "fix or drop the flag";
    if (is_environment(source)) return "rename or unset the variable";
    return "fix or remove the line";
}

bool valid_variable_name(const std::string& name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// ${NAME} -> the environment variable NAME; $${ writes a literal ${.
std::string expand_variables(const std::string& value, const std::string& source, const std::string& key) {
    std::string out;
    for (size_t i = 0; i < value.size();) {
        if (value.compare(i, 3, "$${") == 0) {
            out += "${";
            i += 3;
        } else if (value.compare(i, 2, "${") == 0) {
            const size_t close = value.find('}', i + 2);
            if (close == std::string::npos)
                throw ManifestError(source, key,
                                    "unterminated ${ in '" + value + "'; write ${NAME}, or $${ for a literal ${");
            const std::string name = value.substr(i + 2, close - i - 2);
            if (!valid_variable_name(name))
                throw ManifestError(source, key,
                                    "'${" + name + "}' is not an environment variable name; write ${NAME} with "
                                    "letters, digits and '_', or $${ for a literal ${");
            const char* v = std::getenv(name.c_str());
            if (!v)
                throw ManifestError(source, key,
                                    "${" + name + "} is not set in the environment; export " + name +
                                        " or write the value itself in the file");
            out += v;
            i = close + 1;
        } else {
            out += value[i++];
        }
    }
    return out;
}

// Boost's parser says only "invalid line"; this pass over the same rules (comment from '#', blank
// lines, [section], key = value) names the line number first.
void check_syntax(const std::string& text, const std::string& source) {
    std::istringstream in(text);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        const std::string s = trim(line);
        const std::string where = "line " + std::to_string(number);
        if (s.empty()) continue;
        if (s.front() == '[') {
            const std::string name = s.back() == ']' ? s.substr(1, s.size() - 2) : std::string();
            const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
            });
            if (!ok)
                throw ManifestError(source, where,
                                    "'" + s + "' is not a section header; write [section] with letters, digits, "
                                    "'.', '-' and '_'");
            continue;
        }
        const size_t eq = s.find('=');
        if (eq == std::string::npos)
            throw ManifestError(source, where, "'" + s + "' is neither [section] nor key = value");
        if (trim(s.substr(0, eq)).empty())
            throw ManifestError(source, where, "'" + s + "' has no key before '='; write key = value");
    }
}

void read_file_entries(const fs::path& path, const std::string& source, RawSettings& raw) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ManifestError(source, "(file)", "cannot be read; check its permissions");
    std::stringstream buffer;
    buffer << f.rdbuf();
    std::string text = buffer.str();
    // A file saved with CRLF line ends reads the same as one with LF.
    text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
    check_syntax(text, source);

    std::vector<po::option> options;
    try {
        std::istringstream in(text);
        const po::options_description none;
        options = po::parse_config_file(in, none, /*allow_unregistered=*/true).options;
    } catch (const po::error& e) {
        throw ManifestError(source, "(file)", std::string("not a valid INI file: ") + e.what());
    }
    for (const auto& option : options) {
        const std::string& key = option.string_key;
        const std::string value = option.value.empty() ? std::string() : option.value.front();
        if (raw.entries.count(key))
            throw ManifestError(source, key, "is given twice in the file; keep one of the lines");
        raw.entries[key] = {expand_variables(value, source, key), source};
    }
}

struct Override {
    std::string key;
    std::string value;
};

Override parse_override(const std::string& arg) {
    std::string text = arg.rfind("--", 0) == 0 ? arg.substr(2) : arg;
    const size_t eq = text.find('=');
    const std::string key = eq == std::string::npos ? std::string() : trim(text.substr(0, eq));
    const size_t dot = key.rfind('.');
    if (key.empty() || dot == std::string::npos || dot == 0 || dot + 1 == key.size())
        throw ManifestError(command_line_source, arg,
                            "expected --section.key=value, for example --database.pool_size=20");
    return {key, text.substr(eq + 1)};
}

struct Variable {
    std::string name;  // MT_DATABASE__URL
    std::string section;
    std::string key;
    std::string value;
};

// Every MT_SECTION__KEY variable, sorted by name so resolution does not depend on environ's order.
std::vector<Variable> manifest_variables() {
    std::vector<Variable> out;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry(*e);
        const size_t eq = entry.find('=');
        if (eq == std::string_view::npos) continue;
        const std::string name(entry.substr(0, eq));
        if (name.rfind("MT_", 0) != 0) continue;
        const std::string rest = name.substr(3);
        const size_t separator = rest.rfind("__");
        if (separator == std::string::npos) continue;  // MT_CONFIG and other variables of ours
        out.push_back({name, rest.substr(0, separator), rest.substr(separator + 2), std::string(entry.substr(eq + 1))});
    }
    std::sort(out.begin(), out.end(), [](const Variable& a, const Variable& b) { return a.name < b.name; });
    return out;
}

std::string variable_source(const std::string& name) { return environment_prefix + name + ")"; }

std::vector<std::string> matching_keys(const std::vector<std::string>& known, const std::string& section,
                                       const std::string& key) {
    std::vector<std::string> out;
    for (const auto& k : known) {
        const auto [s, n] = split_key(k);
        if (fold(s) == fold(section) && fold(n) == fold(key)) out.push_back(k);
    }
    return out;
}

[[noreturn]] void ambiguous_variable(const std::string& name, const std::vector<std::string>& matches) {
    throw ManifestError(variable_source(name), name,
                        "matches more than one key (" + join(matches) + "); set the key in the file or with --" +
                            matches.front() + "=... instead");
}

// ---- pass 2: the fixed table ---------------------------------------------------------------

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

std::vector<std::string> list(const std::string& text) {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(text);
    while (std::getline(in, item, ',')) {
        item = trim(item);
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

fs::path resolve(const Value& v, const std::string& text) {
    const fs::path p(text);
    return (p.is_absolute() ? p : v.relative_to / p).lexically_normal();
}

struct Field {
    std::string name;
    std::function<void(Manifest&, const Value&)> apply;
};

const std::vector<Field>& fixed_fields() {
    static const std::vector<Field> fields = {
        {"database.url",
         [](Manifest& m, const Value& v) {
             m.database.url = non_empty(v, "a libpq URL or key=value string, for example ${DATABASE_URL}");
         }},
        {"database.pool_mode", [](Manifest& m, const Value& v) { m.database.pool_mode = pool_mode(v); }},
        {"database.pool_size", [](Manifest& m, const Value& v) { m.database.pool_size = at_least_one(v); }},
        {"database.max_pools", [](Manifest& m, const Value& v) { m.database.max_pools = at_least_one(v); }},
        {"database.pool_idle_timeout",
         [](Manifest& m, const Value& v) { m.database.pool_idle_timeout = duration(v); }},
        {"database.connect_timeout", [](Manifest& m, const Value& v) { m.database.connect_timeout = duration(v); }},
        {"database.statement_timeout",
         [](Manifest& m, const Value& v) { m.database.statement_timeout = duration(v); }},
        {"database.application_name",
         [](Manifest& m, const Value& v) { m.database.application_name = v.text; }},
        {"isolation.schema_template",
         [](Manifest& m, const Value& v) {
             if (v.text.find("{id}") == std::string::npos) malformed(v, "a schema name containing {id}, such as tenant_{id}");
             m.isolation.schema_template = v.text;
         }},
        {"isolation.shared_schema",
         [](Manifest& m, const Value& v) { m.isolation.shared_schema = non_empty(v, "a schema name such as public"); }},
        {"isolation.tenant_id_pattern",
         [](Manifest& m, const Value& v) {
             const std::string pattern = non_empty(v, "a regular expression for tenant ids");
             try {
                 std::regex check(pattern, std::regex::ECMAScript);
             } catch (const std::regex_error& e) {
                 malformed(v, std::string("an ECMAScript regular expression (") + e.what() + ")");
             }
             m.isolation.tenant_id_pattern = pattern;
         }},
        {"migrations.tenant_dir",
         [](Manifest& m, const Value& v) {
             m.migrations.tenant_dir = resolve(v, non_empty(v, "the folder of tenant migrations"));
         }},
        {"migrations.shared_dir",
         [](Manifest& m, const Value& v) {
             if (v.text.empty()) m.migrations.shared_dir.reset();
             else m.migrations.shared_dir = resolve(v, v.text);
         }},
        {"migrations.table",
         [](Manifest& m, const Value& v) { m.migrations.table = non_empty(v, "a table name"); }},
        {"migrations.shared_table",
         [](Manifest& m, const Value& v) { m.migrations.shared_table = non_empty(v, "a table name"); }},
        // Which names are valid depends on the tracking plugins loaded; the migration engine checks.
        {"migrations.format",
         [](Manifest& m, const Value& v) {
             m.migrations.format = non_empty(v, "auto or a tracking format (name, hash, drizzle-kit)");
         }},
        {"migrations.default_format",
         [](Manifest& m, const Value& v) {
             m.migrations.default_format = non_empty(v, "a tracking format (name, hash, drizzle-kit)");
         }},
        {"migrations.concurrency", [](Manifest& m, const Value& v) { m.migrations.concurrency = at_least_one(v); }},
        {"migrations.lock_timeout", [](Manifest& m, const Value& v) { m.migrations.lock_timeout = duration(v); }},
        {"migrations.transaction",
         [](Manifest& m, const Value& v) { m.migrations.transaction = transaction_mode(v); }},
        {"migrations.fail_fast", [](Manifest& m, const Value& v) { m.migrations.fail_fast = boolean(v); }},
        {"migrations.template_schema",
         [](Manifest& m, const Value& v) {
             m.migrations.template_schema = non_empty(v, "the schema the tenant migrations were generated against, such as public");
         }},
        {"migrations.rebase",
         [](Manifest& m, const Value& v) {
             if (v.text != "auto" && v.text != "off") malformed(v, "auto or off");
             m.migrations.rebase = v.text == "auto" ? RebaseMode::automatic : RebaseMode::off;
         }},
        {"plugins.path",
         [](Manifest& m, const Value& v) {
             m.plugins.path.clear();
             for (const auto& item : list(v.text)) m.plugins.path.push_back(resolve(v, item));
         }},
        {"plugins.load", [](Manifest& m, const Value& v) { m.plugins.load = list(v.text); }},
        {"roles.discovery", [](Manifest& m, const Value& v) { m.roles.discovery = v.text; }},
        {"roles.retry", [](Manifest& m, const Value& v) { m.roles.retry = v.text; }},
        {"roles.sinks", [](Manifest& m, const Value& v) { m.roles.sinks = list(v.text); }},
        {"roles.extractor", [](Manifest& m, const Value& v) { m.roles.extractor = list(v.text); }},
    };
    return fields;
}

const std::vector<std::string>& fixed_sections() {
    static const std::vector<std::string> sections = {"database", "isolation", "migrations", "plugins", "roles"};
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

std::vector<std::string> plugin_key_names(const std::map<std::string, std::set<std::string>>& plugin_keys) {
    std::vector<std::string> out;
    for (const auto& [factory, keys] : plugin_keys)
        for (const auto& k : keys) out.push_back("plugin." + factory + "." + k);
    return out;
}

// Brings in the MT_SECTION__KEY variables pass 1 could not place, now that the plugins' keys are known.
void resolve_pending_environment(const RawSettings& raw,
                                 const std::map<std::string, std::set<std::string>>& plugin_keys,
                                 std::map<std::string, RawSettings::Entry>& entries) {
    const std::vector<std::string> known = plugin_key_names(plugin_keys);
    for (const auto& p : raw.pending_environment) {
        const std::string source = variable_source(p.variable);
        const auto matches = matching_keys(known, p.section, p.key);
        if (matches.size() > 1) ambiguous_variable(p.variable, matches);
        std::string target;
        const std::string section = fold(p.section);
        if (matches.size() == 1) {
            target = matches.front();
        } else if (section.rfind("servers_", 0) == 0 && fold(p.key) == "url") {
            // Any server name may appear here, so it is taken as written: MT_SERVERS_EU1__URL -> eu1.
            std::string server = lower(p.section.substr(std::string_view("servers").size()));
            server.erase(0, server.find_first_not_of("._-"));
            target = "servers." + server + ".url";
        } else if (section.rfind("plugin_", 0) == 0) {
            throw ManifestError(source, p.variable,
                                "matches no key of a loaded plugin; plugin keys accepted: " +
                                    (known.empty() ? std::string("none (no loaded plugin takes configuration)")
                                                   : join(known)) +
                                    " (as MT_PLUGIN_<NAME>__<KEY>); " + remove_advice(source));
        } else {
            target = lower(p.section) + "." + lower(p.key);
        }
        // A flag beats the environment; a file key of the same name would have been matched in pass 1.
        if (auto it = entries.find(target); it != entries.end() && is_command_line(it->second.source)) continue;
        entries[target] = {p.value, source};
    }
}

std::string sections_expected() {
    return "[database], [isolation], [migrations], [plugins], [roles], [plugin.NAME], [servers.NAME]";
}

}  // namespace

// ---- RawSettings --------------------------------------------------------------------------

std::optional<std::string> RawSettings::get(const std::string& key) const {
    auto it = entries.find(key);
    if (it == entries.end()) return std::nullopt;
    return it->second.value;
}

std::vector<std::string> RawSettings::get_list(const std::string& key) const {
    auto value = get(key);
    return value ? list(*value) : std::vector<std::string>{};
}

// ---- pass 1 -------------------------------------------------------------------------------

RawSettings read_settings(const ManifestInput& input) {
    RawSettings raw;

    std::optional<fs::path> file;
    std::string named_by;  // how an explicit file was named; empty for the default one
    const char* config_variable = input.use_environment ? std::getenv("MT_CONFIG") : nullptr;
    if (input.file && !input.file->empty()) {
        file = *input.file;
        named_by = "-c/--config";
    } else if (config_variable && *config_variable) {
        file = fs::path(config_variable);
        named_by = "MT_CONFIG";
    } else {
        file = fs::path("./multitenant.ini");
    }

    const std::string file_source = file->string();
    std::error_code ec;
    const fs::path absolute = fs::absolute(*file, ec).lexically_normal();
    if (fs::exists(absolute, ec)) {
        if (fs::is_directory(absolute, ec))
            throw ManifestError(file_source, named_by.empty() ? "(file)" : named_by,
                                "is a directory; name the manifest file itself");
        read_file_entries(absolute, file_source, raw);
        raw.file = absolute;
        raw.base_dir = absolute.parent_path();
    } else if (!named_by.empty()) {
        throw ManifestError(file_source, named_by,
                            "no such file; check the path, or run `mtctl init` to write a starter manifest");
    } else {
        raw.base_dir = fs::current_path();
    }

    // Values from flags and the environment are taken literally: the shell has expanded them already.
    std::vector<Override> overrides;
    for (const auto& arg : input.overrides) overrides.push_back(parse_override(arg));

    if (input.use_environment) {
        // Known now: the fixed keys and any key the file or a flag names (which covers plugin keys
        // written in the file); the rest wait for build_manifest.
        std::vector<std::string> known = fixed_manifest_keys();
        for (const auto& [key, entry] : raw.entries)
            if (std::find(known.begin(), known.end(), key) == known.end()) known.push_back(key);
        for (const auto& o : overrides)
            if (std::find(known.begin(), known.end(), o.key) == known.end()) known.push_back(o.key);

        for (auto& v : manifest_variables()) {
            const auto matches = matching_keys(known, v.section, v.key);
            if (matches.size() > 1) ambiguous_variable(v.name, matches);
            if (matches.size() == 1)
                raw.entries[matches.front()] = {v.value, variable_source(v.name)};
            else
                raw.pending_environment.push_back({v.name, v.section, v.key, v.value});
        }
    }

    for (const auto& o : overrides) raw.entries[o.key] = {o.value, command_line_source};
    return raw;
}

// ---- pass 2 -------------------------------------------------------------------------------

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

// ---- helpers ------------------------------------------------------------------------------

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

std::string starter_manifest() {
    return R"(# mtenant manifest. '#' starts a comment.
# Every key can also come from an environment variable MT_SECTION__KEY (MT_DATABASE__POOL_SIZE=20)
# or a flag --section.key=value (--database.pool_size=20): a flag beats the environment, which
# beats this file, which beats the defaults written here. ${NAME} in a value is replaced by the
# environment variable NAME. '#' starts a comment even inside a value: a URL whose password holds
# one goes in an environment variable, written here as ${NAME}. Relative paths in this file are
# relative to this file's folder.

[database]
url = ${DATABASE_URL}            # required: a libpq URL or key=value string
pool_mode = per-tenant           # per-tenant | shared | transaction (behind PgBouncer in transaction mode)
pool_size = 10                   # connections per pool
max_pools = 50                   # per-tenant mode: most tenant pools alive at once (least recently used evicted)
pool_idle_timeout = 1h           # close a tenant pool unused this long; 0 = never
connect_timeout = 5s               # also bounds the wait for a free pooled connection
# statement_timeout = 30s        # leases: cancel a statement running longer; default: the server's
application_name = mtenant

[isolation]
schema_template = tenant_{id}    # {id} is the tenant id
shared_schema = public
tenant_id_pattern = ^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$

[migrations]
tenant_dir = drizzle/tenant      # migrations applied to every tenant schema
shared_dir = drizzle/shared      # migrations for the shared schema (mtctl migrate-shared); optional
table = __drizzle_migrations     # tracking table in each tenant schema
shared_table = __drizzle_migrations
format = auto                    # auto | name | hash | drizzle-kit
default_format = name            # what auto creates in a schema that has no tracking table yet
concurrency = 10                 # tenants migrated in parallel
lock_timeout = 10s               # SET lock_timeout while migrating
transaction = per-migration      # per-migration | per-tenant (all pending migrations of a tenant in one)
fail_fast = false                # stop every tenant at the first failure
template_schema = public         # schema the tenant migrations name their own objects in (drizzle-kit: public)
rebase = auto                    # auto: rewrite template_schema.x to the tenant schema for objects the folder owns | off

[plugins]
# path = plugins                 # folders searched first; the kernel's own plugin folder is always searched
load = tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential

[roles]
discovery = discovery-sql
retry = retry-exponential
sinks =                          # for example metrics-prometheus, log-debug (load them above)
extractor =                      # for HTTP services, for example extract-header

[plugin.discovery-sql]
query = SELECT id FROM public.tenants ORDER BY id

# [servers.eu1]                  # more database servers; discovery says which tenant lives where
# url = postgresql://app@db-eu1/app
)";
}

}  // namespace mt
