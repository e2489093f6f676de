// mtctl: parses flags, calls one kernel function per command, renders a table or JSON.
#include "cli.hpp"
#include "json.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/redact.hpp>
#include <mt/sdk/abi.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <unistd.h>

namespace {

using namespace mtctl;

std::string usage() {
    std::vector<const CommandInfo*> listed;
    for (const auto& [name, info] : registered_commands())
        if (info.order >= 0) listed.push_back(&info);
    std::sort(listed.begin(), listed.end(), [](auto* a, auto* b) { return a->order < b->order; });
    std::string text = "usage: mtctl [global flags] COMMAND [options]\n\ncommands:\n";
    for (const auto* c : listed) text += "  " + pad(c->name, 16) + c->summary + "\n";
    text += R"(
global flags:
  -c, --config FILE            manifest (default: $MT_CONFIG, then ./multitenant.ini)
  --json                       one JSON document on stdout
  -q, --quiet                  only errors and the summary
  -v, --verbose                more detail (and debug logs on stderr)
  --no-color                   no colour (also when NO_COLOR is set and not empty)
  --no-progress                no progress bar on stderr
  --version                    mtctl's version and the plugin ABI it loads
  --SECTION.KEY=VALUE          override any manifest key

exit codes: 0 success; 1 failed for at least one tenant, unhealthy or drift found; 2 usage,
manifest or plugin error (nothing changed); 3 cannot reach the database. An unexpected internal
error exits 1 too: it may have happened after something was changed.
Run 'mtctl COMMAND --help' for a command's options.
)";
    return text;
}

// Splits argv into global flags, the command words and the command's own arguments.
Invocation split(int argc, char** argv) {
    Invocation inv;
    auto& g = inv.globals;
    bool command_done = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const std::string& flag) -> std::string {
            if (i + 1 >= argc) throw mt::UsageError(flag + " needs a value");
            return argv[++i];
        };
        if (a == "-c" || a == "--config") g.config = value(a);
        else if (a.rfind("--config=", 0) == 0) g.config = a.substr(9);
        else if (a == "--json") g.json = true;
        else if (a == "-q" || a == "--quiet") g.quiet = true;
        else if (a == "-v" || a == "--verbose") g.verbose = true;
        else if (a == "--no-color") g.color = false;
        else if (a == "--no-progress") g.progress = false;
        else if (a == "--version" && inv.words.empty()) g.version = true;
        else if (a.rfind("--", 0) == 0 && a.find('.') != std::string::npos && a.find('.') < a.find('=') &&
                 a.find('=') != std::string::npos)
            g.overrides.push_back(a.substr(2));
        else if (!command_done && a[0] != '-') {
            inv.words.push_back(a);
            // "tenant" and "plugins" take a subcommand word; "plugins inspect" takes a file.
            const bool wants_more = (inv.words.size() == 1 && (a == "tenant" || a == "plugins"));
            if (!wants_more) command_done = true;
        } else {
            if (!inv.words.empty()) command_done = true;
            inv.args.push_back(a);
        }
    }
    return inv;
}

}  // namespace

int main(int argc, char** argv) {
    Invocation inv;
    try {
        inv = split(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "mtctl: " << e.what() << "\n";
        return 2;
    }
    // Colour only on terminals, and never when NO_COLOR is set to anything (https://no-color.org);
    // an empty NO_COLOR counts as unset, as the convention says. Both streams must be terminals:
    // painted text goes to either, and escapes must not end up in a pipe or a file.
    const char* no_color = std::getenv("NO_COLOR");
    if ((no_color && *no_color) || !isatty(STDERR_FILENO) || !isatty(STDOUT_FILENO)) inv.globals.color = false;
    // stdout carries the one --json document (or the table): the kernel's warnings go to stderr,
    // coloured by level only when mtctl colours at all.
    spdlog::set_default_logger(spdlog::stderr_color_mt(
        "mtctl", inv.globals.color ? spdlog::color_mode::automatic : spdlog::color_mode::never));
    spdlog::set_level(inv.globals.verbose ? spdlog::level::debug : spdlog::level::warn);
    spdlog::set_pattern("%^[%l]%$ %v");
    Output out(inv.globals);
    if (inv.globals.version) {
        const std::string abi = std::to_string(MT_ABI_MAJOR) + "." + std::to_string(MT_ABI_MINOR);
        out.json({{"version", MT_VERSION}, {"abi", abi}, {"abi_major", MT_ABI_MAJOR}, {"abi_minor", MT_ABI_MINOR}});
        out.line(std::string("mtctl ") + MT_VERSION + " (plugin ABI " + abi + ")");
        return 0;
    }
    if (inv.words.empty()) {
        const bool help = std::find(inv.args.begin(), inv.args.end(), "--help") != inv.args.end() ||
                          std::find(inv.args.begin(), inv.args.end(), "-h") != inv.args.end();
        (help ? std::cout : std::cerr) << usage();
        return help ? 0 : 2;
    }
    const auto it = registered_commands().find(inv.words[0]);
    if (it == registered_commands().end()) {
        std::cerr << "mtctl: unknown command '" << inv.words[0] << "'\n\n" << usage();
        return 2;
    }
    // Every error the kernel lets out is an mt::Error carrying its exit code (libpqxx's are translated
    // at the kernel's entry points). Messages are redacted once more here: whatever path a message
    // took, a password it carries (from the manifest, DATABASE_URL, PGPASSWORD or libpq) is not printed.
    try {
        return it->second.run(inv, out);
    } catch (const mt::Error& e) {
        std::cerr << "mtctl: " << mt::redact_text(e.what()) << "\n";
        return static_cast<int>(e.exit_code());
    } catch (const po::error& e) {
        std::cerr << "mtctl " << inv.words[0] << ": " << mt::redact_text(e.what()) << " (see mtctl " << inv.words[0]
                  << " --help)\n";
        return static_cast<int>(mt::ExitCode::usage);
    } catch (const std::exception& e) {
        // A bug in mtctl itself (the kernel's entry points translate their own): as InternalError.
        std::cerr << "mtctl: " << mt::redact_text(e.what()) << "\n";
        return static_cast<int>(mt::ExitCode::failed);
    }
}
