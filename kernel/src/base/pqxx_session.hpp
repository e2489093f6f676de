// What libpqxx 6.4 keeps to itself about a session: the libpq transaction status, whether a
// transaction object is still open on the connection, and its client-side registries of prepared
// statements and SET variables. The lease code needs these to hand every lease a clean session
// (docs/runtime.md "Isolation"); libpqxx 6.4 exposes none of them, so this file reads them through
// the standard's explicit-instantiation access rule. Tied to libpqxx 6.4's layout, which the
// build pins through Debian 12's libpqxx-dev.
#pragma once

#include <pqxx/pqxx>

#include <functional>
#include <string>
#include <string_view>

namespace mt::detail {

enum class SessionTx { idle, in_transaction, in_error, active, unknown };

// libpq's view of the server's transaction state (PQtransactionStatus); no round trip.
SessionTx transaction_status(const pqxx::connection_base& conn);

// true while a pqxx transaction object (work, nontransaction, …) is still open on the connection.
bool has_transaction_object(const pqxx::connection_base& conn);

// Forgets libpqxx's client-side record of prepared statements and SET variables, to be called
// with DEALLOCATE ALL / RESET ALL, so libpqxx prepares again instead of assuming they exist.
// keep_definitions: the statements stay defined (prepared again on first use) — for a later
// transaction of the same lease; otherwise they are dropped — for a new lease.
void forget_session_registries(pqxx::connection_base& conn, bool keep_definitions = false);

// Before sending: reads whatever the server sent meanwhile without blocking. Returns false when
// the server has closed the session (terminated backend, restart), so the caller reconnects
// before sending anything rather than learning it after the statement left. With
// drop_notifications (a lease's first use), notifications queued for an earlier lease's LISTEN
// are discarded so they never reach another lease.
bool session_alive(pqxx::connection_base& conn, bool drop_notifications);

// Discards notifications libpq has queued (delivered for an earlier lease's LISTEN).
void drop_notifications(pqxx::connection_base& conn);

// Sends DISCARD ALL without waiting for its answer (the connection must be idle, outside a
// transaction); finish_discard_all() reads the answer before the connection is used again.
// Returns false when it could not be sent.
bool send_discard_all(pqxx::connection_base& conn);
// Reads the answer of send_discard_all(); false when it failed or the session is not idle after it.
// Also forgets libpqxx's records of prepared statements and variables, and queued notifications.
bool finish_discard_all(pqxx::connection_base& conn);

// Sends `statements` (COPY … TO STDOUT statements separated by ';') as one query on the connection,
// inside the transaction open on it, and hands each statement's whole output to
// on_output(index, bytes), in order, as each ends. Every result is read before anything is thrown:
// a server error throws pqxx::sql_error with its SQLSTATE (the transaction is then aborted), a lost
// connection pqxx::broken_connection, and an exception from on_output is rethrown after the rest
// was read. One round trip for many small tables.
void copy_out(pqxx::connection_base& conn, const std::string& statements,
              const std::function<void(size_t, std::string_view)>& on_output);

// true when the connection's client encoding is UTF8 (parameters are then checked for valid UTF-8).
bool client_encoding_is_utf8(const pqxx::connection_base& conn);

}  // namespace mt::detail
