// Kernel::connection_string adds application_name and connect_timeout where the user's string does
// not set them. It runs on every connection attempt, on many threads at once: it used to build a
// std::regex per call, which TSan reported as a race in libstdc++'s ctype<char>::narrow cache
// (issue 11); the tsan suite (tools/sanitize.sh tsan) runs the threaded case below.
#include "support/pg.hpp"

#include <mt/context/kernel.hpp>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace {

std::string connection_string_for(const std::string& url) {
    mt::test::TempDir dir;
    mt::test::write_file(dir.path() / "multitenant.ini",
                         "[database]\nurl = " + url + "\napplication_name = billing\nconnect_timeout = 2500ms\n");
    mt::ManifestInput input;
    input.file = dir.path() / "multitenant.ini";
    input.use_environment = false;
    return mt::Kernel(input).connection_string();
}

}  // namespace

TEST_CASE("connection_string adds application_name and connect_timeout only where the string lacks them",
          "[kernel]") {
    CHECK(connection_string_for("postgresql://u@127.0.0.1:5/db") ==
          "postgresql://u@127.0.0.1:5/db?application_name=billing&connect_timeout=3");
    CHECK(connection_string_for("postgresql://u@127.0.0.1:5/db?application_name=mine") ==
          "postgresql://u@127.0.0.1:5/db?application_name=mine&connect_timeout=3");
    CHECK(connection_string_for("postgresql://u@127.0.0.1:5/db?sslmode=disable&connect_timeout=7") ==
          "postgresql://u@127.0.0.1:5/db?sslmode=disable&connect_timeout=7&application_name=billing");
    // A password that looks like a parameter is not one.
    CHECK(connection_string_for("postgresql://u:application_name%3Dx@127.0.0.1:5/db") ==
          "postgresql://u:application_name%3Dx@127.0.0.1:5/db?application_name=billing&connect_timeout=3");
    CHECK(connection_string_for("host=127.0.0.1 dbname=db application_name = 'mine'") ==
          "host=127.0.0.1 dbname=db application_name = 'mine' connect_timeout='3'");
    CHECK(connection_string_for("host=127.0.0.1 dbname=db") ==
          "host=127.0.0.1 dbname=db application_name='billing' connect_timeout='3'");
}

TEST_CASE("connection_string gives the same answer on eight threads at once", "[kernel][concurrency]") {
    mt::test::TempDir dir;
    mt::test::write_file(dir.path() / "multitenant.ini",
                         "[database]\nurl = postgresql://u@127.0.0.1:5/db\napplication_name = billing\n");
    mt::ManifestInput input;
    input.file = dir.path() / "multitenant.ini";
    input.use_environment = false;
    const mt::Kernel kernel(input);
    // No call on this thread first: the threads' first calls are the ones that must not race.
    std::vector<std::string> first(8);
    std::vector<int> mismatches(8, 0);
    {
        std::vector<std::jthread> threads;
        for (size_t t = 0; t < first.size(); ++t)
            threads.emplace_back([&, t] {
                first[t] = kernel.connection_string();
                for (int i = 0; i < 200; ++i)
                    if (kernel.connection_string() != first[t]) ++mismatches[t];
            });
    }
    for (size_t t = 0; t < first.size(); ++t) {
        CHECK(first[t] == first[0]);
        CHECK(mismatches[t] == 0);
    }
    CHECK(first[0].rfind("postgresql://u@127.0.0.1:5/db?application_name=billing&connect_timeout=", 0) == 0);
}
