// A tenant as the kernel names it, and a selection of tenants; kept apart from kernel.hpp so that
// code which only names tenants (mtctl's renderers, result structs) does not pull in libpqxx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mt {

struct Tenant {
    std::string id;
    std::string schema;
    std::optional<std::string> server;  // [servers.NAME]; empty: database.url
};

// --all / --tenant ID (repeatable) / --tenants a,b,c
struct TenantSelection {
    bool all = false;
    std::vector<std::string> ids;
    bool empty() const { return !all && ids.empty(); }
};

// The tenants a fleet command works on, in order, at a few bytes a tenant beyond its id: the ids in
// one buffer, each tenant's schema derived from the schema template when asked for (kept only when
// it differs from what the template gives), its server as an index into the few servers there are
// (no index at all while every tenant is on database.url). A fleet of 100,000 takes about 1.3 MB
// where a std::vector<Tenant> took over 10 MB.
//
// Reads like a vector of Tenant: size(), [i] and iteration give each Tenant by value, built when
// asked for; id(i), schema(i) and server(i) give one part without building the rest.
class TenantList {
public:
    // schema_template: isolation.schema_template ("{id}" stands for the id), what a tenant's schema
    // is unless push_back is told otherwise.
    explicit TenantList(std::string schema_template = "{id}") : template_(std::move(schema_template)) {}
    // Each tenant keeps the schema and server it has (a list made for a few tenants by hand).
    // Not explicit: the fleet functions that took a std::vector<Tenant> still take one.
    TenantList(const std::vector<Tenant>& tenants);
    TenantList(std::initializer_list<Tenant> tenants) : TenantList(std::vector<Tenant>(tenants)) {}

    size_t size() const { return ends_.size(); }
    bool empty() const { return ends_.empty(); }

    std::string_view id(size_t i) const {
        const uint32_t begin = i == 0 ? 0 : ends_[i - 1];
        return std::string_view(ids_).substr(begin, ends_[i] - begin);
    }
    std::string schema(size_t i) const;
    const std::optional<std::string>& server(size_t i) const { return servers_[server_of_.empty() ? 0 : server_of_[i]]; }
    Tenant operator[](size_t i) const { return Tenant{std::string(id(i)), schema(i), server(i)}; }
    Tenant at(size_t i) const;  // throws std::out_of_range past the end

    // The servers the tenants are on, each once (the default, database.url, as nullopt when any
    // tenant is on it), in the order first met.
    std::vector<std::optional<std::string>> servers() const;
    // The index of the first tenant with this id, if any.
    std::optional<size_t> find(std::string_view id) const;

    void push_back(const Tenant& tenant) { push_back(tenant.id, tenant.schema, tenant.server); }
    void push_back(std::string_view id, std::string_view schema, const std::optional<std::string>& server);
    void set_server(size_t i, const std::optional<std::string>& server);
    void clear();
    // Gives back what growing the buffers left unused (call once a long list is complete).
    void shrink_to_fit();

    std::vector<Tenant> to_vector() const;
    const std::string& schema_template() const { return template_; }

    class const_iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Tenant;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Tenant;

        const_iterator() = default;
        const_iterator(const TenantList* list, size_t i) : list_(list), i_(i) {}
        Tenant operator*() const { return (*list_)[i_]; }
        const_iterator& operator++() {
            ++i_;
            return *this;
        }
        const_iterator operator++(int) {
            const_iterator before = *this;
            ++i_;
            return before;
        }
        bool operator==(const const_iterator& other) const { return i_ == other.i_; }
        bool operator!=(const const_iterator& other) const { return i_ != other.i_; }

    private:
        const TenantList* list_ = nullptr;
        size_t i_ = 0;
    };
    const_iterator begin() const { return {this, 0}; }
    const_iterator end() const { return {this, size()}; }

private:
    uint16_t intern(const std::optional<std::string>& server);

    std::string template_;
    std::string ids_;                                          // every id, one after the other
    std::vector<uint32_t> ends_;                               // per tenant: where its id ends in ids_
    std::vector<std::pair<uint32_t, std::string>> schemas_;    // (index, schema) where not the template's, by index
    std::vector<std::optional<std::string>> servers_{std::nullopt};  // [0]: database.url
    std::vector<uint16_t> server_of_;                          // per tenant, once any is not on servers_[0]
};

}  // namespace mt
