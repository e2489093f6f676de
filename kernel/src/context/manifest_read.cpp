// Pass 1 of the manifest (SPEC §7): the INI file (syntax checked line by line, ${NAME} expanded),
// then the environment and flags on top, into RawSettings. Which keys exist is pass 2's business
// (manifest.cpp), once the plugins' keys are known.
#include "context/manifest_parts.hpp"

#include <mt/base/errors.hpp>

#include <boost/program_options/errors.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mt {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace manifest_detail;

namespace {

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

}  // namespace

std::optional<std::string> RawSettings::get(const std::string& key) const {
    auto it = entries.find(key);
    if (it == entries.end()) return std::nullopt;
    return it->second.value;
}

std::vector<std::string> RawSettings::get_list(const std::string& key) const {
    auto value = get(key);
    return value ? list(*value) : std::vector<std::string>{};
}

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

}  // namespace mt
