#include "support/project.hpp"

#include <map>

namespace mt::test {

Project::Project() : db_(std::in_place), url_(db_->url()) { init(); }

Project::Project(std::string database_url) : url_(std::move(database_url)) { init(); }

std::string Project::scalar(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) return "";
    return r[0][0].c_str();
}

std::string Project::scalar(const std::string& sql, const mt::SqlParams& params) const {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    auto r = mt::exec_params(tx, sql, params);
    if (r.empty() || r[0][0].is_null()) return "";
    return r[0][0].c_str();
}

void Project::exec(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec0(sql);
    tx.commit();
}

void Project::exec(const std::string& sql, const mt::SqlParams& params) const {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    mt::exec_params(tx, sql, params);
    tx.commit();
}

mt::ManifestInput Project::manifest_input() const {
    mt::ManifestInput in;
    in.file = dir() / "multitenant.ini";
    in.use_environment = false;
    return in;
}

void Project::init() {
    settings_ = {
        {"database.url", url_},
        {"database.pool_size", "4"},
        {"migrations.tenant_dir", "drizzle/tenant"},
        {"migrations.shared_dir", "drizzle/shared"},
        {"migrations.concurrency", "4"},
        {"plugins.load", "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, discovery-schemas, retry-exponential"},
        {"roles.discovery", "discovery-sql"},
        {"roles.retry", "retry-exponential"},
        {"plugin.discovery-sql.query", "SELECT id FROM public.tenants ORDER BY id"},
        {"plugin.retry-exponential.initial_delay", "50ms"},
    };
    std::filesystem::create_directories(dir() / "drizzle/tenant");
    std::filesystem::create_directories(dir() / "drizzle/shared");
    write_manifest();
}

void Project::set(const std::string& key, const std::string& value) {
    for (auto& [k, v] : settings_)
        if (k == key) {
            v = value;
            write_manifest();
            return;
        }
    settings_.emplace_back(key, value);
    write_manifest();
}

void Project::write_manifest() const {
    // Group by section: everything before the last '.' is the section.
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> sections;
    for (const auto& [k, v] : settings_) {
        const auto dot = k.rfind('.');
        sections[k.substr(0, dot)].emplace_back(k.substr(dot + 1), v);
    }
    std::string ini;
    for (const auto& [section, entries] : sections) {
        ini += "[" + section + "]\n";
        for (const auto& [k, v] : entries) ini += k + " = " + v + "\n";
        ini += "\n";
    }
    write_file(dir() / "multitenant.ini", ini);
}

void Project::migration(const std::string& name, const std::string& sql, const std::string& folder) const {
    write_file(dir() / folder / (name + ".sql"), sql);
}

void Project::tenants(const std::vector<std::string>& ids, bool create_schemas) const {
    std::string sql = "CREATE TABLE IF NOT EXISTS public.tenants (id text PRIMARY KEY);";
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec0(sql);
    for (const auto& id : ids) {
        tx.exec_params0("INSERT INTO public.tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", id);
        if (create_schemas) tx.exec0("CREATE SCHEMA IF NOT EXISTS " + tx.quote_name("tenant_" + id));
    }
    tx.commit();
}

RunResult Project::mtctl(const std::string& args) const { return mt::test::mtctl(args, dir()); }

void users_posts_seed_migrations(const Project& p) {
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text);");
    p.migration("0001_posts", "CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users(id));");
    p.migration("0002_seed", "INSERT INTO users (email) VALUES ('x@example.com');");
}

}  // namespace mt::test
