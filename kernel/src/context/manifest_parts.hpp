// What the manifest's parts share, private to the context room: reading the file (manifest_read.cpp,
// pass 1), flags and MT_SECTION__KEY variables (manifest_overrides.cpp), the key table and
// build_manifest (manifest.cpp, pass 2), and the wording helpers they all use (manifest_text.cpp).
#pragma once

#include <mt/context/manifest.hpp>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mt::manifest_detail {

// Where a value came from, as errors name it: the file's path, "command line" or
// "environment (MT_SECTION__KEY)".
extern const std::string command_line_source;
std::string variable_source(const std::string& name);
bool is_environment(const std::string& source);
bool is_command_line(const std::string& source);

std::string trim(std::string_view s);
std::string lower(std::string_view s);
// Environment names cannot hold '.' or '-', so names are compared with '.', '-' and '_' (and runs
// of them) folded into one '_': MT_PLUGIN_DISCOVERY_SQL__QUERY meets plugin.discovery-sql.query.
std::string fold(std::string_view s);
// "plugin.discovery-sql.query" -> {"plugin.discovery-sql", "query"}: keys never hold a dot.
std::pair<std::string, std::string> split_key(const std::string& full);
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");
// "a, b,, c" -> {"a", "b", "c"}.
std::vector<std::string> list(const std::string& text);
// " (did you mean X?)" when one candidate is a likely typo of what was given.
std::string did_you_mean(const std::string& given, const std::vector<std::string>& candidates);
// What to do about an unwanted key, in the terms of where it came from.
std::string remove_advice(const std::string& source);

// A --section.key=value flag.
struct Override {
    std::string key;
    std::string value;
};
Override parse_override(const std::string& arg);

struct Variable {
    std::string name;  // MT_DATABASE__URL
    std::string section;
    std::string key;
    std::string value;
};
// Every MT_SECTION__KEY variable, sorted by name so resolution does not depend on environ's order.
std::vector<Variable> manifest_variables();
// The keys of `known` the variable's section and key name, compared folded.
std::vector<std::string> matching_keys(const std::vector<std::string>& known, const std::string& section,
                                       const std::string& key);
[[noreturn]] void ambiguous_variable(const std::string& name, const std::vector<std::string>& matches);
// Brings in the MT_SECTION__KEY variables pass 1 could not place, now that the plugins' keys are known.
void resolve_pending_environment(const RawSettings& raw,
                                 const std::map<std::string, std::set<std::string>>& plugin_keys,
                                 std::map<std::string, RawSettings::Entry>& entries);

}  // namespace mt::manifest_detail
