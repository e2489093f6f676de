// mtctl sync: tracking records against the migration folder (missing, orphans, edited, renamed) and
// the repairs --mark-missing / --clean-orphans. Exit 0 when nothing failed, whatever drift was found
// (like status; the report says what is out of sync); 1 when a repair failed for a tenant. The
// repairs take the error budget, the throttle and the run ledger (--resume); a read-only
// invocation refuses those flags.
#include "cli.hpp"
#include "json.hpp"
#include "rollout_flags.hpp"

#include <mt/base/errors.hpp>
#include <mt/fleet/commands.hpp>
#include <mt/fleet/sync.hpp>

#include <iostream>

namespace mtctl {

namespace {

using nlohmann::json;

json record_json(const mt::sdk::Record& r) {
    return {{"name", r.name ? json(*r.name) : json(nullptr)},
            {"hash", r.hash ? json(*r.hash) : json(nullptr)},
            {"created_at_ms", r.created_at_ms ? json(*r.created_at_ms) : json(nullptr)}};
}

std::string short_hash(const std::optional<std::string>& hash) {
    if (!hash) return "none";
    return hash->size() > 12 ? hash->substr(0, 12) + "…" : *hash;
}

std::string record_label(const mt::sdk::Record& r) {
    if (r.name) return *r.name;
    return "hash " + short_hash(r.hash);
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

json tenant_sync_json(const mt::TenantSync& t) {
    json j = tenant_json(t.tenant);
    j["format"] = t.format.empty() ? json(nullptr) : json(t.format);
    j["state"] = mt::to_string(t.state);
    j["in_sync"] = t.in_sync();
    j["outcome"] = mt::to_string(t.outcome);
    j["missing"] = t.missing;
    json orphans = json::array(), cleaned = json::array(), edited = json::array();
    for (const auto& r : t.orphans) orphans.push_back(record_json(r));
    for (const auto& r : t.cleaned) cleaned.push_back(record_json(r));
    for (const auto& e : t.edited)
        edited.push_back({{"name", e.name},
                          {"recorded_hash", e.recorded_hash ? json(*e.recorded_hash) : json(nullptr)},
                          {"file_hash", e.file_hash},
                          {"matched_by", e.matched_by}});
    json renamed = json::array(), rewritten = json::array();
    for (const auto& r : t.renamed) renamed.push_back({{"from", r.from}, {"to", r.to}});
    for (const auto& r : t.rewritten) rewritten.push_back({{"from", r.from}, {"to", r.to}});
    j["orphans"] = orphans;
    j["edited"] = edited;
    j["renamed"] = renamed;
    j["edits_detectable"] = t.edits_detectable;
    j["marked"] = t.marked;
    j["cleaned"] = cleaned;
    j["accepted"] = t.accepted;
    j["rewritten"] = rewritten;
    j["duration_ms"] = t.duration_ms;
    if (t.outcome == mt::SyncOutcome::failed) {
        j["error"] = t.error;
        j["sqlstate"] = t.sqlstate.empty() ? json(nullptr) : json(t.sqlstate);
    }
    return j;
}

// Under the tenant's row: what is out of sync and what the flags did (or would do) about it.
void render_details(const Output& out, const mt::TenantSync& t, bool dry_run) {
    std::vector<std::string> orphans, cleaned;
    for (const auto& r : t.orphans) orphans.push_back(record_label(r));
    for (const auto& r : t.cleaned) cleaned.push_back(record_label(r));
    if (!t.missing.empty()) out.info("  missing: " + joined(t.missing));
    if (!orphans.empty()) out.info("  orphan:  " + joined(orphans));
    for (const auto& e : t.edited)
        out.info("  edited:  " + e.name + " (recorded " + short_hash(e.recorded_hash) + ", file " +
                 short_hash(e.file_hash) + "; matched by " + e.matched_by + ")");
    for (const auto& r : t.renamed) out.info("  renamed: " + r.from + " → " + r.to + " (same content)");
    const std::string verb = dry_run ? "would " : "";
    const size_t width = verb.size() + 9;
    if (!t.marked.empty()) out.info("  " + pad(verb + "mark:", width) + joined(t.marked));
    if (!cleaned.empty()) out.info("  " + pad(verb + "clean:", width) + joined(cleaned));
    if (!t.accepted.empty()) out.info("  " + pad(verb + "accept:", width) + joined(t.accepted));
    for (const auto& r : t.rewritten) out.info("  " + pad(verb + "rename:", width) + r.from + " → " + r.to);
}

int cmd_sync(const Invocation& inv, const Output& out) {
    po::options_description desc("sync options");
    add_tenant_selection(desc);
    desc.add_options()("status", "report only (the default)")(
        "mark-missing", "record missing migrations without executing them; re-record renamed ones under the new name")(
        "clean-orphans", "delete records that match no migration file")(
        "dry-run", "show what --mark-missing / --clean-orphans would change; change nothing")(
        "shared", "the shared schema's table instead of the tenants'");
    add_rollout_options(desc, RolloutFlagSet::repairs);
    po::positional_options_description pos;
    pos.add("run", 1);  // sync --resume RUN
    const auto vm = parse_options(inv, desc, &pos);
    mt::command::SyncRequest options;
    options.scope = {tenant_selection(vm), vm.count("shared") != 0};
    options.mark_missing = vm.count("mark-missing") != 0;
    options.clean_orphans = vm.count("clean-orphans") != 0;
    options.dry_run = vm.count("dry-run") != 0;
    bool repairs = options.mark_missing || options.clean_orphans;
    if (vm.count("status") && repairs)
        throw mt::UsageError("--status only reports; drop it to repair with --mark-missing / --clean-orphans "
                             "(nothing was changed)");
    options.progress = out.progress("syncing");
    // The rollout flags pace and record repairs: an invocation that only reads takes none.
    if (const auto flag = rollout_flag_given(vm);
        !flag.empty() && flag != "--resume" && (!repairs || options.dry_run || options.scope.shared))
        throw mt::UsageError(flag + ": " +
                             (options.scope.shared ? std::string("sync --shared repairs one table")
                              : options.dry_run    ? std::string("sync --dry-run changes nothing")
                                                   : std::string("sync without --mark-missing / --clean-orphans only reads")) +
                             "; the rollout flags apply to a repair of tenants (nothing was changed)");
    auto flags = rollout_flags(vm, out, "sync", "syncing", options.scope.selection, options.dry_run);
    if (flags.resume && (vm.count("status") || options.scope.shared))
        throw mt::UsageError("--resume continues a repair run: drop " +
                             std::string(options.scope.shared ? "--shared" : "--status") + " (nothing was changed)");
    options.rollout = std::move(flags.rollout);
    options.resume = flags.resume;
    options.resume_run = flags.resume_run;
    if (flags.progress) options.progress = std::move(flags.progress);
    options.on_repairs = [&](bool mark_missing, bool clean_orphans) {
        options.mark_missing = mark_missing;
        options.clean_orphans = clean_orphans;
        repairs = mark_missing || clean_orphans;
    };

    // Each tenant's JSON element, or its row and details, is written as soon as it is final, in
    // discovery order; only the counts are kept.
    JsonStream doc(inv.globals.json);
    bool begun = false;
    const auto begin = [&] {
        if (begun) return;
        begun = true;
        doc.begin({{"command", "sync"},
                   {"mode",
                    {{"mark_missing", options.mark_missing},
                     {"clean_orphans", options.clean_orphans},
                     {"dry_run", options.dry_run}}}},
                  "tenants");
    };
    std::vector<size_t> widths;
    bool header = false;
    size_t undetectable = 0;
    options.on_start = [&](const mt::TenantList& tenants, size_t) {
        const auto [id, schema] = tenant_widths(tenants);
        widths = {id, schema, kFormatWidth, 7, 7, 6, 7};
    };
    options.on_tenant = [&](const mt::TenantSync& t) {
        begin();
        if (!t.edits_detectable) ++undetectable;
        doc.element(tenant_sync_json(t));
        if (inv.globals.json) return;
        // Only tenants with something to say, unless -v.
        if (t.outcome == mt::SyncOutcome::failed) {
            std::cerr << out.paint("FAIL", "31") << " " << t.tenant.id << " (" << t.tenant.schema << "): " << t.error
                      << "\n";
            return;
        }
        if ((t.in_sync() && !inv.globals.verbose) || inv.globals.quiet) return;
        if (!header) {
            header = true;
            std::cout << row_text({"TENANT", "SCHEMA", "FORMAT", "MISSING", "ORPHANS", "EDITED", "RENAMED", "OUTCOME"}, widths)
                      << "\n";
        }
        std::cout << row_text({t.tenant.id, t.tenant.schema, t.format.empty() ? "?" : t.format,
                               std::to_string(t.missing.size()), std::to_string(t.orphans.size()),
                               std::to_string(t.edited.size()) + (t.edits_detectable ? "" : "?"),
                               std::to_string(t.renamed.size()), mt::to_string(t.outcome)},
                              widths)
                  << "\n";
        if (!t.in_sync()) render_details(out, t, options.dry_run);
        std::cout.flush();
    };

    const auto report = mt::command::sync(inv.globals.manifest_input(), options);

    begin();
    json summary{{"total", report.total},
                 {"in_sync", report.in_sync},
                 {"out_of_sync", report.out_of_sync},
                 {"missing", report.missing},
                 {"orphans", report.orphans},
                 {"edited", report.edited},
                 {"renamed", report.renamed},
                 {"repaired", report.repaired},
                 {"failed", report.failed},
                 {"skipped", report.skipped},
                 {"marked", report.marked},
                 {"cleaned", report.cleaned},
                 {"accepted", report.accepted},
                 {"rewritten", report.rewritten},
                 {"edits_undetectable", undetectable},
                 {"duration_ms", report.duration_ms}};
    rollout_json(report.rollout, report.run_id, summary);
    doc.end({{"summary", summary}});

    if (!inv.globals.json) {
        std::string line = "sync" + std::string(options.dry_run ? " (dry run)" : "") + ": " +
                           std::to_string(report.total) + " tenants, " + std::to_string(report.in_sync) +
                           " in sync, " + std::to_string(report.out_of_sync) + " out of sync (" +
                           std::to_string(report.missing) + " missing, " + std::to_string(report.orphans) +
                           " orphans, " + std::to_string(report.edited) + " edited" +
                           (report.renamed ? ", " + std::to_string(report.renamed) + " renamed" : std::string()) + ")";
        if (repairs)
            line += "; " + std::string(options.dry_run ? "would mark " : "marked ") + std::to_string(report.marked) +
                    ", " + (options.dry_run ? "clean " : "cleaned ") + std::to_string(report.cleaned) + ", " +
                    (options.dry_run ? "accept " : "accepted ") + std::to_string(report.accepted) +
                    (report.rewritten ? std::string(options.dry_run ? ", rename " : ", renamed ") +
                                            std::to_string(report.rewritten)
                                      : std::string()) +
                    " (" +
                    std::to_string(report.repaired) + " tenants" + (options.dry_run ? " to repair" : " repaired") +
                    ", " + std::to_string(report.failed) + " failed" +
                    (report.skipped ? ", " + std::to_string(report.skipped) + " skipped" : std::string()) + ")";
        out.line(line + "; " + seconds(report.duration_ms));
        rollout_lines(out, report.rollout, report.run_id);
        if (undetectable)
            out.info("note: " + std::to_string(undetectable) +
                     " tracking tables keep too little to detect edited files (EDITED shows '?'); see docs/repair.md");
        if (!repairs && report.out_of_sync)
            out.info("next: apply pending migrations with mtctl migrate; record ones applied by other means with "
                     "mtctl sync --mark-missing (it also renames the records of renamed files); delete records of removed "
                     "files with mtctl sync --clean-orphans; both flags together also accept edited files (add "
                     "--dry-run to preview)");
    }
    // A run the throttle stopped did not do what was asked, even with no tenant failed.
    return report.failed || report.rollout.stop == mt::RolloutStop::throttle_timeout ? 1 : 0;
}

const bool sync_registered = register_command(
    {"sync",
     "sync [--status | --mark-missing | --clean-orphans] [--dry-run] [--all | --tenant ID | --tenants a,b] [--shared] "
     "[--max-failures N|P%] [--max-replica-lag DUR] [--max-active-backends N] [--max-lock-waits N] "
     "[--throttle-timeout DUR] | sync --resume [RUN]",
     "tracking vs files: missing, orphan, edited and renamed migrations; repair", 54, cmd_sync});

}  // namespace

}  // namespace mtctl
