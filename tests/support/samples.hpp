// Building the samples against an installed mtenant (a `cmake --install` prefix, or the Debian
// packages unpacked into a root): shared by sdk_install_test.cpp and package_test.cpp.
#pragma once

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace mt::test {

inline std::string tail(const std::string& text, size_t n = 4000) {
    return text.size() <= n ? text : "…" + text.substr(text.size() - n);
}

inline void require_ok(const RunResult& r, const std::string& what) {
    INFO(what << " exited " << r.exit_code << "\nstdout:\n" << tail(r.out) << "\nstderr:\n" << tail(r.err));
    REQUIRE(r.exit_code == 0);
}

// The samples' compile flags: -Werror (the installed SDK headers compile cleanly in an outside
// project) plus this tree's CMAKE_CXX_FLAGS, so that in a sanitizer tree the sample is instrumented
// like the installed libraries it links (an uninstrumented executable cannot load an ASan library).
inline std::string sample_flags() { return std::string("-Wall -Wextra -Wpedantic -Werror ") + MT_PRODUCT_CXX_FLAGS; }

// The shell command that configures and builds samples/<sample> into `build` with CMake, finding
// mtenant through `cmake_args` (e.g. -DCMAKE_PREFIX_PATH=<prefix>).
inline std::string cmake_sample_command(const std::string& sample, const std::filesystem::path& build,
                                        const std::string& cmake_args) {
    return "cmake -S " + shell_quote((source_dir() / "samples" / sample).string()) + " -B " +
           shell_quote(build.string()) + " " + cmake_args + " -DCMAKE_CXX_FLAGS=" + shell_quote(sample_flags()) +
           " && cmake --build " + shell_quote(build.string()) + " -j2";
}

}  // namespace mt::test
