// JSON rendering for the commands that print a --json document.
#pragma once

#include <mt/context/tenant.hpp>

#include <nlohmann/json.hpp>

#include <iostream>
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

// value.dump(2) placed one level deeper: `newline` (a line break plus the outer indentation) for
// each line break, which in a dumped value is always structural (a string's own are escaped).
inline std::string indented(const nlohmann::json& value, const char* newline = "\n  ") {
    const std::string text = value.dump(2);
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (char c : text) {
        if (c == '\n') out += newline;
        else out += c;
    }
    return out;
}

// One --json document written piece by piece, so that a fleet-wide command prints each tenant as
// it finishes and keeps none: `schema_version` and the head's keys, then the elements of one array,
// then the tail's keys. Still one valid document, indented as dump(2) would, flushed per element
// (a reader of a pipe sees each tenant when it is done). Does nothing when `enabled` is false.
class JsonStream {
public:
    JsonStream(bool enabled, std::ostream& out = std::cout) : enabled_(enabled), out_(out) {}

    void begin(const nlohmann::json& head, const std::string& array_key) {
        if (!enabled_) return;
        out_ << "{\n  \"schema_version\": " << json_schema_version;
        for (const auto& [key, value] : head.items()) out_ << ",\n  " << nlohmann::json(key).dump() << ": " << indented(value);
        out_ << ",\n  " << nlohmann::json(array_key).dump() << ": [";
        out_.flush();
    }

    void element(const nlohmann::json& value) {
        if (!enabled_) return;
        out_ << (first_ ? "\n    " : ",\n    ") << indented(value, "\n    ");
        first_ = false;
        out_.flush();
    }

    void end(const nlohmann::json& tail) {
        if (!enabled_) return;
        out_ << (first_ ? "]" : "\n  ]");
        for (const auto& [key, value] : tail.items()) out_ << ",\n  " << nlohmann::json(key).dump() << ": " << indented(value);
        out_ << "\n}\n";
        out_.flush();
    }

private:
    bool enabled_;
    std::ostream& out_;
    bool first_ = true;
};

}  // namespace mtctl
