// JSON rendering for the commands that print a --json document.
#pragma once

#include <mt/context/tenant.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mtctl {

nlohmann::json tenant_json(const mt::Tenant& t);

// null for an empty text or an absent value, the value otherwise.
inline nlohmann::json or_null(const std::string& text) { return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text); }
template <class T>
nlohmann::json or_null(const std::optional<T>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace mtctl
