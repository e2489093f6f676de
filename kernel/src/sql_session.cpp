#include <mt/ident.hpp>
#include <mt/sql_session.hpp>

#include <mt/sdk/plugin.hpp>

#include <cstring>

namespace mt {

pqxx::result exec_params(pqxx::transaction_base& tx, const std::string& sql, const SqlParams& params) {
    if (params.empty()) return tx.exec(sql);
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(values));
}

std::string sqlstate_of(const std::exception& e) {
    if (const auto* s = dynamic_cast<const pqxx::sql_error*>(&e)) return s->sqlstate();
    return {};
}

SqlSession::SqlSession(pqxx::transaction_base& tx) : tx_(tx) {
    api_.struct_size = sizeof(mt_sql);
    api_.ctx = this;
    api_.exec = &SqlSession::exec_thunk;
    api_.quote_ident = &SqlSession::quote_thunk;
}

mt_status SqlSession::exec_thunk(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                                 void* user, mt_error* err) {
    auto* self = static_cast<SqlSession*>(ctx);
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
                if (on_row(user, ncols, values.data()) != 0) break;
            }
        }
        return MT_OK;
    } catch (const pqxx::sql_error& e) {
        sdk::write_error(err, "SQLSTATE " + e.sqlstate() + ": " + e.what());
        return MT_SQL_ERROR;
    } catch (const std::exception& e) {
        sdk::write_error(err, e.what());
        return MT_SQL_ERROR;
    } catch (...) {
        sdk::write_error(err, "unknown error");
        return MT_SQL_ERROR;
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
