// A small program using the tenant manager for three tenants in each pool mode.
//
//   runtime-sample [-c FILE | FILE] [--section.key=value ...]      (--help lists the flags)
//
// The manifest defaults to $MT_CONFIG, then ./multitenant.ini (DATABASE_URL through ${DATABASE_URL}).
// It creates schemas tenant_acme, tenant_globex and tenant_initech with a `notes` table if they are
// missing, writes one note per tenant through a lease, reads them back in each pool mode, and prints
// the health report and the pool statistics. Flags are parsed with Boost.Program_options like
// mtctl's; a bad flag exits 2 with a message.
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <boost/program_options.hpp>

#include <algorithm>
#include <iostream>
#include <optional>

namespace {

namespace po = boost::program_options;

constexpr const char* usage_line = "usage: runtime-sample [-c FILE | FILE] [--section.key=value ...]\n";

// Any --section.key=value argument is a manifest override, as with mtctl: it goes to the kernel
// verbatim (mt::ManifestInput::overrides), which checks the key and the value like the file's.
std::pair<std::string, std::string> manifest_override(const std::string& arg) {
    const auto eq = arg.find('=');
    const auto dot = arg.find('.');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos && dot < eq) return {"manifest-override", arg};
    return {};
}

// The manifest input, or nothing when --help printed the usage.
std::optional<mt::ManifestInput> parse(int argc, char** argv) {
    po::options_description desc("options");
    desc.add_options()("help,h", "show this help")(
        "config,c", po::value<std::string>()->value_name("FILE"),
        "manifest (default: $MT_CONFIG, then ./multitenant.ini); also accepted as the one argument");
    po::options_description hidden;
    hidden.add_options()("manifest-override", po::value<std::vector<std::string>>()->composing())(
        "manifest", po::value<std::string>());
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description positional;
    positional.add("manifest", 1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .extra_parser(manifest_override)
                  .run(),
              vm);
    if (vm.count("help")) {
        std::cout << usage_line
                  << "\nThe tenant manager in each pool mode (per-tenant, shared, transaction) for tenants acme,\n"
                     "globex and initech: one note per tenant through a lease, then health and pool statistics.\n\n"
                  << desc;
        // Overrides are not options of desc (any section.key goes): listed in its columns by hand.
        std::string overrides = "  --section.key=value";
        overrides.resize(std::max<size_t>(desc.get_option_column_width(), overrides.size() + 1), ' ');
        std::cout << overrides << "override any manifest key (database.pool_mode is set per run)\n";
        return std::nullopt;
    }
    po::notify(vm);
    if (vm.count("config") && vm.count("manifest"))
        throw po::error("the manifest is given twice (-c " + vm["config"].as<std::string>() + " and " +
                        vm["manifest"].as<std::string>() + "): give one");
    mt::ManifestInput input;
    if (vm.count("config")) input.file = vm["config"].as<std::string>();
    if (vm.count("manifest")) input.file = vm["manifest"].as<std::string>();
    if (vm.count("manifest-override")) input.overrides = vm["manifest-override"].as<std::vector<std::string>>();
    return input;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const auto parsed = parse(argc, argv);
        if (!parsed) return 0;
        mt::ManifestInput input = *parsed;
        const auto given = input.overrides;
        const std::vector<std::string> tenants{"acme", "globex", "initech"};
        for (const char* mode : {"per-tenant", "shared", "transaction"}) {
            // The run's own pool mode comes last: of two overrides of one key, the later wins.
            input.overrides = given;
            input.overrides.push_back(std::string("database.pool_mode=") + mode);
            mt::Kernel kernel(input);
            mt::TenantManager manager(kernel);
            std::cout << "== pool_mode = " << mode << "\n";
            for (const auto& id : tenants) {
                auto lease = manager.tenant(id);
                lease.transaction([&](pqxx::work& tx) {
                    tx.exec("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)");
                    tx.exec_params("INSERT INTO notes (body) VALUES ($1)", "written in " + std::string(mode) + " mode");
                });
                const auto rows = lease.query("SELECT count(*), current_schema() FROM notes");
                std::cout << "  " << id << ": " << rows[0][0].c_str() << " notes in " << rows[0][1].c_str() << "\n";
            }
            const auto health = manager.health_check({true, std::chrono::seconds(2), tenants});
            const auto s = manager.stats();
            std::cout << "  healthy=" << (health.healthy ? "yes" : "no") << " pools=" << s.pools_active
                      << " connections=" << s.connections << "\n";
        }
        return 0;
    } catch (const po::error& e) {
        std::cerr << "runtime-sample: " << e.what() << "\n" << usage_line << "(see runtime-sample --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "runtime-sample: " << e.what() << "\n";
        return 1;
    }
}
