// mtctl generate --name N [--shared]: the next migration file in the folder's layout.
#include "cli.hpp"
#include "json.hpp"

#include <mt/fleet/commands.hpp>

namespace mtctl {

namespace {

int cmd_generate(const Invocation& inv, const Output& out) {
    po::options_description desc("generate options");
    desc.add_options()("name", po::value<std::string>()->required()->value_name("N"), "what the migration does (letters, digits, _ and -)")(
        "shared", "in migrations.shared_dir instead of migrations.tenant_dir");
    const auto vm = parse_options(inv, desc);
    const auto made = mt::command::generate(inv.globals.manifest_input(), vm["name"].as<std::string>(), vm.count("shared") != 0);
    out.json({{"file", made.file.string()},
              {"name", made.name},
              {"folder", made.folder.string()},
              {"layout", made.journal ? "drizzle-kit" : "plain"},
              {"journal", made.journal ? nlohmann::json(made.journal_file.string()) : nlohmann::json(nullptr)}});
    out.line(made.file.string());
    return 0;
}

const bool generate_registered = register_command({"generate", "generate --name N [--shared]",
                                          "create the next migration file (and journal entry in drizzle-kit layout)",
                                          57, cmd_generate});

}  // namespace

}  // namespace mtctl
