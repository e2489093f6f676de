// The kernel context: a manifest, its plugins and role instances, and connections to the servers.
// mtctl and applications open one Kernel and call the operations on it.
#pragma once

#include <mt/base/ident.hpp>
#include <mt/context/manifest.hpp>
#include <mt/context/tenant.hpp>
#include <mt/plugin_host/plugins.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace mt {

class Kernel {
public:
    // Reads the manifest (pass 1), loads its plugins, validates it (pass 2) and creates the role
    // instances. Throws ManifestError / PluginError (exit 2); touches no database.
    explicit Kernel(const ManifestInput& input);
    ~Kernel();
    Kernel(const Kernel&) = delete;
    Kernel& operator=(const Kernel&) = delete;

    const Manifest& manifest() const { return manifest_; }
    const PluginRegistry& registry() const { return *registry_; }
    const SchemaNamer& namer() const { return *namer_; }

    // The connection string for a server (default: database.url), with application_name and
    // connect_timeout applied. Unknown server -> Error. It holds the password: show it only
    // through redact_conninfo, and a driver message about it through redact_message.
    std::string connection_string(const std::optional<std::string>& server = std::nullopt) const;
    // Opens a connection through the retry policy. Throws DatabaseUnavailable (exit 3) when the
    // server cannot be reached after the retries.
    std::unique_ptr<pqxx::connection> connect(const std::optional<std::string>& server = std::nullopt) const;

    // Runs the discovery plugin and maps each id to its schema. An id the discovery returns that
    // fails validation is an error naming it (nothing else is done). The list is compact (a few
    // bytes a tenant beyond its id): iterate it with `const auto&`, each Tenant is built when read.
    TenantList discover_tenants(pqxx::connection& conn) const;
    TenantList discover_tenants() const;
    // Resolves a selection: --all is every discovered tenant; explicit ids are validated and
    // need not be discovered (a tenant being created is not in the list yet).
    TenantList select(const TenantSelection& selection) const;
    Tenant tenant(const std::string& id) const;

    // Tracking formats: "name" | "hash" | "drizzle-kit" or any loaded tracking_format factory name.
    const TrackingFormat& tracking_format(const std::string& name) const;
    const std::vector<TrackingFormat>& tracking_formats() const { return formats_; }
    // The best-scoring format for a table's columns, or nullptr when none recognises it.
    const TrackingFormat* detect_format(const std::vector<sdk::Column>& columns) const;

    const RetryPolicy* retry_policy() const { return retry_ ? &*retry_ : nullptr; }
    const std::vector<MetricsSink>& sinks() const { return sinks_; }
    const std::vector<RequestTenantExtractor>& extractors() const { return extractors_; }
    void emit(const mt_event& event) const noexcept;

    // Runs fn, retrying on the failures the retry policy accepts; emits retry events.
    template <class F>
    auto with_retry(const std::string& tenant, F&& fn) const -> decltype(fn());
    // Asks the retry policy about one failure (attempt counts the first try as 1); when it says
    // yes, emits the retry event and waits the policy's delay before returning true.
    bool should_retry(const std::string& tenant, const std::exception& e, int attempt) const;

    // Expires when this Kernel is destroyed: objects that may outlive it (leases) check it and
    // refuse to work instead of touching a dead Kernel.
    std::weak_ptr<const void> lifetime() const { return lifetime_; }

private:
    // Hands each discovered tenant (validated, with its schema) to fn as the plugin reads it.
    void discover_each(pqxx::connection& conn,
                       const std::function<void(std::string&& id, std::string&& schema, std::optional<std::string>&& server)>& fn) const;

    std::shared_ptr<const void> lifetime_ = std::make_shared<int>(0);

    Manifest manifest_;
    std::unique_ptr<PluginRegistry> registry_;
    std::unique_ptr<SchemaNamer> namer_;
    std::optional<TenantDiscovery> discovery_;
    std::optional<RetryPolicy> retry_;
    std::vector<MetricsSink> sinks_;
    std::vector<RequestTenantExtractor> extractors_;
    std::vector<TrackingFormat> formats_;
};

// Removes the password from a connection string before it is shown or logged: redact_conninfo
// (mt/redact.hpp), kept under this name for existing callers.
std::string redact_url(const std::string& url);

// true for failures of the connection itself (broken, refused) rather than of a statement.
bool is_connection_failure(const std::exception& e);

template <class F>
auto Kernel::with_retry(const std::string& tenant, F&& fn) const -> decltype(fn()) {
    for (int attempt = 1;; ++attempt) {
        try {
            return fn();
        } catch (const std::exception& e) {
            if (!should_retry(tenant, e, attempt)) throw;
        }
    }
}

}  // namespace mt
