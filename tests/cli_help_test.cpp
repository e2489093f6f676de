// mtctl's conventions for a new user (issue 15, item 2): `mtctl COMMAND --help` for every command
// and subcommand is a usage line matching the command's options, a blank line between sections and
// nothing glued; --version; NO_COLOR (https://no-color.org) turns colour off like --no-color.
#include "support/pg.hpp"

#include <mt/sdk/abi.h>
#include <mt/sdk/version.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mt::test;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

// The --flags a text names.
std::set<std::string> flags_in(const std::string& text) {
    std::set<std::string> out;
    const std::regex flag(R"((^|[\s\[\(|])(--[a-z][a-z-]*))");
    for (std::sregex_iterator it(text.begin(), text.end(), flag), end; it != end; ++it) out.insert((*it)[2]);
    return out;
}

}  // namespace

TEST_CASE("mtctl COMMAND --help: usage matching the options, sections apart, nothing glued", "[cli]") {
    const auto top = mtctl("--help");
    REQUIRE(top.exit_code == 0);
    std::vector<std::string> invocations;
    std::istringstream in(top.out.substr(top.out.find("commands:\n") + 10));
    std::string line;
    std::smatch m;
    while (std::getline(in, line) && !line.empty())
        if (std::regex_match(line, m, std::regex(R"(  ([a-z][a-z-]*)\s+.*)"))) invocations.push_back(m[1]);
    REQUIRE(invocations.size() >= 15);
    for (const char* sub : {"tenant list", "tenant create", "tenant drop", "tenant clone", "plugins inspect", "runs show"})
        invocations.push_back(sub);

    for (const auto& command : invocations) {
        const auto r = mtctl(command + " --help");
        INFO("mtctl " << command << " --help\n" << both(r));
        CHECK(r.exit_code == 0);
        CHECK(r.err.empty());
        CHECK_THAT(r.out, StartsWith("usage: mtctl " + command));
        CHECK_THAT(r.out, EndsWith("\n\nglobal flags: -c FILE --json -q -v --no-color --no-progress "
                                   "--SECTION.KEY=VALUE (see mtctl --help)\n"));
        const auto lines = lines_of(r.out);
        for (const auto& l : lines) {
            INFO(l);
            CHECK(l.size() <= 100);
        }
        // The option list is its own section: a blank line before its "… options:" title.
        const auto title = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
            return l.size() > 9 && l.substr(l.size() - 9) == " options:";
        });
        REQUIRE(title != lines.end());
        CHECK(title != lines.begin());
        CHECK((title - 1)->empty());

        // Every flag the usage line names is an option, and every option but --help appears in the
        // usage; the options that take a positional argument appear as their value (RUN, ID, FILE).
        std::string usage, options;
        bool in_usage = true;
        for (auto l = lines.begin(); l != lines.end(); ++l) {
            if (l->empty()) in_usage = false;
            if (in_usage) usage += *l + "\n";
            if (l > title && !l->empty() && l->rfind("global flags:", 0) != 0) {
                const auto described = l->find("  ", 2);
                options += l->substr(0, described) + "\n";
            }
        }
        const auto in_usage_flags = flags_in(usage);
        auto listed = flags_in(options);
        listed.erase("--help");
        // --resume RUN's positional argument.
        for (const char* resumable : {"migrate", "seed", "sync", "convert-format", "migrate-tracking-format"})
            if (command == resumable) listed.erase("--run");
        if (command == "runs show") listed.erase("--id");
        if (command == "plugins inspect") listed.erase("--file");
        // tenant alone has no options: its usage lists the subcommands'.
        if (command != "tenant") CHECK(in_usage_flags == listed);
        CHECK_THAT(options, !Contains(" arg"));
    }
}

TEST_CASE("mtctl tenant --help lists every tenant subcommand", "[cli]") {
    const auto r = mtctl("tenant --help");
    INFO(both(r));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, StartsWith("usage: mtctl tenant list\n       mtctl tenant create --id X [--no-migrate]\n"
                                 "       mtctl tenant drop --id X --force\n"
                                 "       mtctl tenant clone --from A --to B [--with-data]\n\ntenant lifecycle\n"));
}

TEST_CASE("mtctl --version names the project version and the plugin ABI, also as JSON", "[cli]") {
    const std::string abi = std::to_string(MT_ABI_MAJOR) + "." + std::to_string(MT_ABI_MINOR);
    const auto text = mtctl("--version");
    INFO(both(text));
    CHECK(text.exit_code == 0);
    CHECK(text.out == std::string("mtctl ") + MT_VERSION + " (plugin ABI " + abi + ")\n");
    const auto json = mtctl("--json --version");
    INFO(both(json));
    CHECK(json.exit_code == 0);
    CHECK(json.out == std::string("{\n  \"schema_version\": 1,\n  \"abi\": \"") + abi + "\",\n  \"abi_major\": " +
                          std::to_string(MT_ABI_MAJOR) + ",\n  \"abi_minor\": " + std::to_string(MT_ABI_MINOR) +
                          ",\n  \"version\": \"" + MT_VERSION + "\"\n}\n");
}

TEST_CASE("NO_COLOR set and not empty turns colour off on a terminal, as --no-color does", "[cli]") {
    // script(1) gives mtctl a terminal on stdout and stderr; doctor paints its check states.
    TempDir cwd;
    const auto on_terminal = [&](const std::string& environment, const std::string& flags) {
        return run("cd " + shell_quote(cwd.path().string()) + " && " + environment + " script -qec " +
                   shell_quote(shell_quote(MT_MTCTL) + " " + flags + " -c missing.ini doctor") + " /dev/null");
    };
    const auto coloured = on_terminal("env -u NO_COLOR", "");
    INFO(both(coloured));
    CHECK(coloured.exit_code == 1);
    CHECK_THAT(coloured.out, Contains("\033[31mfail \033[0mmanifest"));

    const auto empty = on_terminal("env NO_COLOR=", "");
    CHECK_THAT(empty.out, Contains("\033[31mfail \033[0mmanifest"));

    for (const auto& [environment, flags] : std::vector<std::pair<std::string, std::string>>{
             {"env NO_COLOR=1", ""}, {"env NO_COLOR=true", ""}, {"env -u NO_COLOR", "--no-color"}}) {
        const auto plain = on_terminal(environment, flags);
        INFO(environment << " mtctl " << flags << "\n" << both(plain));
        CHECK(plain.exit_code == 1);
        CHECK_THAT(plain.out, Contains("fail manifest"));
        CHECK_THAT(plain.out, !Contains("\033["));
    }
}
