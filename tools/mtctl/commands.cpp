// mtctl's lifecycle and migration commands: init, doctor, plugins, tenant, migrate, migrate-shared,
// status, convert-format. Each parses its flags, calls its entry point in mt/fleet/commands.hpp and
// renders the result.
#include "cli.hpp"
#include "json.hpp"
#include "rollout_flags.hpp"

#include <mt/base/errors.hpp>
#include <mt/fleet/clone.hpp>
#include <mt/fleet/command_results.hpp>
#include <mt/fleet/doctor.hpp>
#include <mt/migrations/migrate.hpp>

#include <iostream>

namespace mtctl {

using nlohmann::json;

namespace {

json plugin_json(const mt::PluginInfo& p, const std::string& status) {
    json factories = json::array();
    for (const auto& f : p.factories)
        factories.push_back({{"name", f.name}, {"kind", mt::to_string(f.kind)}, {"config_keys", f.config_keys}});
    return {{"name", p.name},
            {"version", p.version},
            {"abi", std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor)},
            {"abi_major", p.abi_major},
            {"abi_minor", p.abi_minor},
            {"abi_required_minor", p.abi_required_minor},
            {"note", p.has_note ? json{{"kinds", p.note_kinds}} : json(nullptr)},
            {"sdk_version", p.sdk_version},
            {"toolchain", p.toolchain},
            {"file", p.file.string()},
            {"status", status},
            {"factories", factories}};
}

std::string kinds_of(const mt::PluginInfo& p) {
    std::string kinds;
    for (const auto& f : p.factories) kinds += (kinds.empty() ? "" : ",") + mt::to_string(f.kind);
    return kinds;
}

json result_json(const mt::TenantMigrateResult& r) {
    json j = tenant_json(r.tenant);
    j["format"] = r.format;
    j["converted_from"] = or_null(r.converted_from);
    j["outcome"] = mt::to_string(r.outcome);
    j["migrations"] = r.applied;
    j["duration_ms"] = r.duration_ms;
    if (r.outcome == mt::TenantOutcome::failed) {
        j["error"] = r.error;
        j["failed_migration"] = or_null(r.failed_migration);
        j["sqlstate"] = or_null(r.sqlstate);
    } else if (!r.error.empty()) {
        j["note"] = r.error;
    }
    return j;
}

// Renders a migrate / convert run: each tenant's JSON element and line as its result comes (tenant),
// then the summary (finish). Keeps nothing per tenant.
class ReportWriter {
public:
    ReportWriter(const Output& out, std::string command, bool dry_run)
        : out_(out), command_(std::move(command)), dry_run_(dry_run), doc_(out.globals().json) {}

    void tenant(const mt::TenantMigrateResult& r) {
        begin();
        doc_.element(result_json(r));
        std::string names;
        for (const auto& n : r.applied) names += (names.empty() ? "" : ", ") + n;
        if (!r.converted_from.empty() && r.outcome != mt::TenantOutcome::failed)
            out_.info((dry_run_ ? "plan " : "conv ") + r.tenant.id + ": tracking table " +
                      (dry_run_ ? "would be converted" : "converted") + " from the " + r.converted_from + " format to " +
                      r.format + " (migrations.auto_convert)");
        switch (r.outcome) {
            case mt::TenantOutcome::failed:
                std::cerr << out_.paint("FAIL", "31") << " " << r.tenant.id << " (" << r.tenant.schema << ")"
                          << (r.failed_migration.empty() ? "" : " at " + r.failed_migration) << ": " << r.error
                          << "\n";
                break;
            case mt::TenantOutcome::migrated:
                out_.info(out_.paint("ok", "32") + "   " + r.tenant.id + ": " + names);
                break;
            case mt::TenantOutcome::would_migrate:
                out_.info("plan " + r.tenant.id + ": " + names);
                break;
            case mt::TenantOutcome::up_to_date:
                if (out_.globals().verbose) out_.info("ok   " + r.tenant.id + ": up to date");
                break;
            case mt::TenantOutcome::skipped:
                if (out_.globals().verbose || !r.error.empty())
                    out_.info("skip " + r.tenant.id + (r.error.empty() ? "" : ": " + r.error));
                break;
        }
        std::cout.flush();
    }

    // The summary (and a dry run's preview); returns the exit code (1 when any tenant failed).
    int finish(const mt::MigrateReport& report) {
        for (const auto& r : report.tenants) tenant(r);  // a report that was not streamed
        begin();
        json summary{{"total", report.total},
                     {"succeeded", report.succeeded},
                     {"failed", report.failed},
                     {"skipped", report.skipped},
                     {"migrations_applied", report.migrations_applied},
                     {"converted", report.converted},
                     {"duration_ms", report.duration_ms}};
        if (command_ == "migrate" || command_ == "convert-format") rollout_json(report, summary);
        json tail{{"summary", summary}};
        if (report.preview) {
            const auto& p = *report.preview;
            json steps = json::array();
            for (const auto& step : p.steps) steps.push_back({{"migration", step.migration}, {"statements", step.statements}});
            tail["preview"] = {{"tenant", p.tenant.id},
                               {"schema", p.tenant.schema},
                               {"rebased", p.rebased},
                               {"rebase_reason", p.rebase_reason},
                               {"migrations", steps},
                               {"other_tenants", p.other_tenants}};
        }
        doc_.end(tail);
        if (report.preview) {
            const auto& p = *report.preview;
            out_.info("");
            out_.info("-- SQL for " + p.tenant.id + " (" + p.tenant.schema + "), as it would run; " +
                      (p.rebased ? "rebased: " : "not rebased: ") + p.rebase_reason);
            for (const auto& step : p.steps) {
                out_.info("-- " + step.migration);
                for (const auto& statement : step.statements) out_.info(statement + "\n--> statement-breakpoint");
            }
            if (p.other_tenants)
                out_.info("-- … and " + std::to_string(p.other_tenants) + " more tenant" + (p.other_tenants == 1 ? "" : "s") +
                          ": the same migrations, in each tenant's own schema");
            out_.info("");
        }
        out_.line(command_ + (dry_run_ ? " (dry run)" : "") + ": " + std::to_string(report.total) + " tenants, " +
                  std::to_string(report.succeeded) + " succeeded, " + std::to_string(report.failed) + " failed, " +
                  std::to_string(report.skipped) + " skipped; " + std::to_string(report.migrations_applied) +
                  " migrations" +
                  (report.converted ? ", " + std::to_string(report.converted) + " tracking tables " +
                                          (dry_run_ ? "to convert" : "converted")
                                    : std::string()) +
                  " in " + seconds(report.duration_ms));
        if (command_ == "migrate" || command_ == "convert-format") rollout_lines(out_, report);
        // A run the throttle stopped did not do what was asked, even with no tenant failed.
        return report.failed || report.rollout.stop == mt::RolloutStop::throttle_timeout ? 1 : 0;
    }

private:
    // The document opens with the first result (or the summary): a run refused before any tenant
    // prints no partial document.
    void begin() {
        if (begun_) return;
        begun_ = true;
        doc_.begin({{"command", command_}, {"dry_run", dry_run_}}, "tenants");
    }

    const Output& out_;
    std::string command_;
    bool dry_run_;
    JsonStream doc_;
    bool begun_ = false;
};

}  // namespace

static int cmd_init(const Invocation& inv, const Output& out) {
    po::options_description desc("init options");
    desc.add_options()("force", "overwrite an existing manifest")(
        "dir", po::value<std::string>()->default_value(".")->value_name("D"), "where to write");
    const auto vm = parse_options(inv, desc);
    const auto made = mt::command::init(inv.globals.manifest_input(), vm["dir"].as<std::string>(), vm.count("force") != 0);
    out.json({{"manifest", made.manifest.string()}, {"folders", {made.folders[0].string(), made.folders[1].string()}}});
    out.info("wrote " + made.manifest.string() + ", " + made.folders[0].string() + "/ and " + made.folders[1].string() + "/");
    out.info("next: set DATABASE_URL, add migrations to drizzle/tenant, then run: mtctl doctor");
    return 0;
}

static int cmd_doctor(const Invocation& inv, const Output& out) {
    po::options_description desc("doctor options");
    parse_options(inv, desc);
    const auto report = mt::command::doctor(inv.globals.manifest_input());
    json checks = json::array();
    for (const auto& c : report.checks) {
        checks.push_back({{"check", c.name}, {"status", mt::to_string(c.status)}, {"detail", c.detail},
                          {"hint", c.hint.empty() ? json(nullptr) : json(c.hint)}});
        const char* colour = c.status == mt::CheckStatus::ok     ? "32"
                             : c.status == mt::CheckStatus::warn ? "33"
                             : c.status == mt::CheckStatus::fail ? "31"
                                                                 : "90";
        out.line(out.paint(pad(mt::to_string(c.status), 5), colour) + pad(c.name, 15) + c.detail +
                 (c.hint.empty() ? "" : " — " + c.hint));
    }
    out.json({{"checks", checks}, {"ok", !report.failed()}});
    return report.failed() ? 1 : 0;
}

static int cmd_plugins(const Invocation& inv, const Output& out) {
    if (inv.words.size() > 1 && inv.words[1] != "inspect")
        throw mt::UsageError("unknown plugins subcommand '" + inv.words[1] + "' (use: mtctl plugins [inspect FILE])");
    if (inv.words.size() > 1) {
        po::options_description desc("plugins inspect options");
        desc.add_options()("file", po::value<std::string>()->required()->value_name("FILE"), "the plugin file");
        po::positional_options_description pos;
        pos.add("file", 1);
        const auto vm = parse_options(inv, desc, &pos);
        const auto info = mt::command::inspect_plugin(vm["file"].as<std::string>());
        out.json(plugin_json(info, "inspected"));
        out.line(info.name + " " + info.version + "  (" + info.file.string() + ")");
        out.line("  ABI " + std::to_string(info.abi_major) + "." + std::to_string(info.abi_minor) + " (requires " +
                 std::to_string(info.abi_major) + "." + std::to_string(info.abi_required_minor) + "), SDK " +
                 info.sdk_version + ", built with " + info.toolchain);
        std::string note_kinds;
        for (uint32_t k = MT_KIND_TRACKING_FORMAT; k <= MT_KIND_REQUEST_TENANT_EXTRACTOR; ++k)
            if (info.note_kinds & (1u << k)) note_kinds += (note_kinds.empty() ? "" : ",") + mt::to_string(static_cast<mt_kind>(k));
        out.line(info.has_note ? "  .note.mtenant: checked before loading; kinds " + note_kinds
                               : "  no .note.mtenant (built against ABI 1.0 headers): checked after loading");
        for (const auto& f : info.factories) {
            std::string keys;
            for (const auto& k : f.config_keys) keys += (keys.empty() ? "" : ", ") + k;
            out.line("  " + mt::to_string(f.kind) + " " + f.name + (keys.empty() ? "" : "  [plugin." + f.name + "] " + keys));
        }
        return 0;
    }
    po::options_description desc("plugins options");
    parse_options(inv, desc);
    const auto listing = mt::command::plugins(inv.globals.manifest_input());
    json plugins = json::array();
    std::vector<std::vector<std::string>> rows{{"PLUGIN", "VERSION", "ABI", "KINDS", "STATUS", "FILE"}};
    for (const auto& p : listing.plugins) {
        plugins.push_back(plugin_json(p, listing.status));
        rows.push_back({p.name, p.version, std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor), kinds_of(p),
                        listing.status, p.file.string()});
    }
    out.json({{"plugins", plugins}});
    if (!inv.globals.json) std::cout << table(rows);
    return 0;
}

static int cmd_tenant(const Invocation& inv, const Output& out) {
    const std::string sub = inv.words.size() > 1 ? inv.words[1] : "";
    if (sub == "list") {
        po::options_description desc("tenant list options");
        parse_options(inv, desc);
        // Written tenant by tenant from the compact list: neither the document nor the table is
        // ever held whole (100,000 tenants took 134 MB that way).
        const auto tenants = mt::command::tenant_list(inv.globals.manifest_input());
        if (inv.globals.json) {
            JsonStream doc(true);
            doc.begin(json::object(), "tenants");
            for (const auto& t : tenants) doc.element(tenant_json(t));
            doc.end({{"total", tenants.size()}});
        } else if (inv.globals.quiet) {
            // -q: the ids alone, one a line, for scripts and the shell completions.
            for (size_t i = 0; i < tenants.size(); ++i) std::cout << tenants.id(i) << "\n";
        } else {
            const auto [id, schema] = tenant_widths(tenants);
            size_t server = 6;  // "SERVER"
            for (const auto& name : tenants.servers()) server = std::max(server, name.value_or("default").size());
            const std::vector<size_t> widths{id, schema, server};
            std::cout << row_text({"TENANT", "SCHEMA", "SERVER"}, widths) << "\n";
            for (const auto& t : tenants) std::cout << row_text({t.id, t.schema, t.server.value_or("default")}, widths) << "\n";
        }
        out.info(std::to_string(tenants.size()) + " tenants");
        return 0;
    }
    if (sub == "create") {
        po::options_description desc("tenant create options");
        desc.add_options()("id", po::value<std::string>()->required()->value_name("X"), "the tenant id")(
            "no-migrate", "create the schema and tracking table only");
        const auto vm = parse_options(inv, desc);
        const auto result = mt::command::tenant_create(inv.globals.manifest_input(), vm["id"].as<std::string>(),
                                                       !vm.count("no-migrate"));
        const auto& tenant = result.tenant;
        out.json(result_json(result));
        out.info("created tenant " + tenant.id + " (schema " + tenant.schema + ", " +
                 std::to_string(result.applied.size()) + " migrations applied)");
        return 0;
    }
    if (sub == "drop") {
        po::options_description desc("tenant drop options");
        desc.add_options()("id", po::value<std::string>()->required()->value_name("X"), "the tenant id")(
            "force", "required: dropping a tenant deletes its schema and all its data");
        const auto vm = parse_options(inv, desc);
        const auto tenant =
            mt::command::tenant_drop(inv.globals.manifest_input(), vm["id"].as<std::string>(), vm.count("force") != 0);
        out.json({{"dropped", tenant_json(tenant)}});
        out.info("dropped tenant " + tenant.id + " (schema " + tenant.schema + ")");
        return 0;
    }
    if (sub == "clone") {
        po::options_description desc("tenant clone options");
        desc.add_options()("from", po::value<std::string>()->required()->value_name("A"), "the tenant to copy")(
            "to", po::value<std::string>()->required()->value_name("B"), "the new tenant's id")(
            "with-data", "also copy the rows (and move sequences past them)");
        const auto vm = parse_options(inv, desc);
        const bool with_data = vm.count("with-data") != 0;
        const auto report = mt::command::tenant_clone(inv.globals.manifest_input(), vm["from"].as<std::string>(),
                                                      vm["to"].as<std::string>(), with_data);
        json tables = json::array(), sequences = json::array();
        uint64_t rows = 0;
        for (const auto& t : report.tables) {
            tables.push_back({{"table", t.table}, {"rows", t.rows}});
            rows += t.rows;
        }
        for (const auto& q : report.sequences)
            sequences.push_back({{"sequence", q.sequence}, {"value", q.value}, {"is_called", q.is_called}});
        out.json({{"from", tenant_json(report.from)},
                  {"to", tenant_json(report.to)},
                  {"format", report.format},
                  {"migrations", report.migrations},
                  {"with_data", with_data},
                  {"tables", tables},
                  {"sequences", sequences},
                  {"rows", rows},
                  {"atomic", report.atomic},
                  {"duration_ms", report.duration_ms}});
        out.info("cloned tenant " + report.from.id + " to " + report.to.id + " (schema " + report.to.schema + ", " +
                 std::to_string(report.migrations.size()) + " migrations replayed" +
                 (with_data ? ", " + std::to_string(rows) + " rows in " + std::to_string(report.tables.size()) +
                                          " tables copied"
                                    : "") +
                 ")");
        return 0;
    }
    if (sub.empty()) {
        // `mtctl tenant --help` lists the subcommands.
        po::options_description desc("tenant options");
        parse_options(inv, desc);
    }
    throw mt::UsageError(sub.empty() ? "tenant needs a subcommand: list, create, drop or clone"
                                     : "unknown tenant subcommand '" + sub + "' (use list, create, drop or clone)");
}

namespace {

po::options_description migrate_options(const std::string& title, bool tenants) {
    po::options_description desc(title);
    if (tenants) {
        add_tenant_selection(desc);
        desc.add_options()("concurrency", po::value<std::string>()->value_name("N|auto"),
                           "workers (and connections) per server; auto: adapt to the server (docs/rollouts.md)")(
            "to", po::value<std::string>()->value_name("NAME"), "stop after this migration (file name without .sql)")(
            "fail-fast", "stop starting tenants after the first failure");
        add_rollout_options(desc);
    }
    desc.add_options()("dry-run", "show what would be applied; change nothing")(
        "mark-applied", "record pending migrations without executing them");
    return desc;
}

mt::command::MigrateRequest migrate_request(const po::variables_map& vm, const Output& out, bool shared) {
    mt::command::MigrateRequest request;
    if (shared) request.scope.shared = true;
    else request.scope.selection = tenant_selection(vm);
    request.dry_run = vm.count("dry-run") != 0;
    request.mark_applied = vm.count("mark-applied") != 0;
    request.to = optional_flag<std::string>(vm, "to");
    request.fail_fast = vm.count("fail-fast") != 0;
    request.progress = out.progress("migrating");
    // A dry run changes nothing: a rollout flag there would promise a protection that does not apply.
    if (const auto flag = shared ? std::string() : rollout_flag_given(vm); !flag.empty() && flag != "--resume" && request.dry_run)
        throw mt::UsageError(flag + ": migrate --dry-run changes nothing; the rollout flags apply to a run that migrates "
                             "(nothing was changed)");
    if (!shared) rollout_request(vm, request, out);
    return request;
}

}  // namespace

// Each tenant's result is printed as it comes (see MigrateOptions::on_result for the order).
static int cmd_migrate(const Invocation& inv, const Output& out) {
    po::positional_options_description pos;
    pos.add("run", 1);  // migrate --resume RUN
    const auto vm = parse_options(inv, migrate_options("migrate options", true), &pos);
    auto request = migrate_request(vm, out, false);
    ReportWriter writer(out, "migrate", request.dry_run);
    request.on_result = [&](const mt::TenantMigrateResult& r) { writer.tenant(r); };
    const auto report = mt::command::migrate(inv.globals.manifest_input(), request);
    return writer.finish(report);
}

static int cmd_migrate_shared(const Invocation& inv, const Output& out) {
    const auto vm = parse_options(inv, migrate_options("migrate-shared options", false));
    auto request = migrate_request(vm, out, true);
    ReportWriter writer(out, "migrate-shared", request.dry_run);
    request.on_result = [&](const mt::TenantMigrateResult& r) { writer.tenant(r); };
    const auto report = mt::command::migrate(inv.globals.manifest_input(), request);
    return writer.finish(report);
}

static int cmd_status(const Invocation& inv, const Output& out) {
    po::options_description desc("status options");
    add_tenant_selection(desc);
    desc.add_options()("shared", "the shared schema instead of tenants");
    const auto vm = parse_options(inv, desc);

    // Each tenant's row (or JSON element) is written as soon as its batch has been read; only the
    // counts are kept.
    const bool rows = !inv.globals.json && !inv.globals.quiet;
    JsonStream doc(inv.globals.json);
    std::map<std::string, size_t> counts;
    size_t would_convert = 0, total = 0;
    std::vector<size_t> widths;
    mt::command::StatusRequest request;
    request.scope = {tenant_selection(vm), vm.count("shared") != 0};
    // Written before the first row, or at the end: a command refused before any tenant was read
    // prints no partial document.
    bool begun = false;
    const auto begin = [&] {
        if (begun) return;
        begun = true;
        doc.begin(json::object(), "tenants");
        if (rows) std::cout << row_text({"TENANT", "SCHEMA", "FORMAT", "APPLIED", "PENDING", "ORPHANS", "STATE"}, widths)
                            << "\n";
    };
    request.on_start = [&](const mt::TenantList& tenants, size_t) {
        const auto [id, schema] = tenant_widths(tenants);
        widths = {id, schema, kFormatWidth, 7, 7, 7};
    };
    request.on_tenant = [&](const mt::TenantStatus& st) {
        begin();
        ++total;
        ++counts[mt::to_string(st.state)];
        if (inv.globals.json) {
            json orphans = json::array();
            for (const auto& r : st.orphans)
                orphans.push_back({{"name", r.name ? json(*r.name) : json(nullptr)}, {"hash", r.hash ? json(*r.hash) : json(nullptr)}});
            json j = tenant_json(st.tenant);
            j["format"] = or_null(st.format);
            j["applied"] = st.applied.size();
            j["pending"] = st.pending.size();
            j["orphans"] = st.orphans.size();
            j["state"] = mt::to_string(st.state);
            j["convert_from"] = or_null(st.convert_from);
            j["would_convert"] = st.would_convert;
            j["pending_migrations"] = st.pending;
            j["orphan_records"] = orphans;
            doc.element(j);
        }
        if (rows)
            std::cout << row_text({st.tenant.id, st.tenant.schema, st.format.empty() ? "?" : st.format,
                                   std::to_string(st.applied.size()), std::to_string(st.pending.size()),
                                   std::to_string(st.orphans.size()), mt::to_string(st.state)},
                                  widths)
                      << "\n";
        if (!st.convert_from.empty()) {
            would_convert += st.would_convert ? 1 : 0;
            out.info("note: " + st.tenant.id + "'s tracking table is in the " + st.convert_from + " format; " +
                     (st.would_convert ? "migrate converts it first (migrations.auto_convert = true)"
                                       : "convert it with mtctl convert-format, or set migrations.auto_convert = true"));
        }
        if (rows) std::cout.flush();
    };
    const auto result = mt::command::status(inv.globals.manifest_input(), request);
    const size_t migrations = result.migrations;

    json summary = {{"total", total}, {"migrations", migrations},
                    {"would_convert", would_convert}, {"duration_ms", result.fleet.duration_ms}};
    for (const char* s : {"up-to-date", "behind", "missing-schema", "no-table", "unknown-format"}) summary[s] = counts[s];
    begin();
    doc.end({{"summary", summary}});
    std::string line = std::to_string(total) + " tenants, " + std::to_string(migrations) + " migrations:";
    for (const auto& [state, n] : counts) line += " " + std::to_string(n) + " " + state + ",";
    line.pop_back();
    out.line(line);
    return 0;
}

static int cmd_convert_format(const Invocation& inv, const Output& out) {
    po::options_description desc("convert-format options");
    add_tenant_selection(desc);
    desc.add_options()("to", po::value<std::string>()->value_name("FORMAT"),
                       "target format: name | hash | drizzle-kit | a plugin's (with --resume: the run's own)")(
        "from", po::value<std::string>()->value_name("FORMAT"), "expected source format (a tenant in another format fails)")(
        "dry-run", "show what would be converted; change nothing")("shared", "convert the shared schema's table")(
        "concurrency", po::value<std::string>()->value_name("N|auto"),
        "workers (and connections) per server (default migrations.concurrency); auto: adapt to the server");
    add_rollout_options(desc);
    po::positional_options_description pos;
    pos.add("run", 1);  // convert-format --resume RUN
    const auto vm = parse_options(inv, desc, &pos);
    mt::command::ConvertRequest request;
    request.scope = {tenant_selection(vm), vm.count("shared") != 0};
    if (vm.count("to")) request.to = vm["to"].as<std::string>();
    request.from = optional_flag<std::string>(vm, "from");
    request.dry_run = vm.count("dry-run") != 0;
    // The rollout flags pace and record a conversion of tenants: a dry run or the shared table takes none.
    if (const auto flag = rollout_flag_given(vm); !flag.empty() && (request.dry_run || request.scope.shared))
        throw mt::UsageError(flag + ": " +
                             std::string(request.dry_run ? "convert-format --dry-run changes nothing"
                                                         : "convert-format --shared converts one table") +
                             "; the rollout flags apply to a conversion of tenants (nothing was changed)");
    auto flags = rollout_flags(vm, out, "convert-format", "converting", request.scope.selection, request.dry_run);
    request.rollout = std::move(flags.rollout);
    request.resume = flags.resume;
    request.resume_run = flags.resume_run;
    request.concurrency = flags.concurrency;
    request.progress = flags.progress;
    if (request.to.empty() && !request.resume)
        throw mt::UsageError("--to FORMAT is required: the format to convert the tracking tables to (nothing was changed)");
    const auto report = mt::command::convert_format(inv.globals.manifest_input(), request);
    return ReportWriter(out, "convert-format", request.dry_run).finish(report);
}

namespace {
const bool core_registered = [] {
    register_command({"init", "init [--dir D] [--force]", "write a starter manifest (multitenant.ini) and migration folders", 10, cmd_init});
    register_command({"doctor", "doctor",
                      "check manifest, plugins, connection, discovery, folders, formats, pool sizing, schemas, pooler",
                      20, cmd_doctor});
    register_command({"plugins", "plugins | plugins inspect FILE", "list loaded plugins / show one file's descriptor", 30, cmd_plugins});
    register_command({"tenant", "tenant list | create --id X [--no-migrate] | drop --id X --force | "
                                "clone --from A --to B [--with-data]",
                      "tenant lifecycle", 40, cmd_tenant});
    register_command({"migrate", "migrate (--all | --tenant ID | --tenants a,b) [--concurrency N|auto] [--dry-run] "
                                 "[--mark-applied] [--to NAME] [--fail-fast] [--canary N|a,b] [--waves 1,10%,100% [--seed N]] "
                                 "[--max-failures N|P%] [--max-replica-lag DUR] [--max-active-backends N] "
                                 "[--max-lock-waits N] [--throttle-timeout DUR] | migrate --resume [RUN]",
                      "apply pending tenant migrations", 50, cmd_migrate});
    register_command({"migrate-shared", "migrate-shared [--dry-run] [--mark-applied]",
                      "apply pending shared-schema migrations", 51, cmd_migrate_shared});
    register_command({"status", "status [--all | --tenant ID | --tenants a,b] [--shared]",
                      "per tenant: schema, format, applied, pending, orphans, state", 52, cmd_status});
    const std::string convert_flags =
        " --to FORMAT [--from FORMAT] (--all | --tenant ID | --tenants a,b | --shared) [--dry-run] [--concurrency N|auto] "
        "[--canary N|a,b] [--waves 1,10%,100% [--seed N]] [--max-failures N|P%] [--max-replica-lag DUR] "
        "[--max-active-backends N] [--max-lock-waits N] [--throttle-timeout DUR] | ";
    register_command({"convert-format", "convert-format" + convert_flags + "convert-format --resume [RUN]",
                      "rewrite tracking tables in another format (alias migrate-tracking-format)", 53, cmd_convert_format});
    register_command({"migrate-tracking-format",
                      "migrate-tracking-format" + convert_flags + "migrate-tracking-format --resume [RUN]",
                      "alias of convert-format", -1, cmd_convert_format});
    return true;
}();
}  // namespace

}  // namespace mtctl
