// seed: a SQL file run in each tenant over the migration engine's worker pool, one transaction per
// tenant under the tenant's advisory lock, so a seed never interleaves with a migration of it.
#include "base/text.hpp"
#include "tracking/tables.hpp"
#include "migrations/rollout_schedule.hpp"
#include "migrations/workers.hpp"

#include <mt/base/errors.hpp>
#include <mt/fleet/seed.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <cctype>
#include <fstream>
#include <mutex>
#include <sstream>

namespace mt {

namespace {

bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
           static_cast<unsigned char>(c) >= 0x80;
}

// The first statement of the text that controls the transaction (BEGIN, START TRANSACTION, COMMIT,
// END, ROLLBACK other than ROLLBACK TO, ABORT, PREPARE TRANSACTION), or empty. Skips comments,
// string literals, quoted identifiers, dollar-quoted bodies (DO blocks, functions) and the END
// closing a BEGIN ATOMIC function body.
std::string transaction_control(std::string_view sql) {
    const size_t n = sql.size();
    size_t i = 0;
    bool at_start = true;  // the next word starts a statement
    bool in_atomic = false;
    std::string pending;   // a statement-initial word whose meaning depends on the next word
    std::string previous;
    while (i < n) {
        const char c = sql[i];
        const char next = i + 1 < n ? sql[i + 1] : '\0';
        if (c == '-' && next == '-') {
            i = sql.find('\n', i);
            if (i == std::string_view::npos) break;
            continue;
        }
        if (c == '/' && next == '*') {
            int depth = 0;
            do {
                if (sql.compare(i, 2, "/*") == 0) {
                    ++depth;
                    i += 2;
                } else if (sql.compare(i, 2, "*/") == 0) {
                    --depth;
                    i += 2;
                } else {
                    ++i;
                }
            } while (depth > 0 && i < n);
            continue;
        }
        if (c == ';' || std::isspace(static_cast<unsigned char>(c))) {
            if (c == ';') {
                if (!pending.empty() && pending != "PREPARE" && pending != "START") return pending;
                pending.clear();
                at_start = true;
            }
            ++i;
            continue;
        }
        if (c == '\'' || c == '"') {
            // E'…' strings take backslash escapes.
            const bool escapes = c == '\'' && (previous == "E" || previous == "e");
            for (++i; i < n; ++i) {
                if (escapes && sql[i] == '\\') ++i;
                else if (sql[i] == c && i + 1 < n && sql[i + 1] == c) ++i;
                else if (sql[i] == c) break;
            }
            ++i;
        } else if (c == '$' && (i + 1 < n) && !(next >= '0' && next <= '9')) {
            size_t end = i + 1;
            while (end < n && word_char(sql[end]) && sql[end] != '$') ++end;
            if (end < n && sql[end] == '$') {
                const std::string_view tag = sql.substr(i, end - i + 1);
                const size_t close = sql.find(tag, end + 1);
                i = close == std::string_view::npos ? n : close + tag.size();
            } else {
                ++i;
            }
        } else if (word_char(c)) {
            size_t end = i;
            while (end < n && word_char(sql[end])) ++end;
            std::string word(sql.substr(i, end - i));
            for (auto& ch : word) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            const std::string original(sql.substr(i, end - i));
            i = end;
            if (!pending.empty()) {
                if (pending == "ROLLBACK" && word != "TO") return pending;
                if (pending != "ROLLBACK" && word == "TRANSACTION") return pending + " TRANSACTION";
                pending.clear();
            } else if (at_start) {
                if (in_atomic && word == "END") in_atomic = false;
                else if (word == "BEGIN" || word == "COMMIT" || word == "END" || word == "ABORT") return word;
                else if (word == "ROLLBACK" || word == "START" || word == "PREPARE") pending = word;
            } else if (previous == "BEGIN" && word == "ATOMIC") {
                in_atomic = true;
            }
            at_start = false;
            previous = word == "E" ? original : word;
            continue;
        } else {
            ++i;
        }
        at_start = false;
        previous.clear();
    }
    return pending == "ROLLBACK" ? pending : std::string();
}

using detail::trimmed;

void seed_tenant(const Kernel& kernel, pqxx::connection& conn, const Tenant& tenant, const std::string& sql,
                 const SeedOptions& options) {
    pqxx::work tx(conn);
    begin_tenant_transaction(tx, kernel, tenant, options.lock_timeout);
    if (!read_tables(tx, {tenant.schema}, kernel.manifest().migrations.table).at(0).schema_exists)
        throw OperationError("schema " + quote_ident(tenant.schema) +
                             " does not exist; create the tenant with: mtctl tenant create --id " + tenant.id);
    const auto xid = tx.exec1("SELECT txid_current()::text")[0].as<std::string>();
    tx.exec(sql);
    // A COMMIT or ROLLBACK in the file would end this transaction early and run the rest outside it.
    if (tx.exec1("SELECT txid_current()::text")[0].as<std::string>() != xid)
        throw OperationError("the seed file ends the transaction itself (COMMIT/ROLLBACK/BEGIN): what ran before "
                             "that point may be committed; remove transaction control from the file, mtctl seed "
                             "runs it in one transaction per tenant");
    try {
        tx.commit();
    } catch (const pqxx::in_doubt_error& e) {
        // Not retried: the seed may have been committed.
        throw OperationError("the connection was lost during COMMIT; the seed may or may not have been applied to " +
                             tenant.id + ": check before running it again (" + trimmed(e.what()) + ")");
    }
}

}  // namespace

std::string read_seed_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw UsageError("seed file " + file.string() + " cannot be read; nothing was run");
    std::stringstream bytes;
    bytes << in.rdbuf();
    std::string text = bytes.str();
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a BOM is not SQL
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
        throw UsageError("seed file " + file.string() + " is empty; nothing was run");
    if (const auto statement = transaction_control(text); !statement.empty())
        throw UsageError("seed file " + file.string() + " contains " + statement +
                         ": mtctl seed runs the file in one transaction per tenant itself; remove the transaction "
                         "control (nothing was run)");
    return text;
}

SeedReport seed(const Kernel& kernel, const std::vector<Tenant>& tenants, const std::filesystem::path& file,
                const SeedOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    const std::string sql = read_seed_file(file);
    require_reachable(kernel, tenants);
    SeedReport report;
    report.file = file;
    report.tenants.resize(tenants.size());
    std::vector<size_t> todo;
    for (size_t i = 0; i < tenants.size(); ++i) {
        report.tenants[i].tenant = tenants[i];
        todo.push_back(i);
    }
    // Every selected tenant is one to seed: the canary and the waves cut over all of them.
    const bool automatic = options.rollout.throttle.concurrency_auto.value_or(kernel.manifest().migrations.concurrency_auto);
    RolloutPacer pacer(kernel, options.rollout, automatic, todo.size());
    const int fixed = std::max(1, options.concurrency);
    std::mutex finished_mutex;
    run_rollout(
        tenants, todo, RolloutRun{options.rollout, pacer.concurrency(fixed), false, options.progress, "seed"}, {},
        report.rollout,
        [&](size_t i, std::unique_ptr<pqxx::connection>& conn) {
            auto& result = report.tenants[i];
            const auto t0 = std::chrono::steady_clock::now();
            try {
                with_retry_unless_locked(kernel, result.tenant.id, [&] {
                    try {
                        if (!conn || !conn->is_open()) conn = kernel.connect(result.tenant.server);
                        seed_tenant(kernel, *conn, result.tenant, sql, options);
                    } catch (const pqxx::broken_connection&) {
                        conn.reset();
                        throw;
                    }
                });
                result.ok = true;
            } catch (const OperationError& e) {
                result.error = trimmed(e.what());
                result.sqlstate = e.sqlstate;
            } catch (const std::exception& e) {
                result.error = trimmed(e.what());
                result.sqlstate = sqlstate_of(e);
            }
            result.duration_ms = ms_since(t0);
            if (options.tenant_finished) {
                std::lock_guard lock(finished_mutex);
                options.tenant_finished(result);
            }
            return result.ok;
        },
        [&](size_t i) { report.tenants[i].skipped = true; }, pacer.pacing(tenants));
    pacer.finish(report.rollout, fixed);
    report.total = report.tenants.size();
    for (const auto& t : report.tenants) (t.skipped ? report.skipped : t.ok ? report.succeeded : report.failed)++;
    report.duration_ms = ms_since(start);
    return report;
}

}  // namespace mt
