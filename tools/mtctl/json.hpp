// JSON rendering for the commands that print a --json document.
#pragma once

#include <mt/context/tenant.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mtctl {

// The version of every --json document's shape, written as its first key "schema_version" (the
// documents are described by docs/schema/*.schema.json). It changes only when a field is removed,
// renamed or changes type; adding a field keeps it.
inline constexpr int json_schema_version = 1;

nlohmann::json tenant_json(const mt::Tenant& t);

// null for an empty text or an absent value, the value otherwise.
inline nlohmann::json or_null(const std::string& text) { return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text); }
template <class T>
nlohmann::json or_null(const std::optional<T>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace mtctl
