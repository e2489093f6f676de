// mt::TenantDirectory (the adapters' "unknown tenant" cache): one query per load, reload on a miss
// at most once per interval, periodic refresh, only schemas the template and id rules accept, and
// a failed load reported (not answered with "unknown").
#include "support/http.hpp"
#include "support/wait.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_directory.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <thread>

using namespace mt::test;
using namespace std::chrono_literals;

TEST_CASE("the tenant directory loads once, and reloads on a miss at most once per interval", "[adapter][pg][serial]") {
    Project p;
    p.tenants({"acme", "Globex"});
    p.exec("CREATE SCHEMA other; CREATE SCHEMA \"tenant_a b\"; CREATE SCHEMA tenant_");  // not tenant schemas
    mt::Kernel kernel(manifest_of(p));
    mt::TenantManager manager(kernel);
    mt::TenantDirectory directory(manager, {30s, 200ms});
    CHECK(directory.loads() == 0);

    CHECK(directory.contains("acme"));
    CHECK(directory.contains("Globex"));
    CHECK_FALSE(directory.contains("globex"));  // ids are case-sensitive; this miss reloads once
    CHECK(directory.size() == 2);
    const auto loads = directory.loads();
    CHECK(loads <= 2);
    for (int i = 0; i < 50; ++i) CHECK_FALSE(directory.contains("nobody" + std::to_string(i)));
    CHECK(directory.loads() <= loads + 1);
    CHECK_FALSE(directory.contains("a b"));  // invalid ids are simply not there
    CHECK_FALSE(directory.contains("other"));
    CHECK_FALSE(directory.contains(""));

    p.tenants({"initech"});
    // Found by a miss once miss_refresh_interval has passed: the background refresh (30 s) comes
    // after this deadline, so only the miss path can find it.
    wait_until([&] { return directory.contains("initech"); }, "a miss to reload the directory and find initech", 20s);
}

TEST_CASE("the tenant directory refreshes in the background: dropped tenants disappear", "[adapter][pg]") {
    Project p;
    p.tenants({"acme", "globex"});
    mt::Kernel kernel(manifest_of(p));
    mt::TenantManager manager(kernel);
    mt::TenantDirectory directory(manager, {100ms, 10s});
    CHECK(directory.contains("globex"));
    p.exec("DROP SCHEMA tenant_globex");
    // Only the background refresh can see it: no call here misses (a miss reloads only every 10 s).
    wait_until([&] { return directory.size() == 1; }, "the background refresh to drop globex");
    CHECK(directory.contains("acme"));
}

TEST_CASE("the tenant directory reports a failed load instead of answering unknown", "[adapter]") {
    TempDir dir;
    write_file(dir / "multitenant.ini", "[database]\nurl = postgresql://postgres@127.0.0.1:1/none\nconnect_timeout = 1s\n");
    mt::ManifestInput in;
    in.file = dir / "multitenant.ini";
    in.use_environment = false;
    mt::Kernel kernel(in);
    mt::TenantManager manager(kernel);
    mt::TenantDirectory directory(manager, {0ms, 10s});
    CHECK_THROWS_AS(directory.contains("acme"), mt::DatabaseUnavailable);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(directory.contains("acme"), mt::DatabaseUnavailable);  // within the interval: no new attempt
    CHECK(std::chrono::steady_clock::now() - t0 < 50ms);
    CHECK(directory.loads() == 0);
}
