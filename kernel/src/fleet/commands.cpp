// The command entry points (mt/fleet/commands.hpp): manifest lookup, defaults, scope and error
// translation for every mtctl command, so that the CLI only parses flags and renders results.
#include <mt/fleet/command_results.hpp>
#include <mt/fleet/commands.hpp>

#include <mt/base/errors.hpp>
#include <mt/base/redact.hpp>
#include <mt/context/kernel.hpp>
#include <mt/fleet/clone.hpp>
#include <mt/fleet/doctor.hpp>
#include <mt/fleet/drift.hpp>
#include <mt/fleet/fleet_metrics.hpp>
#include <mt/fleet/runs.hpp>
#include <mt/fleet/seed.hpp>
#include <mt/fleet/sync.hpp>
#include <mt/migrations/migrate.hpp>
#include <mt/tracking/migration_folder.hpp>
#include <mt/tracking/rebase.hpp>
#include <mt/tracking/status.hpp>

#include "fleet/translated.hpp"

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>

namespace mt::command {

namespace fs = std::filesystem;

namespace {

// The one check behind every --shared flag.
const fs::path& shared_dir(const Manifest& m) {
    if (!m.migrations.shared_dir)
        throw UsageError("migrations.shared_dir is not set: name the shared migrations folder in the manifest");
    return *m.migrations.shared_dir;
}

// The shared schema as a one-tenant fleet.
TenantList shared_tenant(const Manifest& m) {
    return TenantList{Tenant{m.isolation.shared_schema, m.isolation.shared_schema, std::nullopt}};
}

// The commands that change tenants name them; the ones that only read default to the whole fleet.
void require_selection(const TenantSelection& selection) {
    if (selection.empty()) throw UsageError("choose tenants with --all, --tenant ID or --tenants a,b,c");
}

struct Resolved {
    TenantList tenants;
    MigrationFolder folder;
    TrackingTarget target;
};

Resolved resolve(const Kernel& kernel, const Scope& scope) {
    const auto& m = kernel.manifest();
    if (scope.shared)
        return {shared_tenant(m), read_migration_folder(shared_dir(m)), TrackingTarget::shared_schema(m)};
    return {kernel.select(scope.selection.empty() ? TenantSelection{true, {}} : scope.selection),
            read_migration_folder(m.migrations.tenant_dir), TrackingTarget::tenants(m)};
}

int concurrency_of(const std::optional<int>& requested, const Manifest& m) {
    const int n = requested.value_or(m.migrations.concurrency);
    if (n < 1) throw UsageError("--concurrency must be at least 1");
    return n;
}

bool manifest_present(const ManifestInput& input) {
    if (input.file) return true;
    if (const char* env = std::getenv("MT_CONFIG"); env && *env) return true;
    return fs::exists("multitenant.ini");
}

}  // namespace

// The SQL the first tenant with work would run, as it would run; the shared schema is never rebased.
// Fed each result of a dry run as it comes, so that a streamed run needs no list of them.
class PreviewBuilder {
public:
    PreviewBuilder(const MigrationFolder& folder, const Manifest& m, bool shared) : folder_(folder) {
        plan_.reason = "the shared folder is never rebased";
        if (!shared) plan_ = rebase_plan(folder, m.migrations);
    }

    void add(const TenantMigrateResult& r) {
        if (r.outcome != TenantOutcome::would_migrate) return;
        if (preview_) {
            ++preview_->other_tenants;
            return;
        }
        preview_.emplace();
        preview_->tenant = r.tenant;
        preview_->rebased = plan_.enabled;
        preview_->rebase_reason = plan_.reason;
        for (const auto& name : r.applied) {
            const Migration* m = folder_.find_by_name(name);
            if (!m) continue;
            preview_->steps.push_back({name, rebased_statements(*m, plan_, r.tenant.schema)});
        }
    }

    std::optional<DryRunPreview> take() { return std::move(preview_); }

private:
    const MigrationFolder& folder_;
    RebasePlan plan_;
    std::optional<DryRunPreview> preview_;
};

MigrateReport migrate(const ManifestInput& input, const MigrateRequest& request) {
    return translated([&] {
        if (!request.scope.shared && !request.resume) require_selection(request.scope.selection);
        const Kernel kernel(input);
        const auto& m = kernel.manifest();
        MigrateOptions options;
        // The shared schema is one "tenant": one worker.
        options.concurrency = request.scope.shared ? 1 : concurrency_of(request.concurrency, m);
        options.dry_run = request.dry_run;
        options.mark_applied = request.mark_applied;
        options.to = request.to;
        options.fail_fast = request.fail_fast || m.migrations.fail_fast;
        options.transaction = m.migrations.transaction;
        options.lock_timeout = m.migrations.lock_timeout;
        options.progress = request.progress;
        options.rollout = request.rollout;
        options.on_result = request.on_result;
        // A tenant run that changes something goes through the run ledger (fleet/runs.cpp).
        if (!request.scope.shared && !request.dry_run) return migrate_recorded(kernel, request, options);
        const auto [tenants, folder, target] = resolve(kernel, request.scope);
        std::optional<PreviewBuilder> preview;
        if (request.dry_run) {
            preview.emplace(folder, m, target.shared);
            if (options.on_result)
                options.on_result = [&preview, next = options.on_result](const TenantMigrateResult& r) {
                    preview->add(r);
                    next(r);
                };
        }
        MigrateReport report = mt::migrate(kernel, tenants, folder, target, options);
        if (preview) {
            for (const auto& r : report.tenants) preview->add(r);
            report.preview = preview->take();
        }
        return report;
    });
}

MigrateReport convert_format(const ManifestInput& input, const ConvertRequest& request) {
    return translated([&] {
        if (!request.scope.shared && !request.resume) require_selection(request.scope.selection);
        const Kernel kernel(input);
        ConvertOptions options;
        options.to = request.to;
        options.from = request.from;
        options.dry_run = request.dry_run;
        options.concurrency = concurrency_of(request.concurrency, kernel.manifest());
        options.progress = request.progress;
        options.rollout = request.rollout;
        // An unknown format is refused (exit 2) before anything is read or changed.
        if (!options.to.empty() || !request.resume) kernel.tracking_format(options.to);
        if (options.from) kernel.tracking_format(*options.from);
        // A tenant run that changes something goes through the run ledger (fleet/runs.cpp).
        if (!request.scope.shared && !request.dry_run) return convert_recorded(kernel, request, options);
        const auto [tenants, folder, target] = resolve(kernel, request.scope);
        return mt::convert_format(kernel, tenants.to_vector(), folder, target, options);
    });
}

StatusResult status(const ManifestInput& input, const StatusRequest& request) {
    return translated([&] {
        const Kernel kernel(input);
        const auto [tenants, folder, target] = resolve(kernel, request.scope);
        if (request.on_start) request.on_start(tenants, folder.migrations.size());
        if (!request.on_tenant) return StatusResult{fleet_status(kernel, tenants, folder, target), folder.migrations.size()};
        StatusResult result;
        result.migrations = folder.migrations.size();
        result.fleet.duration_ms = stream_fleet_status(kernel, tenants, folder, target, request.on_tenant);
        return result;
    });
}

StatusResult status(const ManifestInput& input, const Scope& scope) { return status(input, StatusRequest{scope, {}, {}}); }

SyncReport sync(const ManifestInput& input, const SyncRequest& request) {
    return translated([&] {
        const Kernel kernel(input);
        const auto& m = kernel.manifest();
        SyncOptions options;
        options.mark_missing = request.mark_missing;
        options.clean_orphans = request.clean_orphans;
        options.dry_run = request.dry_run;
        options.concurrency = m.migrations.concurrency;
        options.lock_timeout = m.migrations.lock_timeout;
        options.progress = request.progress;
        options.on_tenant = request.on_tenant;
        options.rollout = request.rollout;
        // A repair of tenants goes through the run ledger (fleet/runs.cpp).
        if (!request.scope.shared && ((options.repairs() && !options.dry_run) || request.resume))
            return sync_recorded(kernel, request, options);
        const auto [tenants, folder, target] = resolve(kernel, request.scope);
        if (request.on_start) request.on_start(tenants, folder.migrations.size());
        return sync_tracking(kernel, tenants, folder, target, options);
    });
}

SeedReport seed(const ManifestInput& input, const SeedRequest& request) {
    return translated([&] {
        if (!request.resume) require_selection(request.selection);
        const Kernel kernel(input);
        const auto& m = kernel.manifest();
        SeedOptions options;
        options.concurrency = concurrency_of(request.concurrency, m);
        options.lock_timeout = m.migrations.lock_timeout;
        options.progress = request.progress;
        options.rollout = request.rollout;
        // Every seed run goes through the run ledger (fleet/runs.cpp).
        return seed_recorded(kernel, request, options);
    });
}

DriftReport diff(const ManifestInput& input, const DiffRequest& request) {
    return translated([&] {
        const Kernel kernel(input);
        auto tenants = kernel.select(request.selection.empty() ? TenantSelection{true, {}} : request.selection);
        return detect_drift(kernel, std::move(tenants), request.reference, request.compact);
    });
}

HealthResult health(const ManifestInput& input, const HealthRequest& request) {
    return translated([&] {
        const Kernel kernel(input);
        TenantManager manager(kernel);
        HealthOptions options;
        options.timeout = request.timeout;
        options.pending = request.pending;
        try {
            if (!request.selection.empty())
                for (const auto& t : kernel.select(request.selection)) options.tenants.push_back(t.id);
        } catch (const DatabaseUnavailable&) {
            // The tenant list could not be read: the shared schema's check reports the same server
            // as unreachable, so the fleet is unhealthy rather than the command wrong.
            options.tenants.clear();
        }
        return HealthResult{manager.health_check(options), kernel.manifest().isolation.shared_schema};
    });
}

GeneratedMigration generate(const ManifestInput& input, const std::string& name, bool shared) {
    return translated([&] {
        const Kernel kernel(input);
        const auto& m = kernel.manifest();
        const fs::path dir = shared ? shared_dir(m) : m.migrations.tenant_dir;
        const auto file = generate_migration(dir, name);
        const bool journal = read_migration_folder(dir).layout == FolderLayout::drizzle_kit;
        return GeneratedMigration{file, file.stem().string(), dir, journal,
                                  journal ? dir / "meta" / "_journal.json" : fs::path()};
    });
}

InitResult init(const ManifestInput& input, const fs::path& dir, bool force) {
    return translated([&] {
        const fs::path manifest = input.file ? *input.file : dir / "multitenant.ini";
        if (fs::exists(manifest) && !force)
            throw UsageError(manifest.string() + " already exists; nothing written (use --force to overwrite)");
        InitResult result{manifest, {dir / "drizzle" / "tenant", dir / "drizzle" / "shared"}};
        for (const auto& folder : result.folders) fs::create_directories(folder);
        if (manifest.has_parent_path()) fs::create_directories(manifest.parent_path());
        std::ofstream out(manifest);
        out << starter_manifest();
        if (!out.flush()) throw OperationError(manifest.string() + ": cannot be written");
        return result;
    });
}

TenantList tenant_list(const ManifestInput& input) {
    return translated([&] { return Kernel(input).discover_tenants(); });
}

TenantMigrateResult tenant_create(const ManifestInput& input, const std::string& id, bool migrate) {
    return translated([&] {
        const Kernel kernel(input);
        const auto tenant = kernel.tenant(id);
        const auto folder = read_migration_folder(kernel.manifest().migrations.tenant_dir);
        return create_tenant(kernel, tenant, folder, migrate);
    });
}

Tenant tenant_drop(const ManifestInput& input, const std::string& id, bool force) {
    return translated([&] {
        const Kernel kernel(input);
        const auto tenant = kernel.tenant(id);
        if (!force)
            throw UsageError("tenant drop deletes schema " + tenant.schema +
                             " and all its data; add --force to confirm (nothing was dropped)");
        drop_tenant(kernel, tenant);
        return tenant;
    });
}

CloneReport tenant_clone(const ManifestInput& input, const std::string& from, const std::string& to, bool with_data) {
    return translated([&] {
        const Kernel kernel(input);
        const auto pair = kernel.select({false, {from, to}});
        const auto folder = read_migration_folder(kernel.manifest().migrations.tenant_dir);
        CloneOptions options;
        options.with_data = with_data;
        return clone_tenant(kernel, pair.at(0), pair.at(1), folder, options);
    });
}

PluginListing plugins(const ManifestInput& input) {
    return translated([&] {
        PluginListing listing;
        if (manifest_present(input)) {
            const Kernel kernel(input);
            listing.plugins = kernel.registry().plugins();
            listing.status = "loaded";
            return listing;
        }
        std::vector<fs::path> files;
        if (const auto dir = builtin_plugin_dir(); fs::is_directory(dir))
            for (const auto& e : fs::directory_iterator(dir))
                if (e.path().extension() == ".so") files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) listing.plugins.push_back(mt::inspect_plugin(f));
        listing.status = "available";
        return listing;
    });
}

PluginInfo inspect_plugin(const fs::path& file) {
    return translated([&] { return mt::inspect_plugin(file); });
}

DoctorReport doctor(const ManifestInput& input) {
    return translated([&] { return run_doctor(input); });
}

struct Exporter::State {
    State(const ManifestInput& input, std::chrono::milliseconds max_age)
        : kernel(input), manager(kernel), max_age(max_age) {}
    Kernel kernel;
    TenantManager manager;
    std::chrono::milliseconds max_age;
    std::mutex mutex;
    std::optional<std::chrono::steady_clock::time_point> published;
};

Exporter::Exporter(const ManifestInput& input, std::chrono::milliseconds max_age)
    : state_(translated([&] { return std::make_unique<State>(input, max_age); })) {}

Exporter::~Exporter() = default;

TenantManager& Exporter::manager() { return state_->manager; }

bool Exporter::has_sinks() const { return !state_->kernel.sinks().empty(); }

void Exporter::refresh_fleet_gauges() {
    std::lock_guard lock(state_->mutex);
    const auto now = std::chrono::steady_clock::now();
    if (state_->published && now - *state_->published < state_->max_age) return;
    try {
        publish_fleet_metrics(state_->kernel);
    } catch (const std::exception& e) {
        spdlog::warn("fleet gauges not refreshed: {}", redact_text(e.what()));
    }
    state_->published = now;
}

}  // namespace mt::command
