// `mtctl --json ARGS` in a project: checks the exit code (with both streams in the failure
// message) and returns the parsed document (null when mtctl printed nothing).
#pragma once

#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace mt::test {

inline nlohmann::json run_json(const Project& p, const std::string& args, int expected_exit = 0) {
    const auto r = p.mtctl("--json " + args);
    INFO("mtctl " << args << "\nstdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == expected_exit);
    return r.out.empty() ? nlohmann::json() : nlohmann::json::parse(r.out);
}

// The ids of a fleet document's tenants, in its order; only those with `outcome` when given.
inline std::vector<std::string> ids_of(const nlohmann::json& doc, const std::string& outcome = "") {
    std::vector<std::string> ids;
    for (const auto& t : doc["tenants"])
        if (outcome.empty() || t["outcome"] == outcome) ids.push_back(t["id"].get<std::string>());
    return ids;
}

// Each tenant's outcome in a fleet document, by id.
inline std::map<std::string, std::string> outcomes(const nlohmann::json& doc) {
    std::map<std::string, std::string> m;
    for (const auto& t : doc["tenants"]) m[t["id"].get<std::string>()] = t["outcome"].get<std::string>();
    return m;
}

// One tenant's element of a fleet document; fails the test when it is absent.
inline nlohmann::json tenant_of(const nlohmann::json& doc, const std::string& id) {
    for (const auto& t : doc["tenants"])
        if (t["id"] == id) return t;
    FAIL("tenant " << id << " not in the report: " << doc.dump());
    return {};
}

// The run ledger's outcomes of one run, "id=outcome" in the run's order.
inline std::string ledger_outcomes(const Project& p, const std::string& run) {
    return p.scalar("SELECT string_agg(tenant || '=' || outcome, ' ' ORDER BY position) FROM public.mt_run_tenants"
                    " WHERE run_id = $1::bigint",
                    {run});
}

// Tenant ids a, b, c, ... (n of them).
inline std::vector<std::string> letters(size_t n) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < n; ++i) ids.push_back(std::string(1, static_cast<char>('a' + i)));
    return ids;
}

// How often the migrations that count their attempts in the sequence public.attempts ran.
inline int attempts(const Project& p) {
    const auto called = p.scalar("SELECT is_called FROM public.attempts");
    return called == "t" ? std::stoi(p.scalar("SELECT last_value FROM public.attempts")) : 0;
}

}  // namespace mt::test
