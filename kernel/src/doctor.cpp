#include <mt/doctor.hpp>
#include <mt/errors.hpp>
#include <mt/kernel.hpp>
#include <mt/migration_folder.hpp>

#include <memory>

namespace mt {

std::string to_string(CheckStatus s) {
    switch (s) {
        case CheckStatus::ok: return "ok";
        case CheckStatus::warn: return "warn";
        case CheckStatus::fail: return "fail";
        case CheckStatus::skip: return "skip";
    }
    return "?";
}

bool DoctorReport::failed() const {
    for (const auto& c : checks)
        if (c.status == CheckStatus::fail) return true;
    return false;
}

namespace {

void skip_rest(DoctorReport& report, std::initializer_list<const char*> names, const std::string& because) {
    for (const char* n : names) report.checks.push_back({n, CheckStatus::skip, "skipped: " + because, {}});
}

void check_folder(DoctorReport& report, const std::string& name, const std::filesystem::path& dir) {
    try {
        const auto folder = read_migration_folder(dir);
        report.checks.push_back({name, CheckStatus::ok,
                                 dir.string() + ": " + std::to_string(folder.migrations.size()) + " migrations (" +
                                     (folder.layout == FolderLayout::drizzle_kit ? "drizzle-kit journal" : "plain") + ")",
                                 {}});
    } catch (const std::exception& e) {
        report.checks.push_back({name, CheckStatus::fail, e.what(), "fix the folder or migrations settings"});
    }
}

}  // namespace

DoctorReport run_doctor(const ManifestInput& input) {
    DoctorReport report;
    std::unique_ptr<Kernel> kernel;
    try {
        kernel = std::make_unique<Kernel>(input);
        const auto& m = kernel->manifest();
        report.checks.push_back({"manifest", CheckStatus::ok, m.file ? m.file->string() : "no file (environment and flags)", {}});
    } catch (const PluginError& e) {
        report.checks.push_back({"manifest", CheckStatus::ok, "read", {}});
        report.checks.push_back({"plugins", CheckStatus::fail, e.what(), "check [plugins] path and load"});
        skip_rest(report, {"connection", "discovery", "tenant folder"}, "plugins did not load");
        return report;
    } catch (const std::exception& e) {
        report.checks.push_back({"manifest", CheckStatus::fail, e.what(), "fix the manifest (mtctl init writes a starter)"});
        skip_rest(report, {"plugins", "connection", "discovery", "tenant folder"}, "the manifest is invalid");
        return report;
    }
    const auto& m = kernel->manifest();
    std::string loaded;
    for (const auto& p : kernel->registry().plugins())
        loaded += (loaded.empty() ? "" : ", ") + p.name + " " + p.version + " (ABI " + std::to_string(p.abi_major) +
                  "." + std::to_string(p.abi_minor) + ")";
    report.checks.push_back({"plugins", CheckStatus::ok, loaded.empty() ? "none loaded" : loaded, {}});

    check_folder(report, "tenant folder", m.migrations.tenant_dir);
    if (m.migrations.shared_dir) check_folder(report, "shared folder", *m.migrations.shared_dir);

    std::unique_ptr<pqxx::connection> conn;
    try {
        conn = kernel->connect();
        pqxx::nontransaction tx(*conn);
        const auto version = tx.exec1("SELECT current_setting('server_version')")[0].as<std::string>();
        report.checks.push_back({"connection", CheckStatus::ok,
                                 redact_url(m.database.url) + " (PostgreSQL " + version + ")", {}});
    } catch (const std::exception& e) {
        report.checks.push_back({"connection", CheckStatus::fail, e.what(),
                                 "check [database] url (or DATABASE_URL) and that the server is running"});
        skip_rest(report, {"discovery"}, "no connection");
        return report;
    }
    try {
        const auto tenants = kernel->discover_tenants(*conn);
        report.checks.push_back({"discovery", tenants.empty() ? CheckStatus::warn : CheckStatus::ok,
                                 m.roles.discovery + ": " + std::to_string(tenants.size()) + " tenants",
                                 tenants.empty() ? "no tenants found: check the discovery plugin's settings" : ""});
    } catch (const std::exception& e) {
        report.checks.push_back({"discovery", CheckStatus::fail, e.what(),
                                 "check [roles] discovery and its [plugin.NAME] settings"});
    }
    return report;
}

}  // namespace mt
