// mtctl doctor: each check reads what it needs once (the fleet's tracking tables in the batched
// fleet_status queries) and says what it found and, when not ok, what to do.
#include "base/text.hpp"
#include "tracking/tables.hpp"

#include <mt/fleet/doctor.hpp>
#include <mt/tracking/rebase.hpp>
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/base/redact.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <unistd.h>

namespace mt {

namespace fs = std::filesystem;

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

const Check* DoctorReport::find(const std::string& name) const {
    for (const auto& c : checks)
        if (c.name == name) return &c;
    return nullptr;
}

namespace {

constexpr size_t kListed = 10;  // names shown in a check's detail before "and N more"

std::string listed(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size() && i < kListed; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > kListed) out += " and " + std::to_string(names.size() - kListed) + " more";
    return out;
}

using detail::trimmed;

void skip(DoctorReport& report, std::initializer_list<const char*> names, const std::string& because) {
    for (const char* n : names) report.checks.push_back({n, CheckStatus::skip, "skipped: " + because, {}});
}

// drizzle-multitenant orders plain files by the number matched by ^(\d+)_ and treats other names as 0.
bool has_number_prefix(const std::string& name) {
    size_t digits = 0;
    while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
    return digits > 0 && digits < name.size() && name[digits] == '_';
}

std::optional<MigrationFolder> check_folder(DoctorReport& report, const std::string& name, const fs::path& dir) {
    MigrationFolder folder;
    try {
        folder = read_migration_folder(dir);
    } catch (const std::exception& e) {
        report.checks.push_back({name, CheckStatus::fail, e.what(),
                                 "fix the folder, or point migrations.tenant_dir / shared_dir at it (mtctl init "
                                 "creates empty ones)"});
        return std::nullopt;
    }
    const bool journal = folder.layout == FolderLayout::drizzle_kit;
    std::vector<std::string> problems, hints;
    if (journal) {
        std::set<std::string> in_journal;
        for (const auto& m : folder.migrations) in_journal.insert(m.file.filename().string());
        std::vector<std::string> unlisted;
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const auto file = it->path().filename().string();
            if (file.ends_with(".sql") && it->is_regular_file(ec) && !in_journal.count(file)) unlisted.push_back(file);
        }
        std::sort(unlisted.begin(), unlisted.end());
        if (!unlisted.empty()) {
            problems.push_back("not in meta/_journal.json, so never applied: " + listed(unlisted));
            hints.push_back("add them to the journal (drizzle-kit generate, mtctl generate) or delete them");
        }
        std::vector<std::string> unordered;
        for (size_t i = 1; i < folder.migrations.size(); ++i) {
            const auto& prev = folder.migrations[i - 1];
            const auto& cur = folder.migrations[i];
            if (prev.when && cur.when && *cur.when <= *prev.when) unordered.push_back(cur.name);
        }
        if (!unordered.empty()) {
            problems.push_back("journal `when` not after the previous entry's: " + listed(unordered));
            hints.push_back("drizzle-orm's migrator skips an entry whose `when` is not newer than the last applied "
                            "one; give those entries increasing `when` values");
        }
    } else {
        std::vector<std::string> unnumbered;
        for (const auto& m : folder.migrations)
            if (!has_number_prefix(m.name)) unnumbered.push_back(m.file.filename().string());
        if (!unnumbered.empty()) {
            problems.push_back("no NNNN_ prefix: " + listed(unnumbered));
            hints.push_back("mtctl applies such files after the numbered ones, drizzle-multitenant before them; "
                            "rename them with a number");
        }
    }
    std::string detail = dir.string() + ": " + std::to_string(folder.migrations.size()) + " migrations (" +
                         (journal ? "drizzle-kit journal" : "plain") + ")";
    for (const auto& p : problems) detail += "; " + p;
    std::string hint;
    for (const auto& h : hints) hint += (hint.empty() ? "" : "; ") + h;
    report.checks.push_back({name, problems.empty() ? CheckStatus::ok : CheckStatus::warn, detail, hint});
    return folder;
}

struct ServerConnection {
    std::optional<std::string> server;
    std::unique_ptr<pqxx::connection> conn;
};

void check_schemas(DoctorReport& report, const Kernel& kernel, const std::vector<ServerConnection>& servers,
                   const TenantList& tenants, const FleetStatus& fleet) {
    std::vector<std::string> missing;
    for (const auto& st : fleet.tenants)
        if (st.state == TenantState::missing_schema) missing.push_back(st.tenant.id + " (" + st.tenant.schema + ")");
    if (missing.empty())
        report.checks.push_back({"tenant schemas", CheckStatus::ok,
                                 "every one of the " + std::to_string(tenants.size()) + " tenants has its schema", {}});
    else
        report.checks.push_back({"tenant schemas", CheckStatus::fail,
                                 std::to_string(missing.size()) + " of " + std::to_string(tenants.size()) +
                                     " tenants have no schema: " + listed(missing),
                                 "create each with mtctl tenant create --id ID, or remove it from the discovery "
                                 "source; requests and migrate --all fail for it"});

    std::set<std::pair<std::optional<std::string>, std::string>> owned;
    for (const auto& t : tenants) owned.emplace(t.server, t.schema);
    const auto& shared = kernel.manifest().isolation.shared_schema;
    std::vector<std::string> orphans;
    std::string errors;
    for (const auto& s : servers) {
        try {
            pqxx::nontransaction tx(*s.conn);
            for (const auto& row : tx.exec("SELECT nspname::text FROM pg_catalog.pg_namespace ORDER BY 1")) {
                const std::string schema = row[0].c_str();
                if (schema == shared || kernel.namer().id_from_schema(schema).empty()) continue;
                if (!owned.count({s.server, schema})) orphans.push_back(schema + (s.server ? " on " + *s.server : ""));
            }
        } catch (const std::exception& e) {
            errors += (errors.empty() ? "" : "; ") + trimmed(e.what());
        }
    }
    if (!errors.empty())
        report.checks.push_back({"orphan schemas", CheckStatus::fail, errors, "check the connection and privileges"});
    else if (orphans.empty())
        report.checks.push_back({"orphan schemas", CheckStatus::ok,
                                 "no schema matching " + kernel.namer().schema_template() + " without a tenant", {}});
    else
        report.checks.push_back({"orphan schemas", CheckStatus::warn,
                                 std::to_string(orphans.size()) + " schemas match " +
                                     kernel.namer().schema_template() + " but no tenant owns them: " + listed(orphans),
                                 "add the tenant to the discovery source, or drop the schema (mtctl tenant drop "
                                 "--id ID --force) once you are sure it is not needed"});
}

void check_tracking(DoctorReport& report, const Kernel& kernel, const FleetStatus& fleet) {
    const auto& m = kernel.manifest().migrations;
    std::map<std::string, size_t> formats;
    std::vector<std::string> unknown;
    size_t no_table = 0, behind = 0, to_convert = 0;
    for (const auto& st : fleet.tenants) {
        switch (st.state) {
            case TenantState::missing_schema: break;
            case TenantState::no_table: ++no_table; break;
            case TenantState::unknown_format:
                // migrate converts these first (the auto convert check lists them).
                if (st.would_convert) ++to_convert;
                else unknown.push_back(st.tenant.id);
                break;
            case TenantState::behind: ++behind; [[fallthrough]];
            case TenantState::up_to_date: ++formats[st.format]; break;
        }
    }
    std::string detail;
    for (const auto& [format, n] : formats) detail += (detail.empty() ? "" : ", ") + format + ": " + std::to_string(n);
    if (detail.empty()) detail = "no tracking tables yet";
    if (formats.size() > 1) detail += " (mixed formats: each table is read in its own, as format = auto allows)";
    if (no_table) detail += "; " + std::to_string(no_table) + " without a tracking table";
    if (behind) detail += "; " + std::to_string(behind) + " behind (mtctl migrate --all applies their migrations)";
    if (to_convert)
        detail += "; " + std::to_string(to_convert) + " in another format, converted by the next migrate (migrations.auto_convert)";
    detail += "; migrations.format = " + m.format;
    if (unknown.empty()) {
        report.checks.push_back({"tracking", CheckStatus::ok, detail, {}});
        return;
    }
    const std::string to = m.format == "auto" ? m.default_format : m.format;
    detail += "; " + std::to_string(unknown.size()) + " tables " +
              (m.format == "auto" ? "in a layout no loaded format recognises" : "not in the " + m.format + " format") +
              ": " + listed(unknown);
    report.checks.push_back({"tracking", CheckStatus::warn, detail,
                             m.format == "auto"
                                 ? "load the plugin of their format, or fix the tables by hand"
                                 : "convert them with mtctl convert-format --to " + to +
                                       " --tenants ID,…, or set migrations.format = auto"});
}

// Which tenants' tables are in another readable format than migrations.format, and whether migrate
// converts them first (migrations.auto_convert) or refuses them.
void check_auto_convert(DoctorReport& report, const Kernel& kernel, const FleetStatus& fleet) {
    const auto& m = kernel.manifest().migrations;
    const std::string setting = std::string("migrations.auto_convert = ") + (m.auto_convert ? "true" : "false");
    if (m.format == "auto") {
        report.checks.push_back({"auto convert", CheckStatus::ok,
                                 "migrations.format = auto reads each table in its own format; nothing to convert (" +
                                     setting + ")",
                                 {}});
        return;
    }
    std::vector<std::string> convertible, ids;
    for (const auto& st : fleet.tenants)
        if (st.state == TenantState::unknown_format && !st.convert_from.empty()) {
            convertible.push_back(st.tenant.id + " (" + st.convert_from + ")");
            ids.push_back(st.tenant.id);
        }
    if (convertible.empty()) {
        report.checks.push_back({"auto convert", CheckStatus::ok,
                                 "no tracking table in another readable format than " + m.format + " (" + setting + ")", {}});
        return;
    }
    const std::string n = std::to_string(convertible.size());
    if (m.auto_convert) {
        report.checks.push_back({"auto convert", CheckStatus::ok,
                                 n + " tables the next migrate converts to the " + m.format +
                                     " format first, in the transaction of their first migration: " + listed(convertible),
                                 {}});
        return;
    }
    std::string tenant_list;
    for (const auto& id : ids) tenant_list += (tenant_list.empty() ? "" : ",") + id;
    const std::string selection = ids.size() > kListed ? "--all" : "--tenants " + tenant_list;
    report.checks.push_back({"auto convert", CheckStatus::warn,
                             n + " tables in another readable format than " + m.format + ", which migrate refuses while " +
                                 setting + ": " + listed(convertible),
                             "set migrations.auto_convert = true (migrate converts them first), or run: mtctl "
                             "convert-format --to " + m.format + " " + selection});
}

}  // namespace

Check server_version_check(int server_version_num, const std::string& version) {
    if (server_version_num < 120000)
        return {"server version", CheckStatus::warn, "PostgreSQL " + version + " is older than 12",
                "upgrade to PostgreSQL 12 or newer: tenant clone and the catalog queries rely on 12's catalogs "
                "(generated columns)"};
    return {"server version", CheckStatus::ok, "PostgreSQL " + version, {}};
}

Check pool_sizing_check(const Manifest& manifest, int max_connections, int reserved_connections) {
    const auto& db = manifest.database;
    const long long pools = db.pool_mode == PoolMode::per_tenant
                                ? static_cast<long long>(db.pool_size) * db.max_pools
                                : db.pool_size;
    const long long needed = pools + manifest.migrations.concurrency;
    const long long available = static_cast<long long>(max_connections) - reserved_connections;
    const std::string how =
        db.pool_mode == PoolMode::per_tenant
            ? "database.pool_size " + std::to_string(db.pool_size) + " × max_pools " + std::to_string(db.max_pools)
            : "database.pool_size " + std::to_string(db.pool_size) + " (pool_mode " + to_string(db.pool_mode) + ")";
    const std::string detail = "one process needs up to " + std::to_string(needed) + " connections (" + how +
                               " + migrations.concurrency " + std::to_string(manifest.migrations.concurrency) +
                               "); the server allows " + std::to_string(available) + " (max_connections " +
                               std::to_string(max_connections) + " − " + std::to_string(reserved_connections) +
                               " reserved)";
    if (needed > available)
        return {"pool sizing", CheckStatus::warn, detail,
                "lower database.max_pools or database.pool_size, raise max_connections, or put PgBouncer in front "
                "(pool_mode = transaction)"};
    return {"pool sizing", CheckStatus::ok, detail, {}};
}

Check pooler_check(const PoolerProbe& probe, PoolMode mode, bool has_no_transaction_migrations) {
    if (!probe.transaction_pooling) {
        std::string detail = "no transaction-mode pooler: " + probe.evidence;
        if (mode == PoolMode::transaction) detail += "; pool_mode = transaction works here too";
        return {"pooler", CheckStatus::ok, detail, {}};
    }
    const std::string found = "transaction-mode pooler detected: " + probe.evidence;
    if (mode != PoolMode::transaction)
        return {"pooler", CheckStatus::fail,
                found + "; pool_mode = " + to_string(mode) + " sets search_path once per connection, and the pooler "
                        "hands that server connection to other clients: a tenant could read another's tables",
                "set database.pool_mode = transaction (search_path set in every transaction), or use a "
                "session-mode pool"};
    if (has_no_transaction_migrations)
        return {"pooler", CheckStatus::warn,
                found + "; pool_mode = transaction is safe, but `-- mt:no-transaction` migrations and tenant clone "
                        "hold session-level advisory locks",
                "run mtctl migrate and mtctl tenant clone against the server directly (e.g. "
                "--database.url=postgresql://…:5432/…), not through the pooler"};
    return {"pooler", CheckStatus::ok,
            found + "; pool_mode = transaction is safe behind it (run mtctl tenant clone against the server directly)",
            {}};
}

PoolerProbe probe_transaction_pooler(pqxx::connection& first, pqxx::connection& second) {
    const std::string token =
        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" + std::to_string(::getpid());
    int pid = 0;
    {
        pqxx::nontransaction tx(first);
        pid = exec_params(tx, "SELECT pg_backend_pid(), set_config('mt.pooler_probe', $1, false)", {token})[0][0]
                  .as<int>();
    }
    {
        pqxx::work hold(second);
        const int other = hold.exec1("SELECT pg_backend_pid()")[0].as<int>();
        hold.commit();
        if (other == pid)
            return {true, "a second client's transaction ran on backend " + std::to_string(pid) +
                              ", which the first client, still connected, had just used"};
    }
    pqxx::nontransaction tx(first);
    const auto row = tx.exec1("SELECT pg_backend_pid(), current_setting('mt.pooler_probe', true)");
    const int again = row[0].as<int>();
    const std::string value = row[1].is_null() ? "" : row[1].c_str();
    if (again != pid || value != token)
        return {true, "one client's transactions ran on backends " + std::to_string(pid) + " and " +
                          std::to_string(again) + (value != token ? ", losing its session setting" : "")};
    return {false, "session state persists between transactions (backend " + std::to_string(pid) + " throughout)"};
}

namespace {

// Schema rebasing of the tenant folder (issue 13): what it owns, which template-schema references
// stay shared, and a warning for a shared reference to something neither the shared schema nor
// either folder has (a typo, or a shared migration not written or not applied yet).
void check_rebase(DoctorReport& report, pqxx::connection& conn, const Manifest& m, const MigrationFolder& folder) {
    RebasePlan plan;
    try {
        plan = rebase_plan(folder, m.migrations);
    } catch (const std::exception& e) {
        report.checks.push_back({"rebase", CheckStatus::fail, trimmed(e.what()), "fix the snapshot, or set migrations.rebase = off"});
        return;
    }
    if (!plan.enabled) {
        report.checks.push_back({"rebase", CheckStatus::ok, "off: " + plan.reason, {}});
        return;
    }
    std::set<std::string> owned_names, kept;
    for (const auto& o : plan.objects) owned_names.insert(o.name);
    size_t rewritten = 0;
    for (const auto& mig : folder.migrations)
        for (const auto& statement : mig.statements)
            for (const auto& ref : rebase_sql_detailed(statement, plan, "mt_doctor_probe").references)
                ref.rewritten ? (void)++rewritten : (void)kept.insert(ref.name);
    // What the shared folder will create counts as present even before migrate-shared ran.
    std::set<std::string> shared_creates;
    if (m.migrations.shared_dir) {
        try {
            Manifest::Migrations as_plain = m.migrations;
            as_plain.rebase = RebaseMode::automatic;
            for (const auto& n : rebase_plan(read_migration_folder(*m.migrations.shared_dir), as_plain).names)
                shared_creates.insert(n);
        } catch (const std::exception&) {
            // The shared folder's own check already reported it.
        }
    }
    std::vector<std::string> missing;
    if (!kept.empty()) {
        pqxx::nontransaction tx(conn);
        for (const auto& name : kept) {
            if (shared_creates.count(name)) continue;
            const auto row = tx.exec_params1(
                "SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = to_regnamespace($2)) "
                "OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typname = $1 AND t.typnamespace = to_regnamespace($2)) "
                "OR EXISTS (SELECT 1 FROM pg_proc f WHERE f.proname = $1 AND f.pronamespace = to_regnamespace($2))",
                name, plan.template_schema);
            if (!row[0].as<bool>()) missing.push_back(name);
        }
        tx.commit();
    }
    std::vector<std::string> owned(owned_names.begin(), owned_names.end());
    std::vector<std::string> shared;
    for (const auto& n : kept) shared.push_back(plan.template_schema + "." + n);
    std::string detail = "on (" + plan.reason + "); owns " + std::to_string(owned.size()) + " object" +
                         (owned.size() == 1 ? "" : "s") + ": " + listed(owned) + "; " + std::to_string(rewritten) +
                         " reference" + (rewritten == 1 ? "" : "s") + " rewritten per tenant; shared references kept: " +
                         (shared.empty() ? "none" : listed(shared));
    if (missing.empty()) {
        report.checks.push_back({"rebase", CheckStatus::ok, detail, {}});
        return;
    }
    std::vector<std::string> where;
    for (const auto& n : missing) where.push_back(plan.template_schema + "." + n);
    report.checks.push_back({"rebase", CheckStatus::warn,
                             detail + "; referenced but neither in schema " + plan.template_schema +
                                 " nor created by either folder: " + listed(where),
                             "a typo, or a shared migration that is missing or not applied yet (mtctl migrate-shared)"});
}

DoctorReport diagnose(const ManifestInput& input) {
    DoctorReport report;
    std::unique_ptr<Kernel> kernel;
    const auto database_checks = {"connection",     "server version", "discovery",   "tenant schemas",
                                  "orphan schemas", "tracking",       "auto convert", "pool sizing", "pooler"};
    try {
        kernel = std::make_unique<Kernel>(input);
        const auto& m = kernel->manifest();
        report.checks.push_back({"manifest", CheckStatus::ok, m.file ? m.file->string() : "no file (environment and flags)", {}});
    } catch (const PluginError& e) {
        report.checks.push_back({"manifest", CheckStatus::ok, "read", {}});
        report.checks.push_back({"plugins", CheckStatus::fail, e.what(), "check [plugins] path and load (mtctl plugins "
                                                                         "inspect FILE shows a file's descriptor)"});
        skip(report, {"tenant folder"}, "plugins did not load");
        for (const char* n : database_checks) skip(report, {n}, "plugins did not load");
        return report;
    } catch (const std::exception& e) {
        report.checks.push_back({"manifest", CheckStatus::fail, e.what(), "fix the manifest (mtctl init writes a starter)"});
        skip(report, {"plugins", "tenant folder"}, "the manifest is invalid");
        for (const char* n : database_checks) skip(report, {n}, "the manifest is invalid");
        return report;
    }
    const auto& m = kernel->manifest();
    std::string loaded;
    for (const auto& p : kernel->registry().plugins())
        loaded += (loaded.empty() ? "" : ", ") + p.name + " " + p.version + " (ABI " + std::to_string(p.abi_major) +
                  "." + std::to_string(p.abi_minor) + ")";
    report.checks.push_back({"plugins", CheckStatus::ok, loaded.empty() ? "none loaded" : loaded, {}});

    const auto tenant_folder = check_folder(report, "tenant folder", m.migrations.tenant_dir);
    if (m.migrations.shared_dir) check_folder(report, "shared folder", *m.migrations.shared_dir);

    std::vector<ServerConnection> servers;
    try {
        auto conn = kernel->connect();
        pqxx::nontransaction tx(*conn);
        const auto row = tx.exec1("SELECT current_setting('server_version'), current_setting('server_version_num')::int");
        tx.commit();
        report.checks.push_back({"connection", CheckStatus::ok, redact_conninfo(m.database.url), {}});
        for (const auto& [name, url] : m.servers) {
            try {
                servers.push_back({name, kernel->connect(name)});
                report.checks.push_back({"server " + name, CheckStatus::ok, redact_conninfo(url), {}});
            } catch (const std::exception& e) {
                report.checks.push_back({"server " + name, CheckStatus::fail, e.what(),
                                         "check [servers." + name + "] url and that the server is running"});
            }
        }
        report.checks.push_back(server_version_check(row[1].as<int>(), row[0].c_str()));
        servers.insert(servers.begin(), ServerConnection{std::nullopt, std::move(conn)});
    } catch (const std::exception& e) {
        report.checks.push_back({"connection", CheckStatus::fail, e.what(),
                                 "check [database] url (or DATABASE_URL) and that the server is running"});
        for (const char* n : database_checks)
            if (std::string(n) != "connection") skip(report, {n}, "no connection");
        return report;
    }
    pqxx::connection& conn = *servers.front().conn;

    std::optional<TenantList> tenants;
    try {
        tenants = kernel->discover_tenants(conn);
        report.checks.push_back({"discovery", tenants->empty() ? CheckStatus::warn : CheckStatus::ok,
                                 m.roles.discovery + ": " + std::to_string(tenants->size()) + " tenants",
                                 tenants->empty() ? "no tenants found: check the discovery plugin's settings" : ""});
    } catch (const std::exception& e) {
        report.checks.push_back({"discovery", CheckStatus::fail, trimmed(e.what()),
                                 "check [roles] discovery and its [plugin.NAME] settings"});
        skip(report, {"tenant schemas", "orphan schemas", "tracking", "auto convert"}, "discovery failed");
    }
    if (tenants) {
        try {
            // An unreadable folder still lets the formats be counted.
            MigrationFolder folder;
            if (tenant_folder) folder = *tenant_folder;
            else folder.dir = m.migrations.tenant_dir;
            const auto fleet = fleet_status(*kernel, *tenants, folder, TrackingTarget::tenants(m));
            check_schemas(report, *kernel, servers, *tenants, fleet);
            check_tracking(report, *kernel, fleet);
            check_auto_convert(report, *kernel, fleet);
        } catch (const std::exception& e) {
            for (const char* n : {"tenant schemas", "orphan schemas", "tracking", "auto convert"})
                report.checks.push_back({n, CheckStatus::fail, "reading the tenants' tracking tables: " + trimmed(e.what()),
                                         "mtctl status names the failing tenant; check every server's connection, "
                                         "and migrations.format against the tables' layout"});
        }
    }

    try {
        pqxx::nontransaction tx(conn);
        const auto row = tx.exec1(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int "
            "+ coalesce(current_setting('reserved_connections', true), '0')::int");
        tx.commit();
        report.checks.push_back(pool_sizing_check(m, row[0].as<int>(), row[1].as<int>()));
    } catch (const std::exception& e) {
        report.checks.push_back({"pool sizing", CheckStatus::fail, trimmed(e.what()), "check the connection"});
    }

    if (tenant_folder) {
        try {
            check_rebase(report, conn, m, *tenant_folder);
        } catch (const std::exception& e) {
            report.checks.push_back({"rebase", CheckStatus::fail, trimmed(e.what()), "check the connection"});
        }
    }

    try {
        auto second = kernel->connect();
        const auto probe = probe_transaction_pooler(conn, *second);
        const bool no_transaction =
            tenant_folder && std::any_of(tenant_folder->migrations.begin(), tenant_folder->migrations.end(),
                                         [](const Migration& mig) { return mig.no_transaction; });
        report.checks.push_back(pooler_check(probe, m.database.pool_mode, no_transaction));
    } catch (const std::exception& e) {
        report.checks.push_back({"pooler", CheckStatus::fail, trimmed(e.what()), "check the connection"});
    }
    return report;
}

}  // namespace

DoctorReport run_doctor(const ManifestInput& input) {
    DoctorReport report = diagnose(input);
    // A check's detail can quote a manifest value or a driver message: the last stop for a password.
    for (auto& check : report.checks) {
        check.detail = redact_text(check.detail);
        check.hint = redact_text(check.hint);
    }
    return report;
}

}  // namespace mt
