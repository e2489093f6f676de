// mtctl generate --name N [--shared]: the next migration file in the folder's layout.
#include "cli.hpp"

#include <mt/base/errors.hpp>
#include <mt/tracking/migration_folder.hpp>

namespace mtctl {

namespace {

int cmd_generate(const Invocation& inv, const Output& out) {
    po::options_description desc("generate options");
    desc.add_options()("name", po::value<std::string>()->required(), "what the migration does (letters, digits, _ and -)")(
        "shared", "in migrations.shared_dir instead of migrations.tenant_dir");
    const auto vm = parse_options(inv, desc);
    mt::Kernel kernel(inv.globals.manifest_input());
    const auto& m = kernel.manifest().migrations;
    const bool shared = vm.count("shared") != 0;
    if (shared && !m.shared_dir)
        throw mt::UsageError("migrations.shared_dir is not set: name the shared migrations folder in the manifest");
    const auto dir = shared ? *m.shared_dir : m.tenant_dir;
    const auto file = mt::generate_migration(dir, vm["name"].as<std::string>());
    const auto folder = mt::read_migration_folder(dir);
    const bool journal = folder.layout == mt::FolderLayout::drizzle_kit;
    out.json({{"file", file.string()},
              {"name", file.stem().string()},
              {"folder", dir.string()},
              {"layout", journal ? "drizzle-kit" : "plain"},
              {"journal", journal ? nlohmann::json((dir / "meta" / "_journal.json").string()) : nlohmann::json(nullptr)}});
    out.line(file.string());
    return 0;
}

const bool registered = register_command({"generate", "generate --name N [--shared]",
                                          "create the next migration file (and journal entry in drizzle-kit layout)",
                                          57, cmd_generate});

}  // namespace

}  // namespace mtctl
