// The installed package as an outside plugin author meets it (SPEC §1.3, §3.2, §3.3): `cmake
// --install` of this build tree into a temp prefix, samples/discovery-file built against that prefix
// alone, and the installed mtctl using the sample through a manifest.
#include <mt/sdk/abi.h>

#include "support/pg.hpp"
#include "support/samples.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using json = nlohmann::json;
using mt::test::require_ok;
using mt::test::RunResult;
using mt::test::sample_flags;
using mt::test::shell_quote;

namespace {

// The staged install and the sample build, in `root` (prefix/ and build/). CTest runs the hidden
// fixture test below once per run (FIXTURES_SETUP, tests/CMakeLists.txt) into build/tests/sdk-stage
// and the [sdk] tests reuse it; run by hand, a test stages its own copy unless that one is newer
// than everything the install copies (mtctl, build/lib, the plugins).
class StagedSample {
public:
    static fs::path shared_root() { return mt::test::binary_dir() / "tests/sdk-stage"; }

    // Stages into root (emptied first); the marker file is written last.
    static void stage(const fs::path& root) {
        fs::remove_all(root);
        fs::create_directories(root / "prefix");
        fs::create_directories(root / "build");
        require_ok(mt::test::run("cmake --install " + shell_quote(mt::test::binary_dir().string()) + " --prefix " +
                                 shell_quote((root / "prefix").string())),
                   "cmake --install");
        // Only the prefix is given: the sample must configure from the installed package alone.
        require_ok(mt::test::run("cmake -S " + shell_quote((mt::test::source_dir() / "samples/discovery-file").string()) +
                                 " -B " + shell_quote((root / "build").string()) + " -DCMAKE_PREFIX_PATH=" +
                                 shell_quote((root / "prefix").string()) +
                                 " -DCMAKE_CXX_FLAGS=" + shell_quote(sample_flags())),
                   "configuring samples/discovery-file");
        require_ok(mt::test::run("cmake --build " + shell_quote((root / "build").string()) + " -j2"),
                   "building samples/discovery-file");
        REQUIRE(fs::is_regular_file(root / "build/discovery-file.so"));
        // A service against the installed package: samples/runtime links mtenant::runtime only.
        require_ok(mt::test::run("cmake -S " + shell_quote((mt::test::source_dir() / "samples/runtime").string()) +
                                 " -B " + shell_quote((root / "service").string()) + " -DCMAKE_PREFIX_PATH=" +
                                 shell_quote((root / "prefix").string()) +
                                 " -DCMAKE_CXX_FLAGS=" + shell_quote(sample_flags())),
                   "configuring samples/runtime");
        require_ok(mt::test::run("cmake --build " + shell_quote((root / "service").string()) + " -j2"),
                   "building samples/runtime");
        mt::test::write_file(root / "staged", "staged from " + mt::test::binary_dir().string() + "\n");
    }

    // The shared stage exists and no installed artefact was rebuilt after it.
    static bool shared_is_fresh() {
        std::error_code ec;
        const auto marker = shared_root() / "staged";
        if (!fs::exists(marker, ec)) return false;
        const auto staged_at = fs::last_write_time(marker, ec);
        std::vector<fs::path> built{MT_MTCTL};
        for (const auto& dir : {mt::test::binary_dir() / "lib", mt::test::plugin_dir()})
            for (const auto& e : fs::recursive_directory_iterator(dir, ec))
                if (e.is_regular_file()) built.push_back(e.path());
        for (const auto& f : built)
            if (fs::last_write_time(f, ec) > staged_at) return false;
        return true;
    }

    StagedSample() {
        if (shared_is_fresh()) {
            root_ = shared_root();
        } else {
            own_.emplace();
            root_ = own_->path();
            stage(root_);
        }
    }
    fs::path prefix() const { return root_ / "prefix"; }
    fs::path plugin() const { return root_ / "build/discovery-file.so"; }
    fs::path service() const { return root_ / "service/runtime-sample"; }
    // The installed mtctl, run in cwd.
    RunResult mtctl(const std::string& args, const fs::path& cwd) const {
        return mt::test::run("cd " + shell_quote(cwd.string()) + " && " +
                             shell_quote((prefix() / "bin/mtctl").string()) + " --no-color " + args);
    }

private:
    std::optional<mt::test::TempDir> own_;
    fs::path root_;
};

const StagedSample& staged() {
    static std::unique_ptr<StagedSample> sample;
    if (!sample) sample = std::make_unique<StagedSample>();
    return *sample;
}

std::string manifest(const StagedSample& s, const std::string& url, const std::string& plugin_section) {
    return "[database]\nurl = " + url +
           "\n\n[plugins]\npath = " + s.plugin().parent_path().string() +
           "\nload = tracking-name, discovery-file\n\n[roles]\ndiscovery = discovery-file\n\n" + plugin_section;
}

}  // namespace

// The fixture's setup (FIXTURES_SETUP sdk_staged): hidden from listing, run by CTest once.
TEST_CASE("sdk: stage the install and build the sample once", "[.sdk-stage]") {
    StagedSample::stage(StagedSample::shared_root());
    CHECK(StagedSample::shared_is_fresh());
}

TEST_CASE("cmake --install stages mtctl, the kernel, the plugins, the SDK headers and the CMake package", "[sdk]") {
    const auto& s = staged();
    // MT_INSTALL_LIBDIR: lib/<multiarch triplet> on Debian (MT_MULTIARCH_LIBDIR).
    const std::string lib = MT_INSTALL_LIBDIR;
    for (const std::string& file : std::vector<std::string>{"bin/mtctl", lib + "/libmtenant_runtime.so", lib + "/libmtenant_migrations.so",
                             "include/mt/sdk/abi.h", "include/mt/sdk/plugin.hpp", "include/mt/sdk/version.h", "include/mt/context/kernel.hpp",
                             "include/mt/plugin_host/plugins.hpp", "include/mt/runtime/tenant_manager.hpp",
                             "include/mt/migrations/migrate.hpp", lib + "/cmake/mtenant/mtenantConfig.cmake",
                             lib + "/cmake/mtenant/mtenantConfigVersion.cmake", lib + "/cmake/mtenant/mtenantTargets.cmake",
                             lib + "/cmake/mtenant/mtenant_plugin.cmake", lib + "/mtenant/plugins/discovery-sql.so",
                             lib + "/mtenant/plugins/discovery-static.so", lib + "/mtenant/plugins/tracking-name.so"}) {
        INFO(file);
        CHECK(fs::exists(s.prefix() / file));
    }

    // No manifest in the working directory: the installed mtctl lists what its kernel finds beside
    // itself (<libdir>/mtenant/plugins), through its $ORIGIN run path, without any environment help.
    mt::test::TempDir cwd;
    const auto r = s.mtctl("plugins --json", cwd.path());
    require_ok(r, "installed mtctl plugins --json");
    const auto doc = json::parse(r.out);
    std::set<std::string> available;
    for (const auto& p : doc.at("plugins")) {
        CHECK(p.at("status") == "available");
        CHECK_THAT(p.at("file").get<std::string>(), Contains((s.prefix() / MT_INSTALL_LIBDIR / "mtenant/plugins").string()));
        available.insert(p.at("name").get<std::string>());
    }
    for (const char* name : {"discovery-sql", "discovery-schemas", "discovery-static", "tracking-name", "tracking-hash",
                             "tracking-drizzle-kit", "retry-exponential"}) {
        INFO(name);
        CHECK(available.count(name) == 1);
    }
}

TEST_CASE("samples/runtime built against the installed package loads libmtenant_runtime and not the migration engine", "[sdk]") {
    const auto& s = staged();
    REQUIRE(fs::is_regular_file(s.service()));
    const auto needed = mt::test::run("readelf -d " + shell_quote(s.service().string()));
    require_ok(needed, "readelf -d runtime-sample");
    CHECK_THAT(needed.out, Contains("[libmtenant_runtime.so." + std::to_string(MT_SOVERSION) + "]"));
    CHECK_THAT(needed.out, !Contains("libmtenant_migrations") && !Contains("libmtenant_kernel"));

    // It starts from the installed library (its run path) and stops at the missing manifest.
    mt::test::TempDir cwd;
    const auto r = mt::test::run("cd " + shell_quote(cwd.path().string()) + " && env -u MT_DATABASE__URL -u MT_CONFIG " +
                                 shell_quote(s.service().string()));
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Contains("no manifest file: database.url: is required"));
}

TEST_CASE("samples/discovery-file built against the installed package serves mtctl tenant list", "[sdk][pg]") {
    const std::string url = mt::test::admin_url();  // before the slow part: fail fast without a database
    const auto& s = staged();

    const auto inspected = s.mtctl("plugins inspect --json " + shell_quote(s.plugin().string()), fs::current_path());
    require_ok(inspected, "mtctl plugins inspect");
    const auto info = json::parse(inspected.out);
    CHECK(info.at("name") == "discovery-file");
    CHECK(info.at("abi") == "1." + std::to_string(MT_ABI_MINOR));
    CHECK(info.at("abi_required_minor") == 0);
    CHECK(info.at("note").at("kinds") == 1u << MT_KIND_TENANT_DISCOVERY);
    REQUIRE(info.at("factories").size() == 1);
    CHECK(info.at("factories")[0].at("kind") == "tenant_discovery");
    CHECK(info.at("factories")[0].at("name") == "discovery-file");
    CHECK(info.at("factories")[0].at("config_keys") == json::array({"file"}));

    // A relative `file` is taken against the working directory, where the manifest is too here.
    mt::test::TempDir project;
    mt::test::write_file(project / "tenants.txt",
                         "# tenants of this deployment\n"
                         "acme\n"
                         "  globex   # trailing comment\n"
                         "\n"
                         "initech@eu1\r\n");
    mt::test::write_file(project / "multitenant.ini",
                         manifest(s, url, "[plugin.discovery-file]\nfile = tenants.txt\n"));

    const auto listed = s.mtctl("tenant list --json", project.path());
    require_ok(listed, "installed mtctl tenant list --json");
    const auto doc = json::parse(listed.out);
    CHECK(doc.at("total") == 3);
    std::vector<std::string> ids;
    for (const auto& t : doc.at("tenants")) ids.push_back(t.at("id").get<std::string>());
    CHECK(ids == std::vector<std::string>{"acme", "globex", "initech"});
    CHECK(doc.at("tenants")[0].at("schema") == "tenant_acme");
    CHECK(doc.at("tenants")[0].at("server").is_null());
    CHECK(doc.at("tenants")[2].at("server") == "eu1");

    SECTION("the loaded plugin is listed with its file") {
        const auto r = s.mtctl("plugins", project.path());
        require_ok(r, "installed mtctl plugins");
        CHECK_THAT(r.out, Contains("discovery-file") && Contains(s.plugin().string()) && Contains("loaded"));
    }
    SECTION("a missing tenant file is an error naming the file") {
        const auto r = s.mtctl("tenant list --plugin.discovery-file.file=absent.txt", project.path());
        // The plugin's discover() fails at run time: the operation failed (1), not a crash.
        CHECK(r.exit_code == 1);
        CHECK_THAT(r.err, Contains((project / "absent.txt").string()) && Contains("no such file"));
    }
    SECTION("a tenant listed twice is an error naming the file and line") {
        mt::test::write_file(project / "twice.txt", "acme\nacme\n");
        const auto r = s.mtctl("tenant list --plugin.discovery-file.file=twice.txt", project.path());
        CHECK(r.exit_code == 1);
        CHECK_THAT(r.err, Contains((project / "twice.txt").string() + ":2"));
    }
    SECTION("without the file key the plugin refuses its config") {
        mt::test::write_file(project / "multitenant.ini", manifest(s, url, ""));
        const auto r = s.mtctl("tenant list", project.path());
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Contains("discovery-file.so") && Contains("config") && Contains("file: is required"));
    }
}

TEST_CASE("the sample plugin exports only mt_plugin_entry_v1", "[sdk]") {
    const auto& s = staged();
    const auto r = mt::test::run("nm -D --defined-only " + shell_quote(s.plugin().string()));
    require_ok(r, "nm -D --defined-only");
    std::vector<std::string> symbols;
    std::istringstream lines(r.out);
    std::string address, type, name;
    while (lines >> address >> type >> name) symbols.push_back(name);
    INFO(r.out);
    CHECK(symbols == std::vector<std::string>{"mt_plugin_entry_v1"});
}
