// sync: compares each tenant's tracking records with the folder (fleet_status's batched read) and
// repairs what the flags ask for, one transaction per tenant under the tenant's advisory lock.
// The repair re-reads the table under the lock and acts on what it finds then, so a concurrent
// migrate or sync never makes it record a migration twice or delete a record that became valid.
#include "tracking/renamed.hpp"
#include "tracking/tables.hpp"
#include "migrations/rollout_schedule.hpp"
#include "migrations/workers.hpp"

#include <mt/base/errors.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/fleet/sync.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

namespace mt {

std::string to_string(SyncOutcome o) {
    switch (o) {
        case SyncOutcome::in_sync: return "in-sync";
        case SyncOutcome::out_of_sync: return "out-of-sync";
        case SyncOutcome::repaired: return "repaired";
        case SyncOutcome::would_repair: return "would-repair";
        case SyncOutcome::failed: return "failed";
        case SyncOutcome::skipped: return "skipped";
    }
    return "?";
}

namespace {

size_t folder_index(const MigrationFolder& folder, const std::string& name) {
    for (size_t i = 0; i < folder.migrations.size(); ++i)
        if (folder.migrations[i].name == name) return i;
    return folder.migrations.size();
}

// What one tenant's repair writes, for the flags given.
struct RepairPlan {
    std::vector<sdk::Record> remove;  // orphans, then the old records of renames and accepted edits
    std::vector<sdk::Record> record;  // missing migrations, then the new records of renames and accepted edits
    bool empty() const { return remove.empty() && record.empty(); }
};

RepairPlan plan_repair(TenantSync& t, const MigrationFolder& folder, const SyncOptions& options) {
    RepairPlan plan;
    t.marked.clear();
    t.cleaned.clear();
    t.accepted.clear();
    t.rewritten.clear();
    if (options.clean_orphans) {
        for (const auto& r : t.orphans) {
            plan.remove.push_back(r);
            t.cleaned.push_back(r);
        }
    }
    if (options.mark_missing) {
        for (const auto& name : t.missing) {
            const Migration* m = folder.find_by_name(name);
            plan.record.push_back(sdk::Record{m->name, m->hash, std::nullopt, m->when});
            t.marked.push_back(name);
        }
        // A renamed record is an applied migration under its old name: recording the new name is
        // what --mark-missing is for, and the old record must go with it or the migration would
        // be recorded twice. The record is not an orphan, so --clean-orphans alone leaves it.
        for (const auto& r : t.renamed) {
            const Migration* m = folder.find_by_name(r.to);
            plan.remove.push_back(sdk::Record{r.from, r.hash, r.recorded_at_ms, std::nullopt});
            plan.record.push_back(sdk::Record{m->name, m->hash, r.recorded_at_ms, m->when});
            t.rewritten.push_back(r);
        }
    }
    if (options.mark_missing && options.clean_orphans) {
        for (const auto& e : t.edited) {
            // A format that deletes by hash would also delete another file's record if the old
            // hash happens to be that file's: such an edit stays reported, not accepted.
            if (e.recorded_hash && folder.find_by_hash(*e.recorded_hash)) continue;
            const Migration* m = folder.find_by_name(e.name);
            plan.remove.push_back(sdk::Record{e.matched_by == "name" ? std::optional<std::string>(e.name) : std::nullopt,
                                              e.recorded_hash, e.recorded_at_ms, std::nullopt});
            plan.record.push_back(sdk::Record{m->name, m->hash, e.recorded_at_ms, m->when});
            t.accepted.push_back(e.name);
        }
    }
    return plan;
}

// A tenant the flags would change but that cannot be repaired; empty when it can.
std::string unrepairable(const TenantSync& t, const std::string& table) {
    if (t.state == TenantState::missing_schema)
        return "schema " + quote_ident(t.tenant.schema) +
               " does not exist; create the tenant with: mtctl tenant create --id " + t.tenant.id;
    if (t.state == TenantState::unknown_format)
        return "tracking table " + quote_qualified(t.tenant.schema, table) +
               " has a layout no configured tracking format recognises; convert it with mtctl convert-format "
               "or set migrations.format";
    return {};
}

void count(SyncReport& report, const TenantSync& t) {
    ++report.total;
    if (t.in_sync()) ++report.in_sync;
    else ++report.out_of_sync;
    if (t.outcome == SyncOutcome::repaired || t.outcome == SyncOutcome::would_repair) ++report.repaired;
    if (t.outcome == SyncOutcome::failed) ++report.failed;
    if (t.outcome == SyncOutcome::skipped) ++report.skipped;
    report.missing += t.missing.size();
    report.orphans += t.orphans.size();
    report.edited += t.edited.size();
    report.renamed += t.renamed.size();
    report.marked += t.marked.size();
    report.cleaned += t.cleaned.size();
    report.accepted += t.accepted.size();
    report.rewritten += t.rewritten.size();
}

class TenantRepair {
public:
    TenantRepair(const Kernel& kernel, const MigrationFolder& folder, const TrackingTarget& target,
                 const SyncOptions& options)
        : kernel_(kernel), folder_(folder), target_(target), options_(options) {}

    // Repairs one tenant on conn (reconnecting when it breaks); the result replaces `t`.
    void run(std::unique_ptr<pqxx::connection>& conn, TenantSync& t) {
        const auto start = std::chrono::steady_clock::now();
        const Tenant tenant = t.tenant;
        try {
            with_retry_unless_locked(kernel_, tenant.id, [&] {
                try {
                    if (!conn || !conn->is_open()) conn = kernel_.connect(tenant.server);
                    repair(*conn, t);
                } catch (const pqxx::broken_connection&) {
                    conn.reset();
                    throw;
                }
            });
        } catch (const std::exception& e) {
            std::string error = e.what();
            while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
            t.outcome = SyncOutcome::failed;
            t.error = std::move(error);
            const auto* op = dynamic_cast<const OperationError*>(&e);
            t.sqlstate = op ? op->sqlstate : sqlstate_of(e);
            t.marked.clear();
            t.cleaned.clear();
            t.accepted.clear();
            t.rewritten.clear();
        }
        t.duration_ms = ms_since(start);
    }

private:
    void repair(pqxx::connection& conn, TenantSync& t) {
        pqxx::work tx(conn);
        begin_tenant_transaction(tx, kernel_, t.tenant, options_.lock_timeout);
        TenantStatus st;
        st.tenant = t.tenant;
        std::vector<TenantStatus*> one{&st};
        fill_status(kernel_, tx, one, folder_, target_);
        TenantSync fresh = compare_tracking(st, folder_);
        RepairPlan plan = plan_repair(fresh, folder_, options_);
        if (plan.empty()) {
            tx.commit();
            fresh.outcome = fresh.in_sync() ? SyncOutcome::in_sync : SyncOutcome::out_of_sync;
            t = std::move(fresh);
            return;
        }
        if (const auto why = unrepairable(fresh, target_.table); !why.empty()) throw OperationError(why);
        SqlSession sql(tx);
        const TrackingFormat* format = nullptr;
        std::vector<sdk::Column> columns = st.columns;
        if (st.state == TenantState::no_table) {
            format = &creation_format(kernel_, target_);
            format->create(sql, TrackingTable{t.tenant.schema, target_.table, {}});
            columns = read_tables(tx, {t.tenant.schema}, target_.table).at(0).columns;
        } else {
            format = &kernel_.tracking_format(st.format);
        }
        const TrackingTable table{t.tenant.schema, target_.table, columns};
        if (!plan.remove.empty()) format->remove(sql, table, plan.remove);
        if (!plan.record.empty()) format->record(sql, table, plan.record);
        tx.commit();
        fresh.outcome = SyncOutcome::repaired;
        t = std::move(fresh);
    }

    const Kernel& kernel_;
    const MigrationFolder& folder_;
    const TrackingTarget& target_;
    const SyncOptions& options_;
};

}  // namespace

TenantSync compare_tracking(const TenantStatus& st, const MigrationFolder& folder) {
    TenantSync out;
    out.tenant = st.tenant;
    out.state = st.state;
    out.format = st.format;

    std::map<std::string, const sdk::Record*> by_name;
    for (const auto& r : st.records)
        if (r.name) by_name.emplace(*r.name, &r);
    for (const auto& name : st.edited) {
        const Migration* m = folder.find_by_name(name);
        const sdk::Record* r = by_name.at(name);
        out.edited.push_back(EditedMigration{name, r->hash, m->hash, "name", r->created_at_ms});
    }

    // drizzle-orm writes created_at = the journal's `when` and no name: an edited file then looks
    // like a missing migration plus an orphan with that same timestamp. Pair them only when the
    // timestamp picks exactly one candidate on each side.
    std::map<int64_t, std::vector<size_t>> missing_by_when, orphans_by_time;
    for (size_t i = 0; i < st.pending.size(); ++i)
        if (const Migration* m = folder.find_by_name(st.pending[i]); m && m->when)
            missing_by_when[*m->when].push_back(i);
    for (size_t j = 0; j < st.orphans.size(); ++j) {
        const auto& r = st.orphans[j];
        if (!r.name && r.hash && r.created_at_ms) orphans_by_time[*r.created_at_ms].push_back(j);
    }
    std::set<size_t> paired_missing, paired_orphans;
    for (const auto& [when, missing] : missing_by_when) {
        const auto orphans = orphans_by_time.find(when);
        if (orphans == orphans_by_time.end() || missing.size() != 1 || orphans->second.size() != 1) continue;
        const Migration* m = folder.find_by_name(st.pending[missing[0]]);
        const sdk::Record& r = st.orphans[orphans->second[0]];
        out.edited.push_back(EditedMigration{m->name, r.hash, m->hash, "journal-when", r.created_at_ms});
        paired_missing.insert(missing[0]);
        paired_orphans.insert(orphans->second[0]);
    }
    for (size_t i = 0; i < st.pending.size(); ++i)
        if (!paired_missing.count(i)) out.missing.push_back(st.pending[i]);
    for (size_t j = 0; j < st.orphans.size(); ++j)
        if (!paired_orphans.count(j)) out.orphans.push_back(st.orphans[j]);
    std::stable_sort(out.edited.begin(), out.edited.end(), [&](const EditedMigration& a, const EditedMigration& b) {
        return folder_index(folder, a.name) < folder_index(folder, b.name);
    });

    for (const auto& r : renamed_records(st, folder))
        out.renamed.push_back(RenamedMigration{*r.record->name, r.file->name, r.record->hash, r.record->created_at_ms});

    if (!st.columns.empty()) {
        const auto& keeps = st.capabilities;
        const bool journal_times = keeps.journal_time && folder.layout == FolderLayout::drizzle_kit;
        out.edits_detectable = keeps.keeps_hashes && (keeps.keeps_names || journal_times);
    }
    out.outcome = out.in_sync() ? SyncOutcome::in_sync : SyncOutcome::out_of_sync;
    return out;
}

SyncReport sync_tracking(const Kernel& kernel, const TenantList& tenants, const MigrationFolder& folder,
                         const TrackingTarget& target, const SyncOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    SyncReport report;
    if (!options.on_tenant) report.tenants.reserve(tenants.size());
    // One batch of the read at a time: compared, repaired where asked, reported, dropped.
    std::vector<TenantSync> batch;
    std::vector<Tenant> batch_tenants;
    std::vector<size_t> todo;
    size_t done = 0;
    // The error budget and the throttle hold across the batches: one pacer for the run, and each
    // batch starts with the failures and held-back repairs of the ones before.
    RolloutOptions rollout = options.rollout;
    rollout.canary_count.reset();
    rollout.canary_ids.clear();
    rollout.waves.clear();
    rollout.seed.reset();
    // The shared schema's table is one: its repair is not paced (the CLI refuses the flags).
    const bool writes = options.repairs() && !options.dry_run && !target.shared;
    std::optional<RolloutPacer> pacer;
    if (writes) pacer.emplace(kernel, rollout, false, tenants.size());
    size_t failures = 0;
    std::mutex finished_mutex;
    const auto flush = [&] {
        size_t failed_before = 0;  // failed their checks in this batch: they spend the budget too
        for (const auto& t : batch) failed_before += t.outcome == SyncOutcome::failed ? 1 : 0;
        if (!todo.empty()) {
            RolloutStart before;
            before.failed = failures + failed_before;
            before.budget_of = tenants.size();
            before.held_before = report.rollout.held_back;
            const size_t base = done;
            RolloutRun run{rollout, options.concurrency, false,
                           [&, base](size_t d, size_t) {
                               done = std::max(done, base + d);
                               if (options.progress) options.progress(done, tenants.size());
                           },
                           "sync"};
            run_rollout(
                batch_tenants, todo, run, before, report.rollout,
                [&](size_t k, std::unique_ptr<pqxx::connection>& conn) {
                    TenantRepair(kernel, folder, target, options).run(conn, batch[k]);
                    if (options.tenant_finished) {
                        std::lock_guard lock(finished_mutex);
                        options.tenant_finished(batch[k]);
                    }
                    return batch[k].outcome != SyncOutcome::failed;
                },
                [&](size_t k) {
                    auto& t = batch[k];
                    t.outcome = SyncOutcome::skipped;
                    t.marked.clear();
                    t.cleaned.clear();
                    t.accepted.clear();
                    t.rewritten.clear();
                },
                pacer ? pacer->pacing(batch_tenants) : RolloutPacing{});
        }
        for (auto& t : batch) {
            if (t.outcome == SyncOutcome::failed) ++failures;
            count(report, t);
            if (options.on_tenant) options.on_tenant(t);
            else report.tenants.push_back(std::move(t));
        }
        batch.clear();
        batch_tenants.clear();
        todo.clear();
    };
    stream_fleet_status(kernel, tenants, folder, target, [&](const TenantStatus& st) {
        batch.push_back(compare_tracking(st, folder));
        auto& t = batch.back();
        const bool repair = options.repairs() && !plan_repair(t, folder, options).empty();
        if (repair) {
            if (const auto why = unrepairable(t, target.table); !why.empty()) {
                t.outcome = SyncOutcome::failed;
                t.error = why;
                t.marked.clear();
                t.cleaned.clear();
                t.accepted.clear();
                t.rewritten.clear();
            } else if (options.dry_run) {
                t.outcome = SyncOutcome::would_repair;
            } else {
                todo.push_back(batch.size() - 1);
            }
        }
        if (options.repairs()) {
            // The repairs' workers take the batch's tenants by index.
            batch_tenants.push_back(st.tenant);
            const bool queued = !todo.empty() && todo.back() == batch.size() - 1;
            if (!queued && options.progress) options.progress(++done, tenants.size());
            if (batch.size() == kStatusBatch) flush();
        } else {
            flush();
        }
    });
    flush();
    if (pacer) pacer->finish(report.rollout, options.concurrency);
    report.duration_ms = ms_since(start);
    return report;
}

}  // namespace mt
