// tracking-drizzle-kit: drizzle-orm's own migrator layout (id serial, hash text, created_at bigint),
// created_at being the journal's `when` (else the source record's time, else the apply time in ms), so drizzle-orm's migrator sees a
// table written here as up to date. Tables created here also carry a nullable `migration_name`
// column, which drizzle-orm ignores, so conversions from the name format stay lossless. It is not
// called `name`: drizzle-multitenant takes any table with a `name` column for its name format, and
// then records rows without a hash. Tables from earlier versions with a nullable `name` column are
// read and written the same way.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

class DrizzleKitFormat final : public TrackingFormat {
public:
    DrizzleKitFormat(const Config&, const Host&) {}

    int detect(const std::vector<Column>& columns) override {
        bool hash = false, bigint_created = false, name_required = false;
        for (const auto& c : columns) {
            if (c.name == "hash") hash = true;
            if (c.name == "created_at") bigint_created = c.type == "bigint";
            if (c.name == "name" && c.not_null) name_required = true;
        }
        return hash && bigint_created && !name_required ? 10 : 0;
    }

    void create(Sql& sql, const Table& table) override {
        sql.exec(sql.with_table("CREATE TABLE IF NOT EXISTS {table} ("
                                "id serial PRIMARY KEY, "
                                "hash text NOT NULL, "
                                "created_at bigint, "
                                "migration_name varchar(255))",
                                table.schema, table.name));
    }

    std::string_view list_query() const override {
        return "SELECT coalesce(to_jsonb(t)->>'migration_name', to_jsonb(t)->>'name'), t.hash::text, t.created_at::bigint "
               "FROM {table} t ORDER BY t.id";
    }

    uint32_t identifies_by() const override { return MT_IDENTIFIES_HASH; }

    // created_at is the journal's `when` (that is what drizzle-orm compares); names only where the
    // table has a name column (drizzle-orm's own table has none).
    TrackingCapabilities capabilities(const Table& table) const {
        uint32_t keeps = MT_TRACKING_KEEPS_HASHES | MT_TRACKING_JOURNAL_TIME;
        if (table.columns.empty() || table.column("migration_name") || table.column("name")) keeps |= MT_TRACKING_KEEPS_NAMES;
        if (table.column("name")) keeps |= MT_TRACKING_FOUND_BY_NAME;
        return {keeps, "drizzle-kit", copy_read(table)};
    }

    // The COPY read: list_query's columns as stored (the kernel checks their types). None where the
    // table has both name columns: list_query takes the first of the two that is not NULL, per row.
    static TrackingCopyRead copy_read(const Table& table) {
        const bool migration_name = table.column("migration_name") != nullptr, name = table.column("name") != nullptr;
        if (table.columns.empty() || (migration_name && name)) return {};
        return {"id", migration_name ? "migration_name" : name ? "name" : "", "hash", "created_at",
                MT_COPY_TIME_MILLISECONDS};
    }

    void record(Sql& sql, const Table& table, const std::vector<Record>& records) override {
        for (const auto& r : records)
            if (!r.hash) throw Error("the drizzle-kit format needs each migration's hash");
        const char* statement = table.column("migration_name")
            ? "INSERT INTO {table} (hash, migration_name, created_at) "
              "SELECT e.r->>'hash', e.r->>'name', "
              "COALESCE((e.r->>'when_ms')::bigint, (e.r->>'created_at_ms')::bigint, floor(extract(epoch FROM now()) * 1000)::bigint) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i"
            : table.column("name")
            ? "INSERT INTO {table} (hash, name, created_at) "
              "SELECT e.r->>'hash', e.r->>'name', "
              "COALESCE((e.r->>'when_ms')::bigint, (e.r->>'created_at_ms')::bigint, floor(extract(epoch FROM now()) * 1000)::bigint) "
              "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, i) ORDER BY e.i"
            : "INSERT INTO {table} (hash, created_at) "
              "SELECT e.r->>'hash', "
              "COALESCE((e.r->>'when_ms')::bigint, (e.r->>'created_at_ms')::bigint, floor(extract(epoch FROM now()) * 1000)::bigint) "
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

MT_PLUGIN("tracking-drizzle-kit", MT_SDK_VERSION, MT_FACTORY(DrizzleKitFormat, "tracking-drizzle-kit"))
