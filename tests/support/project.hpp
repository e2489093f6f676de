// A throwaway mtctl project: its own database, a manifest and migration folders in a temp dir.
#pragma once

#include "support/pg.hpp"

#include <mt/context/manifest.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mt::test {

class Project {
public:
    // Writes a manifest pointing at a fresh database with every in-tree plugin loaded.
    Project();
    // The same, on an existing database (e.g. a PrivateServer's).
    explicit Project(std::string database_url);
    const std::string& url() const { return url_; }
    const std::filesystem::path& dir() const { return dir_.path(); }

    // Manifest key overrides (section.key -> value) written into multitenant.ini.
    void set(const std::string& key, const std::string& value);
    void write_manifest() const;

    void migration(const std::string& name, const std::string& sql, const std::string& folder = "drizzle/tenant") const;
    // Creates public.tenants with these ids and (optionally) their tenant_<id> schemas.
    void tenants(const std::vector<std::string>& ids, bool create_schemas = true) const;

    RunResult mtctl(const std::string& args) const;
    std::string scalar(const std::string& sql) const;
    std::string scalar(const std::string& sql, const mt::SqlParams& params) const;
    void exec(const std::string& sql) const;
    // One parameterised statement ($1…) in its own transaction.
    void exec(const std::string& sql, const mt::SqlParams& params) const;
    // The project's manifest file, without MT_* environment overrides (for a mt::Kernel in-process).
    mt::ManifestInput manifest_input() const;

private:
    void init();
    std::optional<TempDatabase> db_;
    std::string url_;
    TempDir dir_;
    std::vector<std::pair<std::string, std::string>> settings_;
};

// The three tenant migrations the tracking-format, auto-convert and rename tests start from:
// 0000_users, 0001_posts (references users) and 0002_seed (one row).
void users_posts_seed_migrations(const Project& p);

// Whether the schema exists.
inline bool schema_exists(const Project& p, const std::string& schema) {
    return p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1", {schema}) == "1";
}

// The columns of the schema's __drizzle_migrations table, "name type, ..." in their order.
inline std::string columns_of(const Project& p, const std::string& schema) {
    return p.scalar("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_schema = $1 AND table_name = '__drizzle_migrations'",
                    {schema});
}

}  // namespace mt::test
