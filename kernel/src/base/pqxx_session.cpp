#include "base/pqxx_session.hpp"

#include <libpq-fe.h>
#include <poll.h>

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

bool client_encoding_is_utf8(const pqxx::connection_base& conn) {
    static const int utf8 = pg_char_to_encoding("UTF8");
    PGconn* c = raw(conn);
    return c != nullptr && PQclientEncoding(c) == utf8;
}

}  // namespace mt::detail
