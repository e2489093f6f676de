// mtctl doctor: one line per check, each ok / warn / fail / skip with what to do.
#pragma once

#include <mt/manifest.hpp>

#include <string>
#include <vector>

namespace mt {

enum class CheckStatus { ok, warn, fail, skip };
std::string to_string(CheckStatus);

struct Check {
    std::string name;
    CheckStatus status = CheckStatus::ok;
    std::string detail;  // what was found
    std::string hint;    // what to do (warn/fail)
};

struct DoctorReport {
    std::vector<Check> checks;
    bool failed() const;
};

// Runs every check it can; a failed stage marks the checks that depend on it as skipped.
DoctorReport run_doctor(const ManifestInput& input);

}  // namespace mt
