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
    if (g_.json) std::cout << document.dump(2) << "\n";
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

po::variables_map parse_options(const Invocation& inv, const po::options_description& desc,
                                const po::positional_options_description* positional) {
    po::options_description all(desc);
    all.add_options()("help,h", "show this command's options");
    po::variables_map vm;
    auto parser = po::command_line_parser(inv.args).options(all);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
        const auto it = registered_commands().find(inv.words.at(0));
        std::cout << "usage: mtctl " << (it != registered_commands().end() ? it->second.usage : inv.words[0])
                  << "\n" << all << "\nGlobal flags: see mtctl --help\n";
        std::exit(0);
    }
    po::notify(vm);
    return vm;
}

void add_tenant_selection(po::options_description& desc) {
    desc.add_options()("all", "every tenant the discovery plugin returns")(
        "tenant", po::value<std::vector<std::string>>()->composing(), "a tenant id (repeatable)")(
        "tenants", po::value<std::string>(), "comma-separated tenant ids");
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

std::pair<size_t, size_t> tenant_widths(const std::vector<mt::Tenant>& tenants) {
    size_t id = 6, schema = 6;  // "TENANT", "SCHEMA"
    for (const auto& t : tenants) {
        id = std::max(id, t.id.size());
        schema = std::max(schema, t.schema.size());
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
