// mtctl(1), multitenant.ini(5) and the shell completions, all written by `mtctl __docs` from the
// tables that also build `--help` and parse the manifest (issue 15, item 3): the pages render without
// warnings, the manifest page lists exactly the keys the parser accepts, every command's flags are in
// mtctl(1), and bash's completion function completes commands, flags, manifest keys and tenant ids.
#include "support/pg.hpp"
#include "support/project.hpp"
#include "support/samples.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>
#include <mt/context/manifest_keys.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using mt::test::require_ok;
using mt::test::RunResult;
using mt::test::shell_quote;

namespace {

// The generated files, written afresh by this build's mtctl into a temp dir.
struct Generated {
    mt::test::TempDir dir;
    Generated() {
        require_ok(mt::test::run(shell_quote(MT_MTCTL) + " __docs --output-dir " + shell_quote(dir.path().string())),
                   "mtctl __docs");
    }
    fs::path mtctl_page() const { return dir / "man/man1/mtctl.1"; }
    fs::path manifest_page() const { return dir / "man/man5/multitenant.ini.5"; }
    fs::path bash() const { return dir / "bash-completion/completions/mtctl"; }
    fs::path zsh() const { return dir / "zsh/vendor-completions/_mtctl"; }
};

const Generated& generated() {
    static const Generated g;
    return g;
}

// What bash's completion function offers for the words (the last one is being completed), run in cwd.
std::vector<std::string> complete(const std::vector<std::string>& words, const fs::path& cwd = fs::current_path()) {
    std::string array;
    for (const auto& w : words) array += " " + shell_quote(w);
    const std::string script = "source " + shell_quote(generated().bash().string()) + "\nCOMP_WORDS=(" + array +
                               ")\nCOMP_CWORD=" + std::to_string(words.size() - 1) +
                               "\n_mtctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    const auto r = mt::test::run("cd " + shell_quote(cwd.string()) + " && bash -c " + shell_quote(script));
    INFO("bash completion of" << array << ":\n" << r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> offered;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) offered.push_back(line);
    return offered;
}

// What the zsh completion offers for the words: zsh's compadd and _files are stubbed to print their
// candidates (zsh, not this stub, filters them by the typed prefix).
std::vector<std::string> complete_zsh(const std::vector<std::string>& words, const fs::path& cwd = fs::current_path()) {
    std::string array;
    for (const auto& w : words) array += " " + shell_quote(w);
    const std::string script =
        "compadd() { local -a out; while (( $# )); do case $1 in -a) shift; out+=(${(P)1});; -S) shift;; --) ;; "
        "*) out+=($1);; esac; shift; done; print -l -- $out }\n"
        "_files() { print -- '<files>' }\n"
        "words=(" + array + ")\nCURRENT=" + std::to_string(words.size()) + "\n"
        "_mtctl() { source " + shell_quote(generated().zsh().string()) + " }\n_mtctl\n";
    const auto r = mt::test::run("cd " + shell_quote(cwd.string()) + " && zsh -f -c " + shell_quote(script));
    INFO("zsh completion of" << array << ":\n" << r.out << r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.err.empty());
    std::vector<std::string> offered;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) offered.push_back(line);
    return offered;
}

using Words = std::vector<std::string>;

bool offers(const Words& offered, const std::string& word) {
    return std::find(offered.begin(), offered.end(), word) != offered.end();
}

}  // namespace

TEST_CASE("the man pages render without warnings with groff -ww and man -l", "[docs]") {
    for (const auto& page : {generated().mtctl_page(), generated().manifest_page()}) {
        const auto groff = mt::test::run("groff -ww -man -Tutf8 -z " + shell_quote(page.string()));
        INFO(page << "\n" << groff.err);
        CHECK(groff.exit_code == 0);
        CHECK(groff.err.empty());
        const auto man = mt::test::run("MANWIDTH=80 man -l " + shell_quote(page.string()) + " | col -b");
        INFO(man.err);
        CHECK(man.exit_code == 0);
        CHECK(man.err.empty());
        CHECK_THAT(man.out, Contains("SEE ALSO"));
    }
}

TEST_CASE("multitenant.ini(5) lists exactly the keys the manifest parser accepts, with their defaults", "[docs]") {
    const std::string page = mt::test::read_file(generated().manifest_page());
    // .SH "[database]" then .TP / .B key / description / Default: …
    std::set<std::string> listed;
    std::string section;
    std::istringstream lines(page);
    std::string line, previous;
    const std::regex header(R"(^\.SH "\[([a-z]+)\]"$)");
    std::smatch m;
    while (std::getline(lines, line)) {
        if (std::regex_match(line, m, header)) section = m[1];
        else if (line.rfind(".SH", 0) == 0) section.clear();
        else if (!section.empty() && previous == ".TP" && line.rfind(".B ", 0) == 0) listed.insert(section + "." + line.substr(3));
        previous = line;
    }
    const auto& accepted = mt::fixed_manifest_keys();
    CHECK(listed == std::set<std::string>(accepted.begin(), accepted.end()));
    CHECK(listed.size() == accepted.size());

    // Each documented default is a value the parser takes for that key, and a key the page does not
    // list is refused: the page and the parser agree in both directions.
    mt::test::TempDir dir;
    mt::test::write_file(dir / "multitenant.ini", "[database]\nurl = postgresql://docs/app\n");
    const auto parse = [&](const std::vector<std::string>& overrides) {
        mt::ManifestInput in;
        in.file = dir / "multitenant.ini";
        in.use_environment = false;
        in.overrides = overrides;
        return mt::build_manifest(mt::read_settings(in), {});
    };
    std::vector<std::string> defaults;
    for (const auto& k : mt::manifest_key_docs()) {
        INFO(k.key);
        CHECK_THAT(page, Contains(".B " + k.key.substr(k.key.find('.') + 1)));
        if (!k.default_value.empty() && k.key != "database.url") defaults.push_back(k.key + "=" + k.default_value);
    }
    const auto m_defaults = parse(defaults);
    const mt::Manifest d;
    CHECK(m_defaults.database.pool_size == d.database.pool_size);
    CHECK(m_defaults.database.pool_idle_timeout == d.database.pool_idle_timeout);
    CHECK(m_defaults.database.statement_timeout == d.database.statement_timeout);
    CHECK(m_defaults.isolation.tenant_id_pattern == d.isolation.tenant_id_pattern);
    CHECK(m_defaults.migrations.lock_timeout == d.migrations.lock_timeout);
    CHECK(m_defaults.migrations.transaction == d.migrations.transaction);
    CHECK(m_defaults.migrations.rebase == d.migrations.rebase);
    CHECK(m_defaults.migrations.auto_convert == d.migrations.auto_convert);
    CHECK_THROWS_WITH(parse({"database.pool_sizes=3"}), Contains("database.pool_sizes") && Contains("unknown key"));
}

TEST_CASE("mtctl(1) has a section per command with the flags its --help shows, the global flags and exit codes", "[docs]") {
    const std::string page = mt::test::read_file(generated().mtctl_page());
    for (const std::string& command : std::vector<std::string>{"init", "migrate", "tenant create", "tenant clone", "runs show", "plugins inspect", "serve", "health"}) {
        INFO(command);
        const auto at = page.find(".SS \"" + command + "\"\n");
        REQUIRE(at != std::string::npos);
        const auto section = page.substr(at, page.find(".SS ", at + 4) - at);
        const auto help = mt::test::run(shell_quote(MT_MTCTL) + " " + command + " --help");
        REQUIRE(help.exit_code == 0);
        // Boost.Program_options lists an option as "  --name arg" or "  -h [ --help ]" at a line's start.
        const std::regex option_line(R"(^  (?:-[a-z] \[ )?(--[a-z][a-z-]*).*)");
        std::istringstream lines(help.out);
        size_t options = 0;
        for (std::string line; std::getline(lines, line);) {
            std::smatch m;
            if (!std::regex_match(line, m, option_line)) continue;
            ++options;
            std::string roff;
            for (const char ch : m[1].str()) roff += ch == '-' ? std::string("\\-") : std::string(1, ch);
            INFO(m[1].str());
            CHECK_THAT(section, Contains("\\fB" + roff + "\\fR"));
        }
        CHECK(options >= 1);
    }
    CHECK_THAT(page, Contains(".SH GLOBAL FLAGS") && Contains("\\fB\\-\\-config\\fR \\fIFILE\\fR") &&
                         Contains("\\fB\\-\\-json\\fR") && Contains("\\fB\\-\\-version\\fR"));
    CHECK_THAT(page, Contains(".SH EXIT STATUS\n.TP\n.B 0\nsuccess\n") && Contains(".B 3\ncannot reach the database"));
    // Hidden commands (the alias, __docs itself) are not documented as commands.
    CHECK_THAT(page, !Contains(".SS \"__docs\"") && !Contains(".SS \"migrate-tracking-format\""));
}

TEST_CASE("bash completion completes commands, subcommands, flags and manifest keys", "[docs]") {
    CHECK(complete({"mtctl", "ten"}) == Words{"tenant"});
    CHECK(complete({"mtctl", "mi"}) == Words{"migrate", "migrate-shared"});
    CHECK(complete({"mtctl", "tenant", ""}) == Words{"list", "create", "drop", "clone"});
    CHECK(complete({"mtctl", "migrate", "--dry"}) == Words{"--dry-run"});
    // Flags of the subcommand and the global ones; another command's are not offered.
    const auto create = complete({"mtctl", "--json", "tenant", "create", "--"});
    CHECK_THAT(Catch::Detail::stringify(create), Contains("\"--id\"") && Contains("\"--no-migrate\"") &&
                                                     Contains("\"--config\"") && !Contains("\"--with-data\""));
    CHECK(complete({"mtctl", "-c", "x.ini", "tenant", "clone", "--w"}) == Words{"--with-data"});
    CHECK(complete({"mtctl", "status", "--database.pool_"}) ==
          Words{"--database.pool_mode=", "--database.pool_size=", "--database.pool_idle_timeout="});
    CHECK(complete({"mtctl", "--migrations.auto"}) == Words{"--migrations.auto_convert="});
    // A value flag's value is not mistaken for the command: "--config x" then "mig".
    CHECK(complete({"mtctl", "--config", "a.ini", "mig"}) == Words{"migrate", "migrate-shared"});
}

TEST_CASE("zsh completion offers commands, subcommands, flags and manifest keys from the same tables", "[docs]") {
    CHECK_THAT(mt::test::read_file(generated().zsh()), Contains("#compdef mtctl"));
    const auto syntax = mt::test::run("zsh -n " + shell_quote(generated().zsh().string()));
    CHECK(syntax.exit_code == 0);
    CHECK(syntax.err.empty());
    const auto commands = complete_zsh({"mtctl", "ten"});
    CHECK((offers(commands, "tenant") && offers(commands, "migrate") && !offers(commands, "__docs")));
    CHECK(complete_zsh({"mtctl", "tenant", ""}) == Words{"list", "create", "drop", "clone"});
    const auto create = complete_zsh({"mtctl", "tenant", "create", "--"});
    CHECK((offers(create, "--id") && offers(create, "--no-migrate") && offers(create, "--config") && !offers(create, "--with-data")));
    const auto keys = complete_zsh({"mtctl", "migrate", "--database.p"});
    CHECK((offers(keys, "--database.pool_size=") && offers(keys, "--migrations.auto_convert=")));
    CHECK(complete_zsh({"mtctl", "-c", "x.ini", "seed", "--file", ""}) == Words{"<files>"});
}

TEST_CASE("bash completion offers the tenant ids of the manifest's database after --tenant", "[docs][pg]") {
    mt::test::Project p;
    p.tenants({"acme", "globex", "initech"});
    const auto listed = p.mtctl("-q tenant list");
    require_ok(listed, "mtctl -q tenant list");
    CHECK(listed.out == "acme\nglobex\ninitech\n");

    // COMP_WORDS[0] is the mtctl that is run for the ids, in the project's folder (./multitenant.ini).
    const std::string mtctl = MT_MTCTL;
    CHECK(complete({mtctl, "migrate", "--tenant", ""}, p.dir()) == Words{"acme", "globex", "initech"});
    CHECK(complete({mtctl, "migrate", "--tenant", "g"}, p.dir()) == Words{"globex"});
    CHECK(complete({mtctl, "tenant", "drop", "--id", "i"}, p.dir()) == Words{"initech"});
    // Elsewhere, with the manifest named by -c.
    mt::test::TempDir elsewhere;
    CHECK(complete({mtctl, "-c", (p.dir() / "multitenant.ini").string(), "diff", "--reference", "a"}, elsewhere.path()) ==
          Words{"acme"});
    // No manifest, no database: nothing offered, and no error on the terminal.
    CHECK(complete({mtctl, "migrate", "--tenant", ""}, elsewhere.path()).empty());
    // zsh asks the same mtctl.
    CHECK(complete_zsh({mtctl, "migrate", "--tenant", ""}, p.dir()) == Words{"acme", "globex", "initech"});
    CHECK(complete_zsh({mtctl, "--config", (p.dir() / "multitenant.ini").string(), "tenant", "clone", "--from", ""},
                       elsewhere.path()) == Words{"acme", "globex", "initech"});
}
