// tracking-name: drizzle-multitenant's default layout, one row per migration identified by its name.
// Tables created here also carry a nullable `hash` column so that an edited file can be detected
// (drizzle-multitenant ignores the extra column); tables without it work the same.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

class NameFormat final : public TrackingFormat {
public:
    NameFormat(const Config&, const Host&) {}

    int detect(const std::vector<Column>& columns) override {
        for (const auto& c : columns)
            if (c.name == "name") return c.not_null ? 10 : 1;
        return 0;
    }

    void create(Sql& sql, const Table& table) override {
        sql.exec(sql.with_table("CREATE TABLE IF NOT EXISTS {table} ("
                                "id serial PRIMARY KEY, "
                                "name varchar(255) NOT NULL UNIQUE, "
                                "applied_at timestamptz DEFAULT now(), "
                                "hash text)",
                                table.schema, table.name));
    }

    std::string_view list_query() const override {
        return "SELECT t.name::text, to_jsonb(t)->>'hash', floor(extract(epoch FROM t.applied_at) * 1000)::bigint "
               "FROM {table} t ORDER BY t.id";
    }

    uint32_t identifies_by() const override { return MT_IDENTIFIES_NAME; }

    // Hashes only where the table has the `hash` column (drizzle-multitenant's own table has not).
    // The COPY read is list_query's columns as stored (the kernel checks their types).
    TrackingCapabilities capabilities(const Table& table) const {
        uint32_t keeps = MT_TRACKING_KEEPS_NAMES | MT_TRACKING_FOUND_BY_NAME;
        if (table.columns.empty() || table.column("hash")) keeps |= MT_TRACKING_KEEPS_HASHES;
        TrackingCopyRead copy;
        if (!table.columns.empty())
            copy = {"id", "name", table.column("hash") ? "hash" : "", "applied_at", MT_COPY_TIME_TIMESTAMP};
        return {keeps, "name", copy};
    }

    void record(Sql& sql, const Table& table, const std::vector<Record>& records) override {
        for (const auto& r : records)
            if (!r.name) throw Error("the name format needs each migration's name");
        const char* statement = table.column("hash")
            ? "INSERT INTO {table} (name, hash, applied_at) "
              "SELECT e.r->>'name', e.r->>'hash', "
              "COALESCE(to_timestamp((e.r->>'created_at_ms')::bigint / 1000.0), date_trunc('milliseconds', now())) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i"
            : "INSERT INTO {table} (name, applied_at) "
              "SELECT e.r->>'name', COALESCE(to_timestamp((e.r->>'created_at_ms')::bigint / 1000.0), date_trunc('milliseconds', now())) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i";
        sql.exec(sql.with_table(statement, table.schema, table.name), {records_json(records)});
    }

    void remove(Sql& sql, const Table& table, const std::vector<Record>& records) override {
        sql.exec(sql.with_table("DELETE FROM {table} t USING jsonb_array_elements($1::jsonb) AS e(r) "
                                "WHERE t.name = e.r->>'name'",
                                table.schema, table.name),
                 {records_json(records)});
    }
};

}  // namespace

MT_PLUGIN("tracking-name", MT_SDK_VERSION, MT_FACTORY(NameFormat, "tracking-name"))
