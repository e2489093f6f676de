// `mtctl --json ARGS` in a project: checks the exit code (with both streams in the failure
// message) and returns the parsed document (null when mtctl printed nothing).
#pragma once

#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace mt::test {

inline nlohmann::json run_json(const Project& p, const std::string& args, int expected_exit = 0) {
    const auto r = p.mtctl("--json " + args);
    INFO("mtctl " << args << "\nstdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == expected_exit);
    return r.out.empty() ? nlohmann::json() : nlohmann::json::parse(r.out);
}

}  // namespace mt::test
