// Error translation for the command entry points (commands.cpp, runs.cpp): one place that turns
// what libpqxx or the library threw into an mt:: error with its exit code, passwords redacted.
#pragma once

#include <mt/base/errors.hpp>
#include <mt/base/redact.hpp>

#include "base/text.hpp"

#include <pqxx/pqxx>

#include <string>

namespace mt::command {

// Runs one command and turns whatever the driver or the library threw into an mt:: error, the one
// place where this happens: a lost connection is DatabaseUnavailable (exit 3), a statement the server
// refused an OperationError with its SQLSTATE (exit 1), anything else unexpected an InternalError
// (exit 1). The texts are kept as they were, minus any password.
template <class F>
auto translated(F&& run) -> decltype(run()) {
    try {
        return run();
    } catch (const Error&) {
        throw;
    } catch (const pqxx::broken_connection& e) {
        throw DatabaseUnavailable("lost the database connection: " + redact_text(detail::trimmed(e.what())));
    } catch (const pqxx::sql_error& e) {
        throw OperationError(redact_text(detail::trimmed(e.what())), e.sqlstate());
    } catch (const pqxx::failure& e) {
        throw OperationError(redact_text(detail::trimmed(e.what())));
    } catch (const std::exception& e) {
        throw InternalError(redact_text(e.what()));
    }
}

}  // namespace mt::command
