// Host SQL service: lends plugins the connection or transaction a call is about (SPEC §3.2).
#pragma once

#include <mt/sdk/abi.h>

#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

namespace mt {

using SqlParams = std::vector<std::optional<std::string>>;

// Refuses, before anything is sent, what libpq would silently cut or PostgreSQL cannot hold as
// text: a NUL in the statement text (mt::Error), and a parameter with an embedded NUL or, when the
// connection's client encoding is UTF8, invalid UTF-8 (mt::InvalidParameter naming the position
// $n and the tenant).
void check_statement(const std::string& sql, const SqlParams& params, const std::string& tenant, bool utf8);

// Runs a parameterised statement after check_statement(); values only ever travel as $n parameters.
pqxx::result exec_params(pqxx::transaction_base& tx, const std::string& sql, const SqlParams& params = {});

namespace detail {
// exec_params without the check, for a caller that ran check_statement() itself (the lease, which
// names its tenant in the error).
pqxx::result exec_checked(pqxx::transaction_base& tx, const std::string& sql, const SqlParams& params);
}  // namespace detail

// Wraps a pqxx transaction (pqxx::work or pqxx::nontransaction) as an mt_sql table.
class SqlSession {
public:
    explicit SqlSession(pqxx::transaction_base& tx);
    SqlSession(const SqlSession&) = delete;
    SqlSession& operator=(const SqlSession&) = delete;

    pqxx::transaction_base& tx() { return tx_; }
    pqxx::result exec(const std::string& sql, const SqlParams& params = {}) { return exec_params(tx_, sql, params); }
    // The table lent to a plugin built with ABI minor caller_minor: exec writes mt_error.sqlstate
    // only into the error buffer of a plugin that has the field (1.1+); every caller also gets the
    // "SQLSTATE xxxxx: " message prefix a 1.0 plugin reads.
    const mt_sql* c_api_for(uint32_t caller_minor) const { return caller_minor >= 1 ? &api_ : &api_1_0_; }
    const mt_sql* c_api() const { return &api_; }

private:
    static mt_status exec_thunk(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                void* user, mt_error* err);
    static mt_status exec_thunk_1_0(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                    void* user, mt_error* err);
    static mt_status exec_into(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                               void* user, mt_error* err, bool has_sqlstate) noexcept;
    static size_t quote_thunk(void* ctx, mt_str ident, char* out, size_t capacity);

    pqxx::transaction_base& tx_;
    mt_sql api_{};
    mt_sql api_1_0_{};
};

// The SQLSTATE of a pqxx exception, or empty.
std::string sqlstate_of(const std::exception& e);

}  // namespace mt
