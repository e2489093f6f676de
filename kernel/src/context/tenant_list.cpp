// The compact tenant list (mt/context/tenant.hpp).
#include <mt/context/tenant.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace mt {

namespace {

constexpr std::string_view kIdMark = "{id}";

// Whether schema is what the template gives for id, without building that name.
bool from_template(std::string_view tmpl, std::string_view id, std::string_view schema) {
    size_t at = 0;
    for (;;) {
        const size_t mark = tmpl.find(kIdMark);
        const std::string_view literal = tmpl.substr(0, mark);
        if (schema.substr(at, literal.size()) != literal) return false;
        at += literal.size();
        if (mark == std::string_view::npos) return at == schema.size();
        if (schema.substr(at, id.size()) != id) return false;
        at += id.size();
        tmpl.remove_prefix(mark + kIdMark.size());
    }
}

}  // namespace

TenantList::TenantList(const std::vector<Tenant>& tenants) {
    for (const auto& t : tenants) push_back(t);
}

std::string TenantList::schema(size_t i) const {
    const auto kept = std::lower_bound(schemas_.begin(), schemas_.end(), i,
                                       [](const auto& entry, size_t index) { return entry.first < index; });
    if (kept != schemas_.end() && kept->first == i) return kept->second;
    const std::string_view name = id(i);
    std::string out;
    std::string_view rest = template_;
    for (size_t mark = rest.find(kIdMark); mark != std::string_view::npos; mark = rest.find(kIdMark)) {
        out.append(rest.substr(0, mark)).append(name);
        rest.remove_prefix(mark + kIdMark.size());
    }
    return out.append(rest);
}

Tenant TenantList::at(size_t i) const {
    if (i >= size())
        throw std::out_of_range("tenant " + std::to_string(i) + " of a list of " + std::to_string(size()));
    return (*this)[i];
}

std::vector<std::optional<std::string>> TenantList::servers() const {
    if (server_of_.empty()) return empty() ? std::vector<std::optional<std::string>>{} : std::vector{servers_[0]};
    std::vector<bool> used(servers_.size(), false);
    std::vector<std::optional<std::string>> out;
    for (const uint16_t s : server_of_)
        if (!used[s]) {
            used[s] = true;
            out.push_back(servers_[s]);
        }
    return out;
}

std::optional<size_t> TenantList::find(std::string_view wanted) const {
    for (size_t i = 0; i < size(); ++i)
        if (id(i) == wanted) return i;
    return std::nullopt;
}

void TenantList::push_back(std::string_view id, std::string_view schema, const std::optional<std::string>& server) {
    if (ids_.size() + id.size() > std::numeric_limits<uint32_t>::max())
        throw std::length_error("a tenant list holds at most 4 GiB of tenant ids");
    const size_t i = size();
    // The server first: interning may throw, and then the list is as it was.
    const uint16_t s = intern(server);
    // server_of_ is empty while every tenant is on database.url, else it has one entry a tenant.
    if (s != 0 && server_of_.empty()) server_of_.assign(i, 0);
    if (s != 0 || !server_of_.empty()) server_of_.push_back(s);
    ids_.append(id);
    ends_.push_back(static_cast<uint32_t>(ids_.size()));
    if (!from_template(template_, id, schema)) schemas_.emplace_back(static_cast<uint32_t>(i), std::string(schema));
}

void TenantList::set_server(size_t i, const std::optional<std::string>& server) {
    const uint16_t s = intern(server);
    if (s == (server_of_.empty() ? 0 : server_of_[i])) return;
    if (server_of_.empty()) server_of_.assign(size(), 0);
    server_of_[i] = s;
}

uint16_t TenantList::intern(const std::optional<std::string>& server) {
    const auto it = std::find(servers_.begin(), servers_.end(), server);
    if (it != servers_.end()) return static_cast<uint16_t>(it - servers_.begin());
    if (servers_.size() > std::numeric_limits<uint16_t>::max())
        throw std::length_error("a tenant list holds tenants on at most 65,536 servers");
    servers_.push_back(server);
    return static_cast<uint16_t>(servers_.size() - 1);
}

void TenantList::clear() {
    ids_.clear();
    ends_.clear();
    schemas_.clear();
    servers_.assign(1, std::nullopt);
    server_of_.clear();
}

void TenantList::shrink_to_fit() {
    ids_.shrink_to_fit();
    ends_.shrink_to_fit();
    schemas_.shrink_to_fit();
    server_of_.shrink_to_fit();
}

std::vector<Tenant> TenantList::to_vector() const {
    std::vector<Tenant> out;
    out.reserve(size());
    for (size_t i = 0; i < size(); ++i) out.push_back((*this)[i]);
    return out;
}

}  // namespace mt
