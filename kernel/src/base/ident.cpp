#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>

#include <array>

namespace mt {

std::string quote_ident(std::string_view ident) {
    if (ident.empty()) throw InputError("empty SQL identifier");
    std::string out;
    out.reserve(ident.size() + 2);
    out += '"';
    for (char c : ident) {
        if (c == '\0') throw InputError("SQL identifier contains a NUL byte");
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

std::string quote_qualified(std::string_view schema, std::string_view name) {
    return quote_ident(schema) + "." + quote_ident(name);
}

std::string with_idents(std::string_view statement,
                        std::initializer_list<std::pair<std::string_view, std::string_view>> idents) {
    std::string out(statement);
    for (const auto& [key, value] : idents) {
        const std::string placeholder = "{" + std::string(key) + "}";
        const std::string quoted = quote_ident(value);
        for (size_t pos = out.find(placeholder); pos != std::string::npos;
             pos = out.find(placeholder, pos + quoted.size()))
            out.replace(pos, placeholder.size(), quoted);
    }
    return out;
}

SchemaNamer::SchemaNamer(std::string schema_template, std::string shared_schema, const std::string& id_pattern)
    : template_(std::move(schema_template)), shared_(std::move(shared_schema)), pattern_text_(id_pattern) {
    try {
        pattern_ = std::regex(id_pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw InputError("isolation.tenant_id_pattern: not a valid regular expression: " + std::string(e.what()));
    }
    if (template_.find("{id}") == std::string::npos)
        throw InputError("isolation.schema_template: must contain {id}, got '" + template_ + "'");
}

void SchemaNamer::validate_id(std::string_view id) const {
    const std::string s(id);
    if (s.empty()) throw TenantIdError(s, "is empty");
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f)
            throw TenantIdError(s, "contains a control character");
    if (!std::regex_match(s, pattern_))
        throw TenantIdError(s, "does not match isolation.tenant_id_pattern " + pattern_text_);
}

std::string SchemaNamer::schema_name(std::string_view id) const {
    validate_id(id);
    std::string schema = template_;
    for (size_t pos = schema.find("{id}"); pos != std::string::npos; pos = schema.find("{id}", pos + id.size()))
        schema.replace(pos, 4, id);
    const std::string s(id);
    if (schema.size() > 63)
        throw TenantIdError(s, "schema name '" + schema + "' is " + std::to_string(schema.size()) +
                                   " bytes; PostgreSQL allows at most 63");
    if (schema.rfind("pg_", 0) == 0)
        throw TenantIdError(s, "schema name '" + schema + "' starts with pg_, which PostgreSQL reserves");
    static const std::array<std::string_view, 3> reserved{"public", "information_schema", "pg_catalog"};
    for (auto r : reserved)
        if (schema == r) throw TenantIdError(s, "schema name '" + schema + "' is reserved");
    if (schema == shared_) throw TenantIdError(s, "schema name '" + schema + "' is the shared schema");
    return schema;
}

std::string SchemaNamer::id_from_schema(std::string_view schema) const {
    const auto at = template_.find("{id}");
    const std::string_view prefix = std::string_view(template_).substr(0, at);
    const std::string_view suffix = std::string_view(template_).substr(at + 4);
    if (schema.size() <= prefix.size() + suffix.size()) return {};
    if (schema.substr(0, prefix.size()) != prefix) return {};
    if (schema.substr(schema.size() - suffix.size()) != suffix) return {};
    std::string id(schema.substr(prefix.size(), schema.size() - prefix.size() - suffix.size()));
    try {
        if (schema_name(id) != schema) return {};
    } catch (const TenantIdError&) {
        return {};
    }
    return id;
}

}  // namespace mt
