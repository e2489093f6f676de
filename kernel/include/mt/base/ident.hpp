// The one place identifiers are quoted and tenant ids turned into schema names (SPEC §5.1).
#pragma once

#include <regex>
#include <string>
#include <string_view>

namespace mt {

// "name" with embedded double quotes doubled. Refuses NUL bytes and empty names (throws mt::Error).
std::string quote_ident(std::string_view ident);

// "schema"."name"
std::string quote_qualified(std::string_view schema, std::string_view name);

// Replaces each "{key}" placeholder in a constant statement with quote_ident(value).
// Used for statements whose identifiers vary: statement text stays greppable.
std::string with_idents(std::string_view statement,
                        std::initializer_list<std::pair<std::string_view, std::string_view>> idents);

class SchemaNamer {
public:
    SchemaNamer(std::string schema_template, std::string shared_schema, const std::string& id_pattern);

    // Validates id against the pattern, applies the template and checks the result (≤ 63 bytes,
    // not pg_*, not a reserved or the shared schema). Throws TenantIdError naming the rule broken.
    std::string schema_name(std::string_view id) const;
    void validate_id(std::string_view id) const;
    // The id a schema name belongs to, or empty when the name does not match the template.
    std::string id_from_schema(std::string_view schema) const;

    const std::string& schema_template() const { return template_; }
    const std::string& shared_schema() const { return shared_; }

private:
    std::string template_;
    std::string shared_;
    std::string pattern_text_;
    std::regex pattern_;
};

}  // namespace mt
