// `mtctl __docs --output-dir DIR` (hidden): writes mtctl(1), multitenant.ini(5) and the bash and zsh
// completions from the same tables that build --help, so none of them can drift from the tool:
//   - each registered command's Boost.Program_options description, collected by running the
//     command with --help while parse_options hands the description here instead of parsing
//     (cli.hpp: describe_options); subcommands are the words the usage line's alternatives start with;
//   - the global flags and exit codes, from the text of `mtctl --help` itself;
//   - the manifest's keys, defaults and descriptions, from the kernel's key table (manifest_key_docs).
// The build runs it into build/share (cmake/packaging.cmake); the packages install the result.
#include "cli.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>
#include <mt/context/manifest_keys.hpp>
#include <mt/sdk/version.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

namespace mtctl {

std::function<void(const po::options_description&)> describe_options;

namespace {

namespace fs = std::filesystem;

struct Flag {
    std::string long_name;   // "concurrency" (no dashes)
    std::string short_name;  // "h" or empty
    std::string value;       // the value's name ("N|a,b", "arg"); empty for a switch
    std::string default_value;
    std::string description;
};

struct Described {  // not a std::exception: a command's own catch blocks must not swallow it
    std::vector<Flag> flags;
};

struct Page {  // one command or subcommand: "tenant create"
    std::string name;
    std::string usage;
    std::string summary;
    std::vector<Flag> flags;
};

struct GlobalFlag {
    std::vector<std::string> names;  // "-c", "--config"
    std::string value;               // "FILE"
    std::string description;
};

struct HelpText {
    std::vector<GlobalFlag> flags;
    std::vector<std::pair<std::string, std::string>> exit_codes;  // "0", "success"
    std::string exit_note;                                         // what follows the codes
};

Flag flag_of(const po::option_description& o) {
    Flag f;
    f.long_name = o.long_name();
    const std::string shown = o.canonical_display_name(po::command_line_style::allow_dash_for_short);
    if (shown.size() == 2 && shown[0] == '-') f.short_name = shown.substr(1);
    f.description = o.description();
    if (o.semantic()->max_tokens() > 0) {
        // "arg (=50)", "N|a,b": the value's name, then the default Boost.Program_options shows.
        std::string name = o.semantic()->name();
        if (const auto at = name.find(" (="); at != std::string::npos) {
            f.default_value = name.substr(at + 3, name.size() - at - 4);
            name = name.substr(0, at);
        }
        f.value = name.empty() ? "arg" : name;
    }
    return f;
}

// The subcommand words of a usage line: "tenant list | create --id X" -> list, create;
// "plugins [inspect FILE]" -> inspect; "runs [--limit N] | runs show ID" -> show.
std::vector<std::string> subcommands_of(const CommandInfo& c) {
    std::vector<std::string> alternatives{""};
    int depth = 0;
    for (const char ch : c.usage) {
        if (ch == '[' || ch == '(') ++depth;
        if (ch == ']' || ch == ')') --depth;
        if (ch == '|' && depth == 0) alternatives.emplace_back();
        else alternatives.back() += ch;
    }
    std::vector<std::string> subs;
    for (const auto& alt : alternatives) {
        std::istringstream words(alt);
        std::string word;
        words >> word;
        if (word == c.name && !(words >> word)) continue;
        word.erase(0, word.find_first_not_of("[("));
        if (std::regex_match(word, std::regex("[a-z][a-z-]*")) && std::find(subs.begin(), subs.end(), word) == subs.end())
            subs.push_back(word);
    }
    return subs;
}

std::optional<std::vector<Flag>> describe(const CommandInfo& c, const std::vector<std::string>& words) {
    Invocation inv;
    inv.words = words;
    inv.args = {"--help"};
    Output out(inv.globals);
    describe_options = [](const po::options_description& desc) {
        Described d;
        for (const auto& o : desc.options()) d.flags.push_back(flag_of(*o));
        throw d;
    };
    try {
        c.run(inv, out);
    } catch (const Described& d) {
        describe_options = nullptr;
        return d.flags;
    } catch (const mt::UsageError&) {
        // A command that needs a subcommand refuses before it parses any option.
    }
    describe_options = nullptr;
    return std::nullopt;
}

std::vector<Page> pages() {
    std::vector<const CommandInfo*> listed;
    for (const auto& [name, info] : registered_commands())
        if (info.order >= 0) listed.push_back(&info);
    std::stable_sort(listed.begin(), listed.end(), [](auto* a, auto* b) { return a->order < b->order; });
    std::vector<Page> out;
    for (const auto* c : listed) {
        if (auto flags = describe(*c, {c->name})) out.push_back({c->name, c->usage, c->summary, *flags});
        for (const auto& sub : subcommands_of(*c)) {
            auto flags = describe(*c, {c->name, sub});
            if (!flags) throw mt::UsageError("mtctl __docs: " + c->name + " " + sub + " did not describe its options");
            // The usage line's own alternative for this subcommand, when it has one.
            std::string usage = c->name + " " + sub;
            std::istringstream alts(c->usage);
            for (std::string alt; std::getline(alts, alt, '|');) {
                alt = std::regex_replace(alt, std::regex("^\\s+|\\s+$"), "");
                if (alt.rfind(c->name + " ", 0) == 0) alt = alt.substr(c->name.size() + 1);
                if (alt.rfind(sub, 0) == 0) usage = c->name + " " + alt;
                else if (alt.rfind("[" + sub + " ", 0) == 0) usage = c->name + " " + alt.substr(1, alt.size() - 2);
            }
            out.push_back({c->name + " " + sub, usage, c->summary, *flags});
        }
    }
    return out;
}

// `mtctl --help`'s global flags and exit codes: the text users read is the documentation's source.
HelpText help_text() {
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(("'" + self + "' --help 2>&1").c_str(), "r"), ::pclose);
    if (!pipe) throw mt::InternalError("mtctl __docs: cannot run " + self + " --help");
    std::string text;
    std::array<char, 4096> buffer{};
    while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) text.append(buffer.data(), n);

    HelpText help;
    std::istringstream lines(text);
    std::string line, exit_text;
    enum { before, flags, exits, after } part = before;
    static const std::regex flag_line(R"(^  (-[^ ]*(?:, -[^ ]*)*)((?: [A-Z][A-Z_]*)?)(?:\s{2,}(.*))?$)");
    while (std::getline(lines, line)) {
        std::string lowered = line;
        std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char ch) { return std::tolower(ch); });
        if (lowered.rfind("global flags", 0) == 0) {
            part = flags;
            continue;
        }
        if (lowered.rfind("exit codes:", 0) == 0 || lowered.rfind("exit status:", 0) == 0) {
            part = exits;
            line = line.substr(line.find(':') + 1);
        }
        if (part == flags) {
            std::smatch m;
            if (line.empty()) {
                part = after;
            } else if (std::regex_match(line, m, flag_line)) {
                GlobalFlag g;
                std::istringstream names(m[1].str());
                for (std::string name; std::getline(names, name, ',');)
                    g.names.push_back(std::regex_replace(name, std::regex("^\\s+"), ""));
                g.value = std::regex_replace(m[2].str(), std::regex("^\\s+"), "");
                g.description = m[3].str();
                help.flags.push_back(g);
            } else if (!help.flags.empty() && line.find_first_not_of(' ') > 4) {
                help.flags.back().description += " " + line.substr(line.find_first_not_of(' '));
            }
        } else if (part == exits) {
            if (line.empty() || line.rfind("Run ", 0) == 0) part = after;
            else exit_text += (exit_text.empty() ? "" : " ") + std::regex_replace(line, std::regex("^\\s+"), "");
        }
    }
    // "0 success; 1 failed …; 3 cannot reach the database. An unexpected …": codes up to the first '.'.
    const auto stop = exit_text.find(". ");
    std::string codes = exit_text.substr(0, stop);
    help.exit_note = stop == std::string::npos ? "" : exit_text.substr(stop + 2);
    std::istringstream items(codes);
    for (std::string item; std::getline(items, item, ';');) {
        item = std::regex_replace(item, std::regex("^\\s+|\\s+$|\\.$"), "");
        const auto space = item.find(' ');
        if (space != std::string::npos) help.exit_codes.push_back({item.substr(0, space), item.substr(space + 1)});
    }
    if (help.flags.empty() || help.exit_codes.empty())
        throw mt::InternalError(
                        "mtctl __docs: found no global flags or exit codes in the text of mtctl --help; "
                        "update help_text() in tools/mtctl/docs.cpp to its layout");
    return help;
}

// roff: a backslash is \e, a non-ASCII character \[uXXXX] (groff reads bytes), '-' in flags is a
// minus (\-), and a line never starts with '.' or '\''.
std::string roff(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        const auto ch = static_cast<unsigned char>(text[i]);
        if (ch == '\\') {
            out += "\\e";
        } else if (ch < 0x80) {
            out += static_cast<char>(ch);
        } else {
            // One UTF-8 sequence: its length from the lead byte, then 6 bits from each continuation byte.
            const size_t length = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
            uint32_t code = ch & (0x7F >> length);
            for (size_t k = 1; k < length && i + 1 < text.size(); ++k) code = (code << 6) | (text[++i] & 0x3F);
            char hex[16];
            std::snprintf(hex, sizeof hex, "\\[u%04X]", static_cast<unsigned>(code));
            out += hex;
        }
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
    return out;
}

std::string minus(const std::string& flag) {
    std::string out;
    for (const char ch : flag) out += ch == '-' ? std::string("\\-") : std::string(1, ch);
    return out;
}

std::string flag_item(const Flag& f) {
    std::string item = ".TP\n";
    if (!f.short_name.empty()) item += "\\fB\\-" + f.short_name + "\\fR, ";
    item += "\\fB" + minus("--" + f.long_name) + "\\fR";
    if (!f.value.empty()) item += " \\fI" + roff(f.value) + "\\fR";
    item += "\n" + roff(f.description);
    if (!f.default_value.empty()) item += " (default: \\%" + roff(f.default_value) + ")";
    return item + "\n";
}

std::string manual_header(const std::string& title, int section, const std::string& version) {
    return ".\\\" Generated by mtctl __docs (tools/mtctl/docs.cpp) from mtctl's tables; do not edit.\n"
           ".TH " + title + " " + std::to_string(section) + " \"\" \"mtenant " + version + "\" \"mtenant manual\"\n";
}

std::string mtctl_page(const std::vector<Page>& all, const HelpText& help, const std::string& version) {
    std::string page = manual_header("MTCTL", 1, version);
    page += ".SH NAME\nmtctl \\- create, migrate and check schema\\-per\\-tenant PostgreSQL databases\n";
    page += ".SH SYNOPSIS\n.B mtctl\n[\\fIglobal flags\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]\n";
    page += ".SH DESCRIPTION\n"
            "mtctl manages the tenants of a schema\\-per\\-tenant PostgreSQL deployment described by a manifest, "
            "\\fBmultitenant.ini\\fR(5): it creates and drops tenant schemas, applies migrations to every tenant, "
            "reports their state and drift, and serves health and metrics endpoints. "
            "Every manifest key can be overridden for one run with \\fB\\-\\-\\fR\\fIsection\\fR\\fB.\\fR\\fIkey\\fR"
            "\\fB=\\fR\\fIvalue\\fR.\n";
    page += ".SH GLOBAL FLAGS\nGlobal flags go anywhere on the command line.\n";
    for (const auto& g : help.flags) {
        page += ".TP\n";
        for (size_t i = 0; i < g.names.size(); ++i) page += (i ? ", " : "") + std::string("\\fB") + minus(g.names[i]) + "\\fR";
        if (!g.value.empty()) page += " \\fI" + roff(g.value) + "\\fR";
        if (!g.description.empty()) page += "\n" + roff(g.description);
        page += "\n";
    }
    page += ".SH COMMANDS\n";
    for (const auto& p : all) {
        page += ".SS \"" + p.name + "\"\n";
        page += ".B mtctl " + minus(roff(p.usage)) + "\n.PP\n" + roff(p.summary) + ".\n";
        for (const auto& f : p.flags) page += flag_item(f);
    }
    page += ".SH EXIT STATUS\n";
    for (const auto& [code, meaning] : help.exit_codes) page += ".TP\n.B " + code + "\n" + roff(meaning) + "\n";
    if (!help.exit_note.empty()) page += ".PP\n" + roff(help.exit_note) + "\n";
    page += ".SH ENVIRONMENT\n"
            ".TP\n.B MT_CONFIG\nthe manifest, when \\fB\\-c\\fR is not given (else ./multitenant.ini)\n"
            ".TP\n.B MT_\\fISECTION\\fB__\\fIKEY\\fR\nany manifest key, for example MT_DATABASE__URL; a flag beats it, "
            "it beats the file\n";
    page += ".SH FILES\n.TP\n.I ./multitenant.ini\nthe manifest (\\fBmtctl init\\fR writes a starter one)\n"
            ".TP\n.I <libdir>/mtenant/plugins\nthe in\\-tree plugins, searched after the manifest's "
            "[plugins] path\n";
    page += ".SH SEE ALSO\n\\fBmultitenant.ini\\fR(5)\n";
    return page;
}

std::string manifest_page(const std::string& version) {
    std::string page = manual_header("MULTITENANT.INI", 5, version);
    page += ".SH NAME\nmultitenant.ini \\- the mtenant manifest\n";
    page += ".SH DESCRIPTION\n"
            "An INI file: \\fB[section]\\fR headers, \\fIkey\\fR \\fB=\\fR \\fIvalue\\fR lines; \\fB#\\fR starts a "
            "comment, also after a value. mtctl reads ./multitenant.ini, or the file named by \\fB\\-c\\fR or "
            "\\fBMT_CONFIG\\fR. Every key can also be given as an environment variable "
            "\\fBMT_\\fISECTION\\fB__\\fIKEY\\fR (MT_DATABASE__POOL_SIZE=20) or a flag "
            "\\fB\\-\\-\\fIsection\\fB.\\fIkey\\fB=\\fIvalue\\fR; precedence: flag, environment, file, default. "
            "\\fB${\\fINAME\\fB}\\fR in a value is replaced by the environment variable NAME. Relative paths "
            "resolve against the manifest's folder. Durations take ms, s, m or h; booleans true/false, "
            "yes/no, on/off, 1/0. An unknown section or key, a malformed value or a missing required key "
            "makes every command exit 2 before anything else happens.\n";
    std::string section;
    for (const auto& k : mt::manifest_key_docs()) {
        const auto dot = k.key.find('.');
        const std::string s = k.key.substr(0, dot);
        if (s != section) {
            section = s;
            page += ".SH \"[" + section + "]\"\n";
        }
        page += ".TP\n.B " + roff(k.key.substr(dot + 1)) + "\n" + roff(k.description) + ".\n";
        page += "Default: " + (k.default_value.empty() ? std::string("none") : "\\fB\\%" + roff(k.default_value) + "\\fR") + ".\n";
    }
    page += ".SH \"[plugin.NAME]\"\nSettings of the plugin instance NAME: only the keys its factory declares "
            "are accepted (\\fBmtctl plugins inspect\\fR \\fIFILE\\fR lists them).\n";
    page += ".SH \"[servers.NAME]\"\n.TP\n.B url\nthe libpq URL of an extra database server; a discovery plugin "
            "says which tenant lives where.\n";
    page += ".SH EXAMPLE\nThe starter manifest \\fBmtctl init\\fR writes:\n.PP\n.nf\n";
    std::istringstream starter(mt::starter_manifest());
    for (std::string line; std::getline(starter, line);) page += roff(line) + "\n";
    page += ".fi\n.SH SEE ALSO\n\\fBmtctl\\fR(1)\n";
    return page;
}

// Names for completion: "--tenant" takes a tenant id, "--file" a file name.
bool takes_tenant(const std::string& page, const std::string& flag) {
    return flag == "tenant" || flag == "tenants" || flag == "reference" || (page == "tenant drop" && flag == "id") ||
           (page == "tenant clone" && flag == "from");
}
bool takes_file(const std::string& flag) {
    return flag == "config" || flag == "file" || flag == "dir" || flag == "tls-cert" || flag == "tls-key" ||
           flag == "basic-auth" || flag == "bearer-token-file";
}

std::string words(const std::vector<std::string>& list) {
    std::string out;
    for (const auto& w : list) out += (out.empty() ? "" : " ") + w;
    return out;
}

struct CompletionData {
    std::vector<std::string> commands, keys, global_flags, global_value_flags;
    std::map<std::string, std::vector<std::string>> subcommands;             // command -> words
    std::map<std::string, std::vector<std::string>> flags, value_flags;      // page -> --flags
    std::map<std::string, std::vector<std::string>> tenant_flags, file_flags;
};

CompletionData completion_data(const std::vector<Page>& all, const HelpText& help) {
    CompletionData d;
    for (const auto& p : all) {
        const auto space = p.name.find(' ');
        const std::string command = p.name.substr(0, space);
        if (std::find(d.commands.begin(), d.commands.end(), command) == d.commands.end()) d.commands.push_back(command);
        if (space != std::string::npos) d.subcommands[command].push_back(p.name.substr(space + 1));
        auto& flags = d.flags[p.name];
        for (const auto& f : p.flags) {
            flags.push_back("--" + f.long_name);
            if (f.value.empty()) continue;
            d.value_flags[p.name].push_back("--" + f.long_name);
            if (takes_tenant(p.name, f.long_name)) d.tenant_flags[p.name].push_back("--" + f.long_name);
            if (takes_file(f.long_name)) d.file_flags[p.name].push_back("--" + f.long_name);
        }
    }
    for (const auto& g : help.flags)
        for (const auto& n : g.names) {
            if (n.find('.') != std::string::npos || n.find('=') != std::string::npos) continue;  // --SECTION.KEY=VALUE
            d.global_flags.push_back(n);
            if (!g.value.empty()) d.global_value_flags.push_back(n);
        }
    for (const auto& k : mt::manifest_key_docs()) d.keys.push_back("--" + k.key + "=");
    return d;
}

std::string bash_case(const std::map<std::string, std::vector<std::string>>& table) {
    std::string out;
    for (const auto& [key, list] : table) out += "    '" + key + "') echo '" + words(list) + "' ;;\n";
    return out;
}

std::string bash_completion(const CompletionData& d) {
    std::string s =
        "# bash completion for mtctl. Generated by `mtctl __docs` (tools/mtctl/docs.cpp) from mtctl's command\n"
        "# table and the manifest's key table; do not edit. Tenant ids come from `mtctl tenant list -q`.\n"
        "_mtctl_commands='" + words(d.commands) + "'\n"
        "_mtctl_global_flags='" + words(d.global_flags) + "'\n"
        "_mtctl_global_value_flags=' " + words(d.global_value_flags) + " '\n"
        "_mtctl_manifest_keys='" + words(d.keys) + "'\n\n"
        "_mtctl_subcommands() {\n  case $1 in\n" + bash_case(d.subcommands) + "  esac\n}\n"
        "_mtctl_flags() {\n  case $1 in\n" + bash_case(d.flags) + "  esac\n}\n"
        "_mtctl_value_flags() {\n  case $1 in\n" + bash_case(d.value_flags) + "  esac\n}\n"
        "_mtctl_tenant_flags() {\n  case $1 in\n" + bash_case(d.tenant_flags) + "  esac\n}\n"
        "_mtctl_file_flags() {\n  case $1 in\n" + bash_case(d.file_flags) + "  esac\n}\n";
    s += R"BASH(
# The tenant ids of the manifest the command line names (-c FILE), or of ./multitenant.ini.
_mtctl_tenants() {
  "${COMP_WORDS[0]}" ${_mtctl_config:+-c "$_mtctl_config"} tenant list -q 2>/dev/null
}

_mtctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local command='' sub='' word i
  _mtctl_config=''
  # The command (and subcommand) are the first words that are neither flags nor flag values.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      -c|--config) _mtctl_config=${COMP_WORDS[i+1]}; ((i++)); continue ;;
      --config=*) _mtctl_config=${word#--config=}; continue ;;
      -*)
        if [[ -n $command && " $(_mtctl_value_flags "$command${sub:+ $sub}") " == *" $word "* ]]; then ((i++)); fi
        continue ;;
    esac
    if [[ -z $command ]]; then
      command=$word
    elif [[ -z $sub && " $(_mtctl_subcommands "$command") " == *" $word "* ]]; then
      sub=$word
    fi
  done
  local page=$command${sub:+ $sub}
  COMPREPLY=()

  if [[ $prev == -c || $prev == --config ]]; then
    COMPREPLY=($(compgen -f -- "$cur")); return
  fi
  if [[ -n $command && " $(_mtctl_tenant_flags "$page") " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -W "$(_mtctl_tenants)" -- "$cur")); return
  fi
  if [[ -n $command && " $(_mtctl_file_flags "$page") " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur")); return
  fi
  if [[ -n $command && " $(_mtctl_value_flags "$page") " == *" $prev "* ]]; then
    return
  fi
  case $cur in
    --*.*)
      # --section.key=VALUE: offer the keys; the value is the user's.
      compopt -o nospace 2>/dev/null
      COMPREPLY=($(compgen -W "$_mtctl_manifest_keys" -- "$cur")); return ;;
    -*)
      local flags=$_mtctl_global_flags
      [[ -n $command ]] && flags="$(_mtctl_flags "$page") $flags"
      COMPREPLY=($(compgen -W "$flags" -- "$cur")); return ;;
  esac
  if [[ -z $command ]]; then
    COMPREPLY=($(compgen -W "$_mtctl_commands" -- "$cur"))
  elif [[ -z $sub && -n $(_mtctl_subcommands "$command") ]]; then
    COMPREPLY=($(compgen -W "$(_mtctl_subcommands "$command")" -- "$cur"))
  elif [[ $page == "plugins inspect" ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _mtctl mtctl
)BASH";
    return s;
}

std::string zsh_case(const std::map<std::string, std::vector<std::string>>& table) {
    std::string out;
    for (const auto& [key, list] : table) out += "    '" + key + "') reply=(" + words(list) + ") ;;\n";
    return out;
}

std::string zsh_completion(const CompletionData& d) {
    std::string s =
        "#compdef mtctl\n"
        "# zsh completion for mtctl. Generated by `mtctl __docs` (tools/mtctl/docs.cpp) from mtctl's command\n"
        "# table and the manifest's key table; do not edit. Tenant ids come from `mtctl tenant list -q`.\n"
        "local -a _mtctl_commands=(" + words(d.commands) + ")\n"
        "local -a _mtctl_global_flags=(" + words(d.global_flags) + ")\n"
        "local -a _mtctl_global_value_flags=(" + words(d.global_value_flags) + ")\n"
        "local -a _mtctl_manifest_keys=(" + words(d.keys) + ")\n"
        "local -a reply\n"
        "_mtctl_subcommands() { reply=(); case $1 in\n" + zsh_case(d.subcommands) + "  esac }\n"
        "_mtctl_flags() { reply=(); case $1 in\n" + zsh_case(d.flags) + "  esac }\n"
        "_mtctl_value_flags() { reply=(); case $1 in\n" + zsh_case(d.value_flags) + "  esac }\n"
        "_mtctl_tenant_flags() { reply=(); case $1 in\n" + zsh_case(d.tenant_flags) + "  esac }\n"
        "_mtctl_file_flags() { reply=(); case $1 in\n" + zsh_case(d.file_flags) + "  esac }\n";
    s += R"ZSH(
local cur=${words[CURRENT]} prev=${words[CURRENT-1]} command='' sub='' config='' page i
for ((i = 2; i < CURRENT; i++)); do
  case ${words[i]} in
    -c|--config) config=${words[i+1]}; ((i++)); continue ;;
    --config=*) config=${words[i]#--config=}; continue ;;
    -*)
      if [[ -n $command ]]; then
        _mtctl_value_flags "$command${sub:+ $sub}"
        (( ${reply[(Ie)${words[i]}]} )) && ((i++))
      fi
      continue ;;
  esac
  if [[ -z $command ]]; then
    command=${words[i]}
  elif [[ -z $sub ]]; then
    _mtctl_subcommands "$command"
    (( ${reply[(Ie)${words[i]}]} )) && sub=${words[i]}
  fi
done
page=$command${sub:+ $sub}

if [[ $prev == -c || $prev == --config ]]; then _files; return; fi
if [[ -n $command ]]; then
  _mtctl_tenant_flags "$page"
  if (( ${reply[(Ie)$prev]} )); then
    local -a tenants cfg
    [[ -n $config ]] && cfg=(-c "$config")
    tenants=(${(f)"$(${words[1]} $cfg tenant list -q 2>/dev/null)"})
    compadd -a tenants; return
  fi
  _mtctl_file_flags "$page"
  if (( ${reply[(Ie)$prev]} )); then _files; return; fi
  _mtctl_value_flags "$page"
  if (( ${reply[(Ie)$prev]} )); then return; fi
fi
case $cur in
  --*.*) compadd -S '' -a _mtctl_manifest_keys; return ;;
  -*)
    reply=()
    [[ -n $command ]] && _mtctl_flags "$page"
    compadd -- $reply $_mtctl_global_flags; return ;;
esac
if [[ -z $command ]]; then
  compadd -a _mtctl_commands
elif [[ -z $sub ]]; then
  _mtctl_subcommands "$command"
  (( $#reply )) && compadd -a reply
elif [[ $page == "plugins inspect" ]]; then
  _files
fi
)ZSH";
    return s;
}

void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << text;
    if (!out) throw mt::InternalError("mtctl __docs: cannot write " + file.string());
}

int cmd_docs(const Invocation& inv, const Output& out) {
    po::options_description desc("__docs options");
    desc.add_options()("output-dir", po::value<std::string>()->required(), "where share/ goes (man/, bash-completion/, zsh/)")(
        "version-text", po::value<std::string>()->default_value(MT_VERSION), "the version the pages name");
    const auto vm = parse_options(inv, desc);
    const fs::path dir = vm["output-dir"].as<std::string>();
    const std::string version = vm["version-text"].as<std::string>();
    const auto all = pages();
    const auto help = help_text();
    const auto data = completion_data(all, help);
    write(dir / "man/man1/mtctl.1", mtctl_page(all, help, version));
    write(dir / "man/man5/multitenant.ini.5", manifest_page(version));
    write(dir / "bash-completion/completions/mtctl", bash_completion(data));
    write(dir / "zsh/vendor-completions/_mtctl", zsh_completion(data));
    out.info("wrote mtctl(1), multitenant.ini(5) and the bash and zsh completions under " + dir.string());
    return 0;
}

const bool docs_registered = register_command({"__docs", "__docs --output-dir DIR", "", -1, cmd_docs});

}  // namespace

}  // namespace mtctl
