// Leases (SPEC §5.1, docs/runtime.md "Isolation"): every lease starts from a clean session.
// Session modes reset a released connection with DISCARD ALL sent without waiting
// (ManagerState::discard_on_release in pool.cpp), and the next lease reads its answer and sets the
// tenant's search_path in the same round trip as its first parameterless statement whenever that
// is safe (see foldable()). Transaction mode opens every transaction with the reset's parts and SET
// LOCAL (session_setup). No belief about a session's state is cached across leases: an application
// can falsify any of them.
#include "base/pqxx_session.hpp"
#include "base/text.hpp"
#include "runtime/manager_state.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>

#include <algorithm>

namespace mt {

namespace {
using detail::Clock;
using detail::ms_between;
using detail::is_space;

// true when `SET search_path …; <sql>` sent as one simple-protocol query behaves like the two sent
// apart: a single statement that cannot end or open a transaction and may run inside the implicit
// transaction block of a multi-statement query. Anything else (other commands such as VACUUM or
// BEGIN, a leading comment or parenthesis, a second statement, a ';' even inside a literal) is
// sent after a separate SET: refusing to fold is always safe.
bool foldable(std::string_view sql) {
    size_t i = 0;
    while (i < sql.size() && is_space(sql[i])) ++i;
    size_t end = i;
    while (end < sql.size() && ((sql[end] >= 'a' && sql[end] <= 'z') || (sql[end] >= 'A' && sql[end] <= 'Z'))) ++end;
    if (end < sql.size() && (sql[end] == '_' || sql[end] == '$' || (sql[end] >= '0' && sql[end] <= '9'))) return false;
    std::string word(sql.substr(i, end - i));
    for (auto& c : word) c = static_cast<char>(c | 0x20);
    static constexpr std::string_view dml[] = {"select", "with", "insert", "update", "delete", "values", "table"};
    if (std::find(std::begin(dml), std::end(dml), word) == std::end(dml)) return false;
    const auto semi = sql.find(';', end);
    if (semi == std::string_view::npos) return true;
    for (size_t j = semi; j < sql.size(); ++j)
        if (sql[j] != ';' && !is_space(sql[j])) return false;
    return true;
}
}  // namespace

namespace detail {

std::string ManagerState::session_setup(const std::string& search_path, bool reset, bool local) const {
    std::string sql;
    if (reset)
        sql = "DEALLOCATE ALL; CLOSE ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *; "
              "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; DISCARD TEMP; DISCARD SEQUENCES; ";
    sql += local ? "SET LOCAL search_path TO " : "SET search_path TO ";
    sql += search_path;
    if (statement_timeout.count() > 0)
        sql += std::string(local ? "; SET LOCAL" : "; SET") + " statement_timeout = " +
               std::to_string(statement_timeout.count());
    return sql;
}

}  // namespace detail

TenantLease::TenantLease(std::shared_ptr<detail::ManagerState> state, std::shared_ptr<detail::Pool> pool,
                         std::unique_ptr<detail::PooledConnection> conn,
                         std::shared_ptr<const detail::TenantRoute> route, bool with_shared)
    : state_(std::move(state)), pool_(std::move(pool)), conn_(std::move(conn)), route_(std::move(route)),
      with_shared_(with_shared) {}

TenantLease::TenantLease(TenantLease&& other) noexcept
    : state_(std::move(other.state_)), pool_(std::move(other.pool_)), conn_(std::move(other.conn_)),
      route_(std::move(other.route_)), with_shared_(other.with_shared_), broken_(other.broken_),
      ready_(other.ready_) {}

TenantLease& TenantLease::operator=(TenantLease&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        pool_ = std::move(other.pool_);
        conn_ = std::move(other.conn_);
        route_ = std::move(other.route_);
        with_shared_ = other.with_shared_;
        broken_ = other.broken_;
        ready_ = other.ready_;
    }
    return *this;
}

TenantLease::~TenantLease() { release(); }

void TenantLease::release() {
    if (state_ && pool_ && conn_) {
        if (state_->kernel_alive.expired()) {
            // The Kernel is gone: nothing may be emitted or parked; the connection is closed.
            if (conn_->conn && detail::has_transaction_object(*conn_->conn)) (void)conn_->conn.release();
        } else {
            state_->release(pool_, std::move(conn_));
        }
    }
    conn_.reset();
    pool_.reset();
    ready_ = false;
}

namespace {
const std::string no_value;
}

const std::string& TenantLease::tenant_id() const { return route_ ? route_->id : no_value; }
const std::string& TenantLease::schema() const { return route_ ? route_->schema : no_value; }
const std::string& TenantLease::search_path() const {
    return with_shared_ ? route_->search_path_shared : route_->search_path;
}

detail::PooledConnection& TenantLease::pooled() {
    if (!conn_) throw InternalError("this lease was released");
    if (state_->kernel_alive.expired())
        throw InternalError("the mt::Kernel this lease came from was destroyed; keep the Kernel alive longer than its "
                    "TenantManager and every lease");
    return *conn_;
}

void TenantLease::reconnect() {
    auto& c = *conn_;
    broken_ = false;
    ready_ = false;
    c.used = false;
    if (c.conn && detail::has_transaction_object(*c.conn)) state_->quarantine_connection(std::move(c.conn));
    c.conn.reset();
    c.reset_pending = false;
    c.conn = state_->kernel.connect(pool_->server);
    ++state_->connections_opened;
}

// Reads the answer of the DISCARD ALL sent when the connection was last released; a failed reset
// closes the connection (the session's state is unknown).
static bool reset_finished(detail::PooledConnection& c) {
    if (!c.reset_pending) return true;
    c.reset_pending = false;
    return c.conn && detail::finish_discard_all(*c.conn);
}

// Before anything is sent: the release-time reset has answered, and the session is still there
// (else a new connection, before the statement leaves rather than after).
void TenantLease::ensure_connected(detail::PooledConnection& c) {
    if (!reset_finished(c)) broken_ = true;
    if (broken_ || !c.conn || !c.conn->is_open() || !detail::session_alive(*c.conn, !ready_)) reconnect();
}

void TenantLease::ensure_session() {
    auto& c = pooled();
    ensure_connected(c);
    if (ready_) return;
    if (state_->mode == PoolMode::transaction) {
        // The server session is reset by every transaction; the lease's start drops libpqxx's
        // record of an earlier lease's prepared statements.
        detail::forget_session_registries(*c.conn);
        detail::drop_notifications(*c.conn);
        ready_ = true;
        return;
    }
    const bool reset = c.used;  // only if the release-time reset did not happen (a fresh lease on a used session)
    c.used = true;
    pqxx::nontransaction tx(*c.conn);
    tx.exec(state_->session_setup(search_path(), reset, false));
    detail::drop_notifications(*c.conn);  // any that arrived before UNLISTEN took effect
    if (reset) {
        detail::forget_session_registries(*c.conn);
        ++state_->sessions_reset;
    }
    ready_ = true;
    ++state_->search_path_sets;
}

pqxx::connection& TenantLease::connection() & {
    pooled();
    with_safe_retry([&] {
        try {
            ensure_session();
        } catch (const pqxx::broken_connection&) {
            broken_ = true;
            throw;
        }
        return 0;
    });
    return *conn_->conn;
}

std::unique_ptr<pqxx::work> TenantLease::begin() & {
    auto& conn = connection();
    auto tx = std::make_unique<pqxx::work>(conn);
    if (state_->mode == PoolMode::transaction) {
        auto& c = *conn_;
        c.used = true;
        tx->exec(state_->session_setup(search_path(), true, true));
        detail::forget_session_registries(conn, true);  // prepared again on first use
    }
    return tx;
}

void TenantLease::commit(pqxx::work& tx) {
    try {
        tx.commit();
    } catch (const pqxx::in_doubt_error& e) {
        broken_ = true;
        throw OutcomeUnknown(tenant_id(), "COMMIT", e.what());
    } catch (const pqxx::broken_connection& e) {
        broken_ = true;
        throw OutcomeUnknown(tenant_id(), "COMMIT", e.what());
    }
}

bool TenantLease::retry_allowed(const std::exception& e, int attempt) const {
    // Outcome unknown (the statement or COMMIT left and no answer came back) and refused values
    // are never retried; anything else here failed before sending or was rolled back by the server.
    if (dynamic_cast<const OutcomeUnknown*>(&e) || dynamic_cast<const pqxx::in_doubt_error*>(&e) ||
        dynamic_cast<const pqxx::statement_completion_unknown*>(&e) ||
        dynamic_cast<const InvalidParameter*>(&e))
        return false;
    return state_->kernel.should_retry(tenant_id(), e, attempt);
}

// One attempt at a statement, with the fewest round trips that keep the session clean.
pqxx::result TenantLease::run(const std::string& sql, const SqlParams& params) {
    auto& c = pooled();
    ensure_connected(c);
    check_statement(sql, params, tenant_id(), detail::client_encoding_is_utf8(*c.conn));
    const bool fold = params.empty() && foldable(sql);
    bool sent = false;  // the statement itself has left: a lost connection now means "outcome unknown"
    try {
        pqxx::nontransaction tx(*c.conn);
        if (state_->mode == PoolMode::transaction) {
            // Every transaction starts clean behind a pooler: the reset and SET LOCAL open it.
            c.used = true;
            const std::string setup = state_->session_setup(search_path(), true, true);
            if (!ready_) {
                detail::forget_session_registries(*c.conn);  // a new lease drops earlier definitions
                ready_ = true;
            } else {
                detail::forget_session_registries(*c.conn, true);  // prepared again on first use
            }
            if (fold) {
                // The implicit transaction of a multi-statement query scopes the SET LOCAL (one
                // round trip, one transaction for PgBouncer).
                sent = true;
                return tx.exec(setup + "; " + sql);
            }
            tx.exec("BEGIN; " + setup);
            try {
                sent = true;
                auto r = detail::exec_checked(tx, sql, params);
                tx.exec("COMMIT");
                return r;
            } catch (const pqxx::broken_connection&) {
                throw;
            } catch (...) {
                try {
                    tx.exec("ROLLBACK");
                } catch (...) {  // the statement's own error is the one to report
                }
                throw;
            }
        }
        if (!ready_) {
            const bool reset = c.used;
            c.used = true;
            const std::string setup = state_->session_setup(search_path(), reset, false);
            if (reset) {
                detail::forget_session_registries(*c.conn);
                ++state_->sessions_reset;
            }
            if (fold) {
                // A failing statement rolls the reset's settings back with it (same implicit
                // transaction): ready_ stays false and the next statement sets the session up again.
                sent = true;
                auto r = tx.exec(setup + "; " + sql);
                detail::drop_notifications(*c.conn);  // any that arrived before UNLISTEN took effect
                ready_ = true;
                ++state_->search_path_folded;
                return r;
            }
            tx.exec(setup);
            detail::drop_notifications(*c.conn);
            ready_ = true;
            ++state_->search_path_sets;
        }
        sent = true;
        return detail::exec_checked(tx, sql, params);
    } catch (const pqxx::broken_connection& e) {
        broken_ = true;
        if (sent) throw OutcomeUnknown(tenant_id(), sql, e.what());
        throw;
    }
}

pqxx::result TenantLease::query(const std::string& sql, const SqlParams& params) {
    pooled();
    const auto start = Clock::now();
    bool ok = false;
    std::string error;
    try {
        auto result = with_safe_retry([&] {
            try {
                return run(sql, params);
            } catch (const pqxx::broken_connection&) {
                // The statement never ran on a live session (e.g. the server restarted since the
                // connection was pooled): retried on a fresh connection when the policy allows.
                broken_ = true;
                throw;
            }
        });
        ok = true;
        mt_event ev{};
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_QUERY;
        ev.tenant = sdk::str(tenant_id());
        ev.schema = sdk::str(schema());
        ev.statement = sdk::str(sql);
        ev.duration_s = ms_between(start, Clock::now()) / 1000.0;
        ev.ok = 1;
        state_->kernel.emit(ev);
        return result;
    } catch (const std::exception& e) {
        if (!ok) error = e.what();
        mt_event ev{};
        if (dynamic_cast<const OutcomeUnknown*>(&e)) ev.reason = sdk::str(std::string_view("outcome_unknown"));
        ev.struct_size = sizeof ev;
        ev.type = MT_EVENT_QUERY;
        ev.tenant = sdk::str(tenant_id());
        ev.schema = sdk::str(schema());
        ev.statement = sdk::str(sql);
        ev.error = sdk::str(error);
        ev.duration_s = ms_between(start, Clock::now()) / 1000.0;
        ev.ok = 0;
        state_->kernel.emit(ev);
        throw;
    }
}

std::string expand_schemas(const std::string& sql, const std::string& tenant_schema, const std::string& shared_schema) {
    std::string out;
    out.reserve(sql.size() + 32);
    const std::string tenant = quote_ident(tenant_schema) + ".";
    const std::string shared = quote_ident(shared_schema) + ".";
    for (size_t i = 0; i < sql.size();) {
        if (sql.compare(i, 8, "$tenant.") == 0) {
            out += tenant;
            i += 8;
        } else if (sql.compare(i, 8, "$shared.") == 0) {
            out += shared;
            i += 8;
        } else {
            out += sql[i++];
        }
    }
    return out;
}

CrossSchemaQuery::CrossSchemaQuery(TenantLease lease, std::string shared_schema)
    : lease_(std::move(lease)), shared_(std::move(shared_schema)) {}

pqxx::result CrossSchemaQuery::query(const std::string& sql, const SqlParams& params) {
    return lease_.query(expand_schemas(sql, lease_.schema(), shared_), params);
}

}  // namespace mt
