// tracking-hash: one row per migration identified by the SHA-256 of its file, with a timestamptz.
// Tables created here also carry a nullable `migration_name` column (a recorded name also
// identifies a migration, so an edited file shows as edited rather than as missing plus orphan).
// It is not called `name`: drizzle-multitenant takes any table with a `name` column for its name
// format, and then records rows without a hash. Tables from earlier versions with a nullable
// `name` column are read and written the same way.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

bool is_bigint(const Column& c) { return c.type == "bigint" || c.type == "integer" || c.type == "numeric"; }

class HashFormat final : public TrackingFormat {
public:
    HashFormat(const Config&, const Host&) {}

    int detect(const std::vector<Column>& columns) override {
        const Column* hash = nullptr;
        const Column* created = nullptr;
        const Column* name = nullptr;
        for (const auto& c : columns) {
            if (c.name == "hash") hash = &c;
            if (c.name == "created_at") created = &c;
            if (c.name == "name") name = &c;
        }
        if (!hash || (name && name->not_null)) return 0;
        if (created && is_bigint(*created)) return 0;  // drizzle-kit's layout
        return 10;
    }

    void create(Sql& sql, const Table& table) override {
        sql.exec(sql.with_table("CREATE TABLE IF NOT EXISTS {table} ("
                                "id serial PRIMARY KEY, "
                                "hash text NOT NULL UNIQUE, "
                                "created_at timestamptz DEFAULT now(), "
                                "migration_name varchar(255))",
                                table.schema, table.name));
    }

    std::string_view list_query() const override {
        return "SELECT coalesce(to_jsonb(t)->>'migration_name', to_jsonb(t)->>'name'), t.hash::text, "
               "floor(extract(epoch FROM t.created_at) * 1000)::bigint "
               "FROM {table} t ORDER BY t.id";
    }

    uint32_t identifies_by() const override { return MT_IDENTIFIES_HASH; }

    // Names only where the table has a name column (drizzle-multitenant's own table has none); an
    // earlier version's `name` column makes drizzle-multitenant read the table by name.
    TrackingCapabilities capabilities(const Table& table) const {
        uint32_t keeps = MT_TRACKING_KEEPS_HASHES;
        if (table.columns.empty() || table.column("migration_name") || table.column("name")) keeps |= MT_TRACKING_KEEPS_NAMES;
        if (table.column("name")) keeps |= MT_TRACKING_FOUND_BY_NAME;
        return {keeps, "hash", copy_read(table)};
    }

    // The COPY read: list_query's columns as stored (the kernel checks their types). None where the
    // table has both name columns: list_query takes the first of the two that is not NULL, per row.
    static TrackingCopyRead copy_read(const Table& table) {
        const bool migration_name = table.column("migration_name") != nullptr, name = table.column("name") != nullptr;
        if (table.columns.empty() || (migration_name && name)) return {};
        return {"id", migration_name ? "migration_name" : name ? "name" : "", "hash", "created_at", MT_COPY_TIME_TIMESTAMP};
    }

    void record(Sql& sql, const Table& table, const std::vector<Record>& records) override {
        for (const auto& r : records)
            if (!r.hash) throw Error("the hash format needs each migration's hash");
        const char* statement = table.column("migration_name")
            ? "INSERT INTO {table} (hash, migration_name, created_at) "
              "SELECT e.r->>'hash', e.r->>'name', "
              "COALESCE(to_timestamp((e.r->>'created_at_ms')::bigint / 1000.0), date_trunc('milliseconds', now())) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i"
            : table.column("name")
            ? "INSERT INTO {table} (hash, name, created_at) "
              "SELECT e.r->>'hash', e.r->>'name', "
              "COALESCE(to_timestamp((e.r->>'created_at_ms')::bigint / 1000.0), date_trunc('milliseconds', now())) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i"
            : "INSERT INTO {table} (hash, created_at) "
              "SELECT e.r->>'hash', COALESCE(to_timestamp((e.r->>'created_at_ms')::bigint / 1000.0), date_trunc('milliseconds', now())) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i";
        sql.exec(sql.with_table(statement, table.schema, table.name), {records_json(records)});
    }

    void remove(Sql& sql, const Table& table, const std::vector<Record>& records) override {
        sql.exec(sql.with_table("DELETE FROM {table} t USING jsonb_array_elements($1::jsonb) AS e(r) "
                                "WHERE t.hash = e.r->>'hash'",
                                table.schema, table.name),
                 {records_json(records)});
    }
};

}  // namespace

MT_PLUGIN("tracking-hash", MT_SDK_VERSION, MT_FACTORY(HashFormat, "tracking-hash"))
