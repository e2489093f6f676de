#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/pg.hpp"

int main(int argc, char* argv[]) {
    // A developer's MT_DATABASE__URL (or any manifest variable) must not reach an in-process kernel
    // or a child: each test sets the variables it means to test.
    mt::test::scrub_manifest_environment();
    return Catch::Session().run(argc, argv);
}
