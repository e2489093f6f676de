#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/base/redact.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace mt {

namespace {

bool is_url(const std::string& s) { return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0; }


std::string conninfo_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

// Whether the connection string itself sets key, by libpq's own parse (URL and key=value forms
// alike). No std::regex here: connections open on many threads, and building a regex there races
// on libstdc++'s ctype<char>::narrow cache (TSan, issue 11).
bool sets_param(const PQconninfoOption* parsed, std::string_view key) {
    for (const PQconninfoOption* option = parsed; option->keyword; ++option)
        if (key == option->keyword) return option->val != nullptr;
    return false;
}

// Adds key=value unless the connection string already sets key.
std::string with_param(const std::string& conn, const PQconninfoOption* parsed, const std::string& key,
                       const std::string& value) {
    if (sets_param(parsed, key)) return conn;
    if (is_url(conn))
        return conn + (conn.find('?') == std::string::npos ? "?" : "&") + key + "=" + detail::percent_encode(value);
    return conn + (conn.empty() ? "" : " ") + key + "=" + conninfo_quote(value);
}

}  // namespace

std::string redact_url(const std::string& url) { return redact_conninfo(url); }

bool is_connection_failure(const std::exception& e) {
    return dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
           dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr;
}

Kernel::Kernel(const ManifestInput& input) {
    const RawSettings raw = read_settings(input);
    std::vector<std::filesystem::path> search;
    for (const auto& p : raw.get_list("plugins.path")) {
        std::filesystem::path path(p);
        search.push_back(path.is_absolute() ? path : raw.base_dir / path);
    }
    registry_ = std::make_unique<PluginRegistry>(search);
    for (const auto& name : raw.get_list("plugins.load")) registry_->load(name);
    manifest_ = build_manifest(raw, registry_->config_keys());
    // From here on every text this process shows loses these passwords, whatever path it took.
    remember_secrets(manifest_.database.url);
    for (const auto& [name, url] : manifest_.servers) remember_secrets(url);

    const auto& iso = manifest_.isolation;
    try {
        namer_ = std::make_unique<SchemaNamer>(iso.schema_template, iso.shared_schema, iso.tenant_id_pattern);
    } catch (const Error& e) {
        throw ManifestError(manifest_.file ? manifest_.file->string() : "manifest", "isolation", e.what());
    }

    auto config_of = [this](const std::string& name) {
        auto it = manifest_.plugin_config.find(name);
        return it == manifest_.plugin_config.end() ? std::map<std::string, std::string>{} : it->second;
    };
    for (const auto& name : registry_->factories_of(MT_KIND_TRACKING_FORMAT))
        formats_.emplace_back(registry_->create(name, MT_KIND_TRACKING_FORMAT, config_of(name)));
    const auto& roles = manifest_.roles;
    if (!roles.discovery.empty())
        discovery_.emplace(registry_->create(roles.discovery, MT_KIND_TENANT_DISCOVERY, config_of(roles.discovery)));
    if (!roles.retry.empty())
        retry_.emplace(registry_->create(roles.retry, MT_KIND_RETRY_POLICY, config_of(roles.retry)));
    for (const auto& name : roles.sinks)
        sinks_.emplace_back(registry_->create(name, MT_KIND_METRICS_SINK, config_of(name)));
    for (const auto& name : roles.extractor)
        extractors_.emplace_back(registry_->create(name, MT_KIND_REQUEST_TENANT_EXTRACTOR, config_of(name)));

    const std::string source = manifest_.file ? manifest_.file->string() : "manifest";
    auto check_format = [&](const std::string& key, const std::string& value, bool allow_auto) {
        if (allow_auto && value == "auto") return;
        try {
            tracking_format(value);
        } catch (const Error& e) {
            throw ManifestError(source, key, e.what());
        }
    };
    // A runtime-only manifest (a service) loads no tracking format at all: the migration commands
    // then fail with the same message when they need one.
    if (!formats_.empty()) {
        check_format("migrations.format", manifest_.migrations.format, true);
        check_format("migrations.default_format", manifest_.migrations.default_format, false);
    }
}

Kernel::~Kernel() = default;

std::string Kernel::connection_string(const std::optional<std::string>& server) const {
    std::string conn = manifest_.database.url;
    if (server) {
        auto it = manifest_.servers.find(*server);
        if (it == manifest_.servers.end())
            throw InputError("tenant routed to server '" + *server + "', which has no [servers." + *server +
                        "] url in the manifest");
        conn = it->second;
    }
    // A string libpq cannot parse is left as written, so that libpq's message is about the
    // user's text rather than about what appending to it did.
    char* parse_error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(conn.c_str(), &parse_error);
    if (parse_error) PQfreemem(parse_error);
    if (!parsed) return conn;
    const std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(parsed, PQconninfoFree);
    conn = with_param(conn, parsed, "application_name", manifest_.database.application_name);
    const auto timeout_s = std::max<long long>(1, (manifest_.database.connect_timeout.count() + 999) / 1000);
    return with_param(conn, parsed, "connect_timeout", std::to_string(timeout_s));
}

std::unique_ptr<pqxx::connection> Kernel::connect(const std::optional<std::string>& server) const {
    const std::string conn = connection_string(server);
    // libpq quotes pieces of a malformed connection string in its messages: the message is
    // redacted before anything (the retry policy, its events and logs, the caller) sees it.
    auto open = [&] {
        try {
            return std::make_unique<pqxx::connection>(conn);
        } catch (const pqxx::broken_connection& e) {
            throw pqxx::broken_connection(redact_message(e.what(), conn));
        } catch (const pqxx::failure& e) {
            throw pqxx::failure(redact_message(e.what(), conn));
        }
    };
    try {
        return with_retry({}, open);
    } catch (const pqxx::broken_connection& e) {
        std::string msg = e.what();
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        throw DatabaseUnavailable("cannot connect to " + redact_conninfo(server ? manifest_.servers.at(*server) : manifest_.database.url) +
                                  ": " + msg + " (check [database] url and that the server is running)");
    }
}

void Kernel::discover_each(
    pqxx::connection& conn,
    const std::function<void(std::string&& id, std::string&& schema, std::optional<std::string>&& server)>& fn) const {
    if (!discovery_) throw InputError("no discovery plugin: set [roles] discovery in the manifest (e.g. discovery-sql)");
    pqxx::work tx(conn);
    tx.exec_params("SELECT set_config('search_path', $1, true)", quote_ident(manifest_.isolation.shared_schema));
    SqlSession sql(tx);
    discovery_->discover(sql, [&](sdk::DiscoveredTenant&& t) {
        std::string schema;
        try {
            schema = namer_->schema_name(t.id);
        } catch (const TenantIdError& e) {
            throw TenantIdError(t.id, std::string("returned by discovery plugin ") + discovery_->name() + ": " +
                                          e.what() + " (fix the tenant list or isolation.tenant_id_pattern)");
        }
        fn(std::move(t.id), std::move(schema), std::move(t.server));
    });
    tx.commit();
}

TenantList Kernel::discover_tenants(pqxx::connection& conn) const {
    // Each tenant joins the compact list as the plugin hands it over: a fleet of 100,000 is held
    // once, at a few bytes a tenant beyond its id.
    TenantList out(manifest_.isolation.schema_template);
    discover_each(conn, [&](std::string&& id, std::string&& schema, std::optional<std::string>&& server) {
        out.push_back(id, schema, server);
    });
    out.shrink_to_fit();
    return out;
}

TenantList Kernel::discover_tenants() const {
    auto conn = connect();
    return discover_tenants(*conn);
}

Tenant Kernel::tenant(const std::string& id) const { return Tenant{id, namer_->schema_name(id), std::nullopt}; }

TenantList Kernel::select(const TenantSelection& selection) const {
    if (selection.all) return discover_tenants();
    TenantList out(manifest_.isolation.schema_template);
    for (const auto& id : selection.ids) out.push_back(tenant(id));
    // Route explicitly named tenants to the server discovery assigns them, when there are servers;
    // only the named ones are looked for, so the fleet's list is never held.
    if (!manifest_.servers.empty() && discovery_) {
        std::unordered_map<std::string, std::optional<std::string>> routes;
        for (const auto& id : selection.ids) routes.emplace(id, std::nullopt);
        auto conn = connect();
        discover_each(*conn, [&](std::string&& id, std::string&&, std::optional<std::string>&& server) {
            if (const auto it = routes.find(id); it != routes.end()) it->second = std::move(server);
        });
        for (size_t i = 0; i < out.size(); ++i) out.set_server(i, routes.at(std::string(out.id(i))));
    }
    return out;
}

const TrackingFormat& Kernel::tracking_format(const std::string& name) const {
    for (const auto& f : formats_)
        if (f.name() == name) return f;
    for (const auto& f : formats_)
        if (f.label() == name) return f;
    std::string loaded;
    for (const auto& f : formats_) loaded += (loaded.empty() ? "" : ", ") + f.name();
    throw InputError("unknown tracking format '" + name + "' (loaded: " + (loaded.empty() ? "none" : loaded) +
                "; add its plugin to [plugins] load)");
}

const TrackingFormat* Kernel::detect_format(const std::vector<sdk::Column>& columns) const {
    const TrackingFormat* best = nullptr;
    int best_score = 0;
    for (const auto& f : formats_) {
        int score = 0;
        try {
            score = f.detect(columns);
        } catch (const std::exception& e) {
            spdlog::warn("tracking format {} failed to detect a table: {}", f.name(), e.what());
        }
        if (score > best_score) {
            best = &f;
            best_score = score;
        }
    }
    return best;
}

void Kernel::emit(const mt_event& event) const noexcept {
    if (event.error.size == 0) {
        for (const auto& s : sinks_) s.on_event(event);
        return;
    }
    // Sinks write error texts to logs: they get them redacted, whatever produced the text.
    mt_event redacted = event;
    std::string error;
    try {
        error = redact_text(sdk::view(event.error));
        redacted.error = sdk::str(error);
    } catch (...) {
        redacted.error = sdk::str("(error text withheld: it could not be redacted)");
    }
    for (const auto& s : sinks_) s.on_event(redacted);
}

bool Kernel::should_retry(const std::string& tenant, const std::exception& e, int attempt) const {
    if (!retry_) return false;
    sdk::Failure failure{sqlstate_of(e), e.what(), is_connection_failure(e), attempt};
    if (const auto* op = dynamic_cast<const OperationError*>(&e); op && failure.sqlstate.empty())
        failure.sqlstate = op->sqlstate;
    const auto delay = retry_->decide(failure);
    if (!delay) return false;
    const int max = retry_->max_attempts();
    mt_event ev{};
    ev.struct_size = sizeof ev;
    ev.type = MT_EVENT_RETRY;
    ev.tenant = sdk::str(tenant);
    ev.error = sdk::str(failure.message);
    ev.attempt = attempt + 1;
    ev.max_attempts = max;
    ev.delay_s = static_cast<double>(delay->count()) / 1000.0;
    emit(ev);
    spdlog::debug("retry {}/{} in {}ms after: {}", attempt + 1, max, delay->count(), failure.message);
    std::this_thread::sleep_for(*delay);
    return true;
}

}  // namespace mt
