#include "base/pqxx_session.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <exception>
#include <map>
#include <string>

namespace mt::detail {

namespace {

// Explicit instantiation may name private members ([temp.spec.general]/6); the friend function
// defined inside the instantiated class hands the member pointer out.
template <class Tag, typename Tag::type Member>
struct Expose {
    friend typename Tag::type member(Tag) { return Member; }
};

struct RawConnection {
    using type = pqxx::internal::pq::PGconn* (pqxx::connection_base::*)() const;
    friend type member(RawConnection);
};
template struct Expose<RawConnection, &pqxx::connection_base::raw_connection>;

struct OpenTransaction {
    using type = pqxx::internal::unique<pqxx::transaction_base> pqxx::connection_base::*;
    friend type member(OpenTransaction);
};
template struct Expose<OpenTransaction, &pqxx::connection_base::m_trans>;

struct PreparedStatements {
    using type = std::map<std::string, pqxx::prepare::internal::prepared_def> pqxx::connection_base::*;
    friend type member(PreparedStatements);
};
template struct Expose<PreparedStatements, &pqxx::connection_base::m_prepared>;

struct SessionVariables {
    using type = std::map<std::string, std::string> pqxx::connection_base::*;
    friend type member(SessionVariables);
};
template struct Expose<SessionVariables, &pqxx::connection_base::m_vars>;

PGconn* raw(const pqxx::connection_base& conn) { return (conn.*member(RawConnection{}))(); }

}  // namespace

SessionTx transaction_status(const pqxx::connection_base& conn) {
    PGconn* c = raw(conn);
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) return SessionTx::unknown;
    switch (PQtransactionStatus(c)) {
        case PQTRANS_IDLE: return SessionTx::idle;
        case PQTRANS_INTRANS: return SessionTx::in_transaction;
        case PQTRANS_INERROR: return SessionTx::in_error;
        case PQTRANS_ACTIVE: return SessionTx::active;
        default: return SessionTx::unknown;
    }
}

bool has_transaction_object(const pqxx::connection_base& conn) {
    return (conn.*member(OpenTransaction{})).get() != nullptr;
}

void forget_session_registries(pqxx::connection_base& conn, bool keep_definitions) {
    auto& prepared = conn.*member(PreparedStatements{});
    if (keep_definitions)
        for (auto& [name, def] : prepared) def.registered = false;
    else
        prepared.clear();
    (conn.*member(SessionVariables{})).clear();
}

bool session_alive(pqxx::connection_base& conn, bool drop) {
    PGconn* c = raw(conn);
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) return false;
    pollfd fd{PQsocket(c), POLLIN, 0};
    if (fd.fd < 0) return false;
    if (::poll(&fd, 1, 0) > 0) {
        // Something arrived while idle: a FATAL before the server closed the session, an EOF, or
        // notifications. PQconsumeInput reports a closed socket as failure.
        if (PQconsumeInput(c) == 0 || PQstatus(c) != CONNECTION_OK) return false;
        if (fd.revents & (POLLHUP | POLLERR)) return false;
    }
    if (drop) detail::drop_notifications(conn);
    return true;
}

void drop_notifications(pqxx::connection_base& conn) {
    PGconn* c = raw(conn);
    if (c == nullptr) return;
    while (PGnotify* n = PQnotifies(c)) PQfreemem(n);
}

bool send_discard_all(pqxx::connection_base& conn) {
    PGconn* c = raw(conn);
    return c != nullptr && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE &&
           PQsendQuery(c, "DISCARD ALL") == 1;
}

bool finish_discard_all(pqxx::connection_base& conn) {
    PGconn* c = raw(conn);
    if (c == nullptr) return false;
    bool ok = true;
    while (PGresult* r = PQgetResult(c)) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) ok = false;
        PQclear(r);
    }
    ok = ok && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (ok) {
        forget_session_registries(conn);
        drop_notifications(conn);
    }
    return ok;
}

void copy_out(pqxx::connection_base& conn, const std::string& statements,
              const std::function<void(size_t, std::string_view)>& on_output) {
    PGconn* c = raw(conn);
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) throw pqxx::broken_connection("the connection is closed");
    if (PQsendQuery(c, statements.c_str()) != 1) throw pqxx::broken_connection(PQerrorMessage(c));
    size_t index = 0;
    std::string data;
    std::string error, sqlstate;
    std::exception_ptr failure;
    while (PGresult* r = PQgetResult(c)) {
        const ExecStatusType status = PQresultStatus(r);
        if (status == PGRES_COPY_OUT) {
            // The rows, then (n == -1) this statement's own result from the next PQgetResult.
            data.clear();
            char* buffer = nullptr;
            for (int n; (n = PQgetCopyData(c, &buffer, 0)) > 0; buffer = nullptr) {
                data.append(buffer, static_cast<size_t>(n));
                PQfreemem(buffer);
            }
        } else if (status == PGRES_COMMAND_OK) {
            if (error.empty() && !failure) {
                try {
                    on_output(index, data);
                } catch (...) {
                    failure = std::current_exception();
                }
            }
            ++index;
        } else if (error.empty()) {
            const char* message = PQresultErrorMessage(r);
            const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            error = message && *message ? message : "COPY failed";
            if (state) sqlstate = state;
        }
        PQclear(r);
    }
    if (PQstatus(c) != CONNECTION_OK) throw pqxx::broken_connection(error.empty() ? PQerrorMessage(c) : error);
    if (!error.empty())
        throw pqxx::sql_error(error, statements.substr(0, 200), sqlstate.empty() ? nullptr : sqlstate.c_str());
    if (failure) std::rethrow_exception(failure);
}

bool client_encoding_is_utf8(const pqxx::connection_base& conn) {
    static const int utf8 = pg_char_to_encoding("UTF8");
    PGconn* c = raw(conn);
    return c != nullptr && PQclientEncoding(c) == utf8;
}

}  // namespace mt::detail
