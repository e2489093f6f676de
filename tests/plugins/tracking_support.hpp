// Shared by the three tracking-format plugin tests: the built plugin loaded through the real
// loader, the table layouts each format meets in the field, and a scratch schema on a real
// PostgreSQL to run the kernel's calls in.
#pragma once

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <vector>

namespace mt::test {

struct LoadedFormat {
    mt::PluginRegistry registry{{plugin_dir()}};
    std::optional<mt::TrackingFormat> format;
    explicit LoadedFormat(const std::string& name) {
        registry.load(name);
        format.emplace(registry.create(name, MT_KIND_TRACKING_FORMAT, {}));
    }
    const mt::TrackingFormat* operator->() const { return &*format; }
};

// Columns as the kernel reads them (pg_catalog.format_type), for each layout met in the field.
inline sdk::Column col(std::string name, std::string type, bool not_null = false) {
    return sdk::Column{std::move(name), std::move(type), not_null};
}
struct Layouts {
    // drizzle-multitenant's name table, and mtenant's (with a nullable hash column).
    std::vector<sdk::Column> name_multitenant{col("id", "integer", true), col("name", "character varying(255)", true),
                                              col("applied_at", "timestamp with time zone")};
    std::vector<sdk::Column> name_mtenant{col("id", "integer", true), col("name", "character varying(255)", true),
                                          col("applied_at", "timestamp with time zone"), col("hash", "text")};
    // drizzle-multitenant's hash table, mtenant's (migration_name), and an earlier mtenant's (nullable name).
    std::vector<sdk::Column> hash_multitenant{col("id", "integer", true), col("hash", "text", true),
                                              col("created_at", "timestamp with time zone")};
    std::vector<sdk::Column> hash_mtenant{col("id", "integer", true), col("hash", "text", true),
                                          col("created_at", "timestamp with time zone"),
                                          col("migration_name", "character varying(255)")};
    std::vector<sdk::Column> hash_legacy{col("id", "integer", true), col("hash", "text", true),
                                         col("created_at", "timestamp with time zone"),
                                         col("name", "character varying(255)")};
    // drizzle-orm's own migrator table, mtenant's, and an earlier mtenant's.
    std::vector<sdk::Column> drizzle_orm{col("id", "integer", true), col("hash", "text", true), col("created_at", "bigint")};
    std::vector<sdk::Column> drizzle_mtenant{col("id", "integer", true), col("hash", "text", true),
                                             col("created_at", "bigint"), col("migration_name", "character varying(255)")};
    std::vector<sdk::Column> drizzle_legacy{col("id", "integer", true), col("hash", "text", true),
                                            col("created_at", "bigint"), col("name", "character varying(255)")};
    std::vector<sdk::Column> unrelated{col("id", "integer", true), col("version", "text")};
};

// A fresh database with an empty schema `s`; one transaction at a time through the kernel's SqlSession.
class Scratch {
public:
    Scratch() { db_.exec("CREATE SCHEMA s"); }
    const TempDatabase& db() const { return db_; }
    // Runs f(SqlSession&, pqxx::work&) in one committed transaction.
    template <class F>
    auto in_transaction(F&& f) const {
        pqxx::connection c(db_.url());
        pqxx::work tx(c);
        mt::SqlSession sql(tx);
        if constexpr (std::is_void_v<decltype(f(sql, tx))>) {
            f(sql, tx);
            tx.commit();
        } else {
            auto out = f(sql, tx);
            tx.commit();
            return out;
        }
    }
    // The tracking table s.__drizzle_migrations with its columns read as the kernel reads them.
    mt::TrackingTable table() const {
        return in_transaction([](mt::SqlSession&, pqxx::work& tx) {
            mt::TrackingTable t{"s", "__drizzle_migrations", {}};
            for (const auto& row : tx.exec("SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                                           "FROM pg_catalog.pg_attribute a "
                                           "WHERE a.attrelid = to_regclass('s.__drizzle_migrations') "
                                           "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"))
                t.columns.push_back(sdk::Column{row[0].c_str(), row[1].c_str(), row[2].as<bool>()});
            return t;
        });
    }
    // Columns as "name type[ not null]", in order.
    std::string layout() const {
        std::string out;
        for (const auto& c : table().columns)
            out += (out.empty() ? "" : ", ") + c.name + " " + c.type + (c.not_null ? " not null" : "");
        return out;
    }

private:
    TempDatabase db_;
};

// "name|hash|created_at_ms" per record, '-' for an unknown field, one per line.
inline std::string describe(const std::vector<sdk::Record>& records) {
    std::string out;
    for (const auto& r : records)
        out += r.name.value_or("-") + "|" + r.hash.value_or("-") + "|" +
               (r.created_at_ms ? std::to_string(*r.created_at_ms) : std::string("-")) + "\n";
    return out;
}

// The format's list_query run by hand with {table} filled in, as the kernel's batched status does.
inline std::string run_list_query(const Scratch& scratch, const mt::TrackingFormat& format) {
    return scratch.in_transaction([&](mt::SqlSession&, pqxx::work& tx) {
        std::string q = format.list_query();
        const auto at = q.find("{table}");
        REQUIRE(at != std::string::npos);
        q.replace(at, 7, "s.__drizzle_migrations");
        std::string out;
        for (const auto& row : tx.exec(q))
            out += std::string(row[0].is_null() ? "-" : row[0].c_str()) + "|" + (row[1].is_null() ? "-" : row[1].c_str()) +
                   "|" + (row[2].is_null() ? "-" : row[2].c_str()) + "\n";
        return out;
    });
}

}  // namespace mt::test
