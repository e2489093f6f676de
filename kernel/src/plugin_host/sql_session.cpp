#include "base/pqxx_session.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <mt/sdk/plugin.hpp>

#include <cstring>

namespace mt {

namespace {

// The offset of the first byte that is not part of a well-formed UTF-8 sequence (the rules of
// PostgreSQL's pg_utf8_islegal: no overlong forms, no surrogates, nothing above U+10FFFF), or npos.
size_t invalid_utf8_at(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) len = 3;
        else if (c == 0xED) len = 3, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        else return i;
        if (i + len > n) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; ++k)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
        i += len;
    }
    return std::string_view::npos;
}

}  // namespace

void check_statement(const std::string& sql, const SqlParams& params, const std::string& tenant, bool utf8) {
    if (sql.find('\0') != std::string::npos)
        throw OperationError("the statement text contains a NUL byte; nothing was sent" +
                    (tenant.empty() ? std::string() : " (tenant " + tenant + ")"));
    for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i]) continue;
        const std::string& v = *params[i];
        if (const auto nul = v.find('\0'); nul != std::string::npos)
            throw InvalidParameter(tenant, i + 1,
                                   "contains a NUL byte at offset " + std::to_string(nul) +
                                       ", which PostgreSQL text cannot hold; nothing was sent (send bytes as bytea, "
                                       "or strip the NUL)");
        if (utf8)
            if (const auto bad = invalid_utf8_at(v); bad != std::string_view::npos)
                throw InvalidParameter(tenant, i + 1,
                                       "is not valid UTF-8 (byte offset " + std::to_string(bad) +
                                           "); nothing was sent (fix the value's encoding)");
    }
}

pqxx::result exec_params(pqxx::transaction_base& tx, const std::string& sql, const SqlParams& params) {
    check_statement(sql, params, {}, detail::client_encoding_is_utf8(tx.conn()));
    return detail::exec_checked(tx, sql, params);
}

pqxx::result detail::exec_checked(pqxx::transaction_base& tx, const std::string& sql, const SqlParams& params) {
    if (params.empty()) return tx.exec(sql);
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(values));
}

std::string sqlstate_of(const std::exception& e) {
    if (const auto* s = dynamic_cast<const pqxx::sql_error*>(&e)) return s->sqlstate();
    // libpqxx 6.4 throws the class-40 errors as transaction_rollback subtypes that are not
    // sql_errors and carry no SQLSTATE: map them back, or they are never seen as retryable.
    if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return "40001";
    if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return "40P01";
    if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e)) return "40003";
    if (dynamic_cast<const pqxx::transaction_rollback*>(&e)) return "40000";
    return {};
}

SqlSession::SqlSession(pqxx::transaction_base& tx) : tx_(tx) {
    api_.struct_size = sizeof(mt_sql);
    api_.ctx = this;
    api_.exec = &SqlSession::exec_thunk;
    api_.quote_ident = &SqlSession::quote_thunk;
    api_.abi_minor = MT_ABI_MINOR;
    api_1_0_ = api_;
    api_1_0_.exec = &SqlSession::exec_thunk_1_0;
}

mt_status SqlSession::exec_thunk(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                 void* user, mt_error* err) {
    return exec_into(ctx, sql, params, nparams, on_row, user, err, true);
}

mt_status SqlSession::exec_thunk_1_0(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                     void* user, mt_error* err) {
    return exec_into(ctx, sql, params, nparams, on_row, user, err, false);
}

// Called from plugin code: nothing may escape, neither the kernel's exceptions nor one a plugin's
// row callback threw into these frames (abi.h forbids it; a C++ plugin without the SDK may still).
mt_status SqlSession::exec_into(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                void* user, mt_error* err, bool has_sqlstate) noexcept {
    auto* self = static_cast<SqlSession*>(ctx);
    bool in_callback = false;
    try {
        SqlParams p;
        p.reserve(nparams);
        for (size_t i = 0; i < nparams; ++i) p.push_back(sdk::opt(params[i]));
        const pqxx::result r = self->exec(std::string(sdk::view(sql)), p);
        if (on_row) {
            const auto ncols = static_cast<size_t>(r.columns());
            std::vector<mt_str> values(ncols);
            for (const auto& row : r) {
                for (size_t i = 0; i < ncols; ++i) {
                    const auto field = row[static_cast<pqxx::row::size_type>(i)];
                    values[i] = field.is_null() ? mt_str{nullptr, 0} : mt_str{field.c_str(), field.size()};
                }
                in_callback = true;
                const int stop = on_row(user, ncols, values.data());
                in_callback = false;
                if (stop != 0) break;
            }
        }
        return MT_OK;
    } catch (const std::exception& e) {
        if (in_callback) {
            sdk::write_error(err, std::string("the plugin's row callback threw an exception into the host: ") + e.what());
            return MT_ERROR;
        }
        const std::string state = sqlstate_of(e);
        // The prefix stays for 1.0 plugins, which read the SQLSTATE from it; 1.1 reads the field.
        sdk::write_error(err, state.empty() ? std::string(e.what()) : "SQLSTATE " + state + ": " + e.what());
        if (has_sqlstate) sdk::detail::write_sqlstate(err, state);
        return MT_SQL_ERROR;
    } catch (...) {
        sdk::write_error(err, in_callback ? "the plugin's row callback threw an exception into the host"
                                          : "unknown error");
        return in_callback ? MT_ERROR : MT_SQL_ERROR;
    }
}

size_t SqlSession::quote_thunk(void*, mt_str ident, char* out, size_t capacity) {
    std::string q;
    try {
        q = quote_ident(sdk::view(ident));
    } catch (...) {
        q = "\"\"";  // an empty identifier is refused by the server with a clear error
    }
    if (q.size() + 1 <= capacity) {
        std::memcpy(out, q.data(), q.size());
        out[q.size()] = '\0';
    }
    return q.size();
}

}  // namespace mt
