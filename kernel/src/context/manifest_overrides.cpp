// Flags (--section.key=value) and MT_SECTION__KEY environment variables: how they are read and
// matched to the manifest's keys. A flag beats the environment, which beats the file.
#include "context/manifest_parts.hpp"

#include <mt/base/errors.hpp>

#include <algorithm>

extern char** environ;

namespace mt::manifest_detail {

namespace {

std::vector<std::string> plugin_key_names(const std::map<std::string, std::set<std::string>>& plugin_keys) {
    std::vector<std::string> out;
    for (const auto& [factory, keys] : plugin_keys)
        for (const auto& k : keys) out.push_back("plugin." + factory + "." + k);
    return out;
}

}  // namespace

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

}  // namespace mt::manifest_detail
