// The manifest's wording helpers: names folded for comparison, lists, "did you mean" and what to
// do about a key, in the terms of where it came from.
#include "context/manifest_parts.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace mt::manifest_detail {

const std::string command_line_source = "command line";
namespace {
const std::string environment_prefix = "environment (";
}  // namespace

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

std::pair<std::string, std::string> split_key(const std::string& full) {
    const size_t dot = full.rfind('.');
    if (dot == std::string::npos) return {"", full};
    return {full.substr(0, dot), full.substr(dot + 1)};
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

namespace {

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

}  // namespace

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

std::string variable_source(const std::string& name) { return environment_prefix + name + ")"; }

}  // namespace mt::manifest_detail
