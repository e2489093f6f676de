#include "cli.hpp"
#include "json.hpp"

#include <mt/base/errors.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace mtctl {

namespace {
std::map<std::string, CommandInfo>& command_table() {
    static std::map<std::string, CommandInfo> table;
    return table;
}
}  // namespace

bool register_command(CommandInfo info) {
    const std::string name = info.name;
    command_table()[name] = std::move(info);
    return true;
}

const std::map<std::string, CommandInfo>& registered_commands() { return command_table(); }

nlohmann::json tenant_json(const mt::Tenant& t) {
    return {{"id", t.id}, {"schema", t.schema}, {"server", t.server ? nlohmann::json(*t.server) : nlohmann::json(nullptr)}};
}

mt::ManifestInput Globals::manifest_input() const {
    mt::ManifestInput in;
    if (config) in.file = *config;
    in.overrides = overrides;
    return in;
}

void Output::line(const std::string& text) const {
    if (!g_.json) std::cout << text << "\n";
}

void Output::info(const std::string& text) const {
    if (!g_.json && !g_.quiet) std::cout << text << "\n";
}

void Output::json(const nlohmann::json& document) const {
    if (!g_.json) return;
    if (document.contains("schema_version")) {
        nlohmann::json copy = document;
        copy.erase("schema_version");
        return json(copy);
    }
    // nlohmann::json keeps keys sorted: schema_version goes in front of the dumped text, so a reader
    // can check it before anything else, without a copy of a document that may hold 100k tenants.
    const std::string version = "\"schema_version\": " + std::to_string(json_schema_version);
    std::string text = document.dump(2);
    // Every command's document is an object; anything else is printed as it is.
    if (document.is_object() && document.empty()) text = "{\n  " + version + "\n}";
    else if (document.is_object()) text.insert(1, "\n  " + version + ",");
    std::cout << text << "\n";
}

std::string Output::paint(const std::string& text, const char* ansi) const {
    if (!g_.color || g_.json) return text;
    return std::string("\033[") + ansi + "m" + text + "\033[0m";
}

std::function<void(size_t, size_t)> Output::progress(const std::string& label) const {
    if (!g_.progress || g_.quiet || !isatty(STDERR_FILENO)) return {};
    return [label](size_t done, size_t total) {
        constexpr size_t width = 30;
        const size_t filled = total ? done * width / total : width;
        std::cerr << "\r" << label << " [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                  << done << "/" << total << std::flush;
        if (done == total) std::cerr << "\r" << std::string(label.size() + width + 30, ' ') << "\r" << std::flush;
    };
}

namespace {

// The alternatives of a usage text ("tenant list | create --id X"), split at " | " outside
// brackets so that "(--all | --tenant ID)" stays whole; each starts with the command's name.
std::vector<std::string> usage_alternatives(const std::string& command, const std::string& usage) {
    std::vector<std::string> out;
    std::string current;
    int depth = 0;
    for (size_t i = 0; i < usage.size(); ++i) {
        const char c = usage[i];
        if (c == '(' || c == '[') ++depth;
        if (c == ')' || c == ']') --depth;
        if (depth == 0 && usage.compare(i, 3, " | ") == 0) {
            out.push_back(current);
            current.clear();
            i += 2;
            continue;
        }
        current += c;
    }
    out.push_back(current);
    for (auto& alternative : out)
        if (alternative != command && alternative.rfind(command + " ", 0) != 0) alternative = command + " " + alternative;
    return out;
}

// "usage: mtctl TEXT", wrapped at spaces to 100 columns with continuation lines indented under the
// command; `first` is the prefix of the first line ("usage: " or the same width of spaces).
std::string wrapped_usage(const std::string& first, const std::string& text) {
    constexpr size_t width = 100;
    const std::string lead = first + "mtctl ";
    const std::string indent(lead.size() + text.substr(0, text.find(' ')).size() + 1, ' ');
    std::string out = lead, line_word;
    size_t column = lead.size();
    std::istringstream words(text);
    bool first_word = true;
    while (words >> line_word) {
        if (!first_word && column + 1 + line_word.size() > width) {
            out += "\n" + indent;
            column = indent.size();
        } else if (!first_word) {
            out += ' ';
            ++column;
        }
        out += line_word;
        column += line_word.size();
        first_word = false;
    }
    return out + "\n";
}

}  // namespace

std::string command_usage(const Invocation& inv) {
    const std::string& command = inv.words.at(0);
    const auto it = registered_commands().find(command);
    if (it == registered_commands().end()) return wrapped_usage("usage: ", command);
    auto alternatives = usage_alternatives(command, it->second.usage);
    // `mtctl tenant create --help`: only the subcommand's own line.
    if (inv.words.size() > 1) {
        const std::string prefix = command + " " + inv.words[1];
        std::vector<std::string> chosen;
        for (const auto& a : alternatives)
            if (a == prefix || a.rfind(prefix + " ", 0) == 0) chosen.push_back(a);
        if (!chosen.empty()) alternatives = chosen;
    }
    std::string text;
    for (size_t i = 0; i < alternatives.size(); ++i) text += wrapped_usage(i == 0 ? "usage: " : "       ", alternatives[i]);
    return text;
}

po::variables_map parse_options(const Invocation& inv, const po::options_description& desc,
                                const po::positional_options_description* positional) {
    po::options_description all(desc);
    all.add_options()("help,h", "show this command's options");
    if (describe_options) describe_options(all);
    po::variables_map vm;
    auto parser = po::command_line_parser(inv.args).options(all);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
        const auto it = registered_commands().find(inv.words.at(0));
        std::cout << command_usage(inv) << "\n";
        if (it != registered_commands().end() && !it->second.summary.empty()) std::cout << it->second.summary << "\n\n";
        std::cout << all << "\n"
                  << "global flags: -c FILE --json -q -v --no-color --no-progress --SECTION.KEY=VALUE "
                     "(see mtctl --help)\n";
        std::exit(0);
    }
    po::notify(vm);
    return vm;
}

void add_tenant_selection(po::options_description& desc) {
    desc.add_options()("all", "every tenant the discovery plugin returns")(
        "tenant", po::value<std::vector<std::string>>()->composing()->value_name("ID"), "a tenant id (repeatable)")(
        "tenants", po::value<std::string>()->value_name("a,b"), "comma-separated tenant ids");
}

std::chrono::milliseconds duration_flag(const po::variables_map& vm, const std::string& flag) {
    const auto text = vm[flag].as<std::string>();
    try {
        return mt::parse_duration(text);
    } catch (const std::exception& e) {
        throw mt::UsageError("--" + flag + " " + text + ": " + e.what());
    }
}

mt::TenantSelection tenant_selection(const po::variables_map& vm) {
    mt::TenantSelection s;
    s.all = vm.count("all") != 0;
    if (vm.count("tenant"))
        for (const auto& id : vm["tenant"].as<std::vector<std::string>>()) s.ids.push_back(id);
    if (vm.count("tenants")) {
        std::stringstream ss(vm["tenants"].as<std::string>());
        std::string id;
        while (std::getline(ss, id, ',')) {
            const auto b = id.find_first_not_of(' ');
            const auto e = id.find_last_not_of(' ');
            if (b != std::string::npos) s.ids.push_back(id.substr(b, e - b + 1));
        }
    }
    if (s.all && !s.ids.empty()) throw mt::UsageError("--all cannot be combined with --tenant/--tenants");
    return s;
}

std::string pad(const std::string& s, size_t width) {
    return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::pair<size_t, size_t> tenant_widths(const mt::TenantList& tenants) {
    size_t id = 6, schema = 6;  // "TENANT", "SCHEMA"
    for (size_t i = 0; i < tenants.size(); ++i) {
        id = std::max(id, tenants.id(i).size());
        schema = std::max(schema, tenants.schema(i).size());
    }
    return {id, schema};
}

std::string row_text(const std::vector<std::string>& cells, const std::vector<size_t>& widths) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) line += i + 1 == cells.size() ? cells[i] : pad(cells[i], widths[i]) + "  ";
    return line;
}

std::string seconds(double ms) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2fs", ms / 1000.0);
    return text;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> widths;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (widths.size() <= i) widths.push_back(0);
            widths[i] = std::max(widths[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) line += i + 1 == r.size() ? r[i] : pad(r[i], widths[i] + 2);
        out += line + "\n";
    }
    return out;
}

}  // namespace mtctl
