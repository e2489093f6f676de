// mtctl's command-line plumbing: global flags, per-command options, output and exit codes. Only
// what every command needs: a command includes the kernel header of the entry point it calls
// (mt/fleet/commands.hpp) and json.hpp when it renders JSON.
#pragma once

#include <mt/context/manifest.hpp>
#include <mt/context/tenant.hpp>

#include <boost/program_options.hpp>
#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mtctl {

namespace po = boost::program_options;

struct Globals {
    std::optional<std::string> config;
    bool json = false;
    bool quiet = false;
    bool verbose = false;
    bool color = true;
    bool progress = true;
    bool version = false;  // --version
    std::vector<std::string> overrides;  // --section.key=value

    mt::ManifestInput manifest_input() const;
};

struct Invocation {
    Globals globals;
    std::vector<std::string> words;  // command and subcommand
    std::vector<std::string> args;   // everything else, for the command's own options
};

// What a command prints: human text goes to stdout line by line; with --json one document.
class Output {
public:
    explicit Output(const Globals& g) : g_(g) {}
    const Globals& globals() const { return g_; }
    void line(const std::string& text) const;         // human output (suppressed by --json)
    void info(const std::string& text) const;         // human output also suppressed by -q
    void json(const nlohmann::json& document) const;  // only with --json
    std::string paint(const std::string& text, const char* ansi) const;
    // A progress callback drawing a bar on stderr when stderr is a terminal (else no-op).
    std::function<void(size_t, size_t)> progress(const std::string& label) const;

private:
    const Globals& g_;
};

using Command = std::function<int(const Invocation&, const Output&)>;

// Commands register themselves from their own source file:
//   static const bool sync_registered = register_command({"sync", "…usage…", "what it does", 60, cmd_sync});
// so that each command lives in one file and main.cpp never changes. `order` sorts the help.
struct CommandInfo {
    std::string name;
    std::string usage;    // e.g. "tenant create --id X [--no-migrate]"
    std::string summary;  // one line
    int order = 100;
    Command run;
};
bool register_command(CommandInfo info);
const std::map<std::string, CommandInfo>& registered_commands();

// The usage lines of inv's command ("usage: mtctl …"), only the subcommand's when one is given,
// wrapped to 100 columns.
std::string command_usage(const Invocation& inv);
// Parses a command's options (plus tenant selection when asked) from inv.args; --help prints usage.
po::variables_map parse_options(const Invocation& inv, const po::options_description& desc,
                                const po::positional_options_description* positional = nullptr);
// Set only by `mtctl __docs` (docs.cpp) while it runs each command to collect its options for the
// man page and completions: parse_options hands it the description (with --help) and it throws.
extern std::function<void(const po::options_description&)> describe_options;
void add_tenant_selection(po::options_description& desc);
// The selection the flags give, empty when none: the kernel decides what an empty one means.
// --all together with ids is a usage error.
mt::TenantSelection tenant_selection(const po::variables_map& vm);
// A duration flag (`--timeout 5s`); a malformed one is a usage error naming the flag (exit 2).
std::chrono::milliseconds duration_flag(const po::variables_map& vm, const std::string& flag);
template <class T>
std::optional<T> optional_flag(const po::variables_map& vm, const std::string& flag) {
    return vm.count(flag) ? std::optional<T>(vm[flag].as<T>()) : std::nullopt;
}

std::string pad(const std::string& s, size_t width);
// Renders rows as aligned columns (first row is the header).
std::string table(const std::vector<std::vector<std::string>>& rows);
// A streamed table (rows printed as tenants finish) sizes its columns before the first row: the
// tenant and schema columns from the tenant list, the others fixed.
inline constexpr size_t kFormatWidth = 11;  // the longest in-tree format label, drizzle-kit
std::pair<size_t, size_t> tenant_widths(const mt::TenantList& tenants);
// One row: each cell padded to its width plus two spaces (a wider cell keeps its two spaces), the
// last cell as it is.
std::string row_text(const std::vector<std::string>& cells, const std::vector<size_t>& widths);
// "1.23s", as the summary lines show a duration.
std::string seconds(double ms);

}  // namespace mtctl
