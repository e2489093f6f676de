// The Debian packages as a user meets them (issue 15, docs/packaging.md): cpack builds mtenant,
// libmtenant<SOVERSION> and libmtenant-dev from this build tree, lintian finds no error in them, and
// unpacked into a throwaway root (dpkg -x, never onto this machine) the installed mtctl runs and finds
// its plugins, the man pages render, the completions are in place, and the samples build against the
// installed -dev package with CMake and with pkg-config + c++.
// Not compiled in the sanitizer trees (MT_TESTS_EXCLUDE_TAGS=package in CMakePresets.json).
#include "support/pg.hpp"
#include "support/samples.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using json = nlohmann::json;
using mt::test::require_ok;
using mt::test::RunResult;
using mt::test::shell_quote;

namespace {

const std::string version = MT_PROJECT_VERSION;
const std::string libs_package = "libmtenant" + std::to_string(MT_SOVERSION);

std::string q(const fs::path& p) { return shell_quote(p.string()); }

// The three packages built and unpacked once per process (one TEST_CASE, its SECTIONs share it).
struct Unpacked {
    mt::test::TempDir dir;
    fs::path debs = dir / "debs";
    fs::path root = dir / "root";
    std::string cpack_output;
    std::map<std::string, fs::path> deb;  // package name -> file

    Unpacked() {
        fs::create_directories(debs);
        fs::create_directories(root);
        const auto packed = mt::test::run("cd " + q(mt::test::binary_dir()) + " && cpack --config CPackConfig.cmake -B " +
                                          q(debs));
        require_ok(packed, "cpack");
        cpack_output = packed.out;
        for (const auto& e : fs::directory_iterator(debs))
            if (e.path().extension() == ".deb") deb[e.path().filename().string().substr(0, e.path().filename().string().find('_'))] = e.path();
        for (const auto& [name, file] : deb)
            require_ok(mt::test::run("dpkg -x " + q(file) + " " + q(root)), "dpkg -x " + file.string());
        // lintian takes a while: it runs while the other sections build and run things.
        std::string args;
        for (const auto& [name, file] : deb) args += " " + q(file);
        lintian = std::async(std::launch::async, [args] { return mt::test::run("lintian --tag-display-limit 0" + args); });
    }
    mutable std::shared_future<RunResult> lintian;
    fs::path usr() const { return root / "usr"; }
    fs::path libdir() const { return usr() / MT_INSTALL_LIBDIR; }
    // Runs an installed program with the root's libraries first (its RUNPATH finds them too).
    RunResult installed(const std::string& command, const fs::path& cwd) const {
        return mt::test::run("cd " + q(cwd) + " && env LD_LIBRARY_PATH=" + q(libdir()) + " " + command);
    }
};

const Unpacked& unpacked() {
    static std::unique_ptr<Unpacked> u;
    if (!u) u = std::make_unique<Unpacked>();
    return *u;
}

std::string field(const fs::path& deb, const std::string& name) {
    const auto r = mt::test::run("dpkg-deb --field " + q(deb) + " " + name);
    require_ok(r, "dpkg-deb --field " + name);
    return r.out.substr(0, r.out.find_last_not_of('\n') + 1);
}

std::set<std::string> contents(const fs::path& deb) {
    const auto r = mt::test::run("dpkg-deb --fsys-tarfile " + q(deb) + " | tar -t");
    require_ok(r, "listing " + deb.string());
    std::set<std::string> files;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line.back() != '/') files.insert(line.substr(1));  // "./usr/bin/mtctl" -> "/usr/bin/mtctl"
    return files;
}

}  // namespace

TEST_CASE("cpack's Debian packages pass lintian and work unpacked into a throwaway root", "[package]") {
    const auto& u = unpacked();
    REQUIRE(u.deb.size() == 3);
    REQUIRE(u.deb.count("mtenant"));
    REQUIRE(u.deb.count(libs_package));
    REQUIRE(u.deb.count("libmtenant-dev"));
    const std::string lib = "/usr/" MT_INSTALL_LIBDIR;

    SECTION("versions, dependencies and files") {
        for (const auto& [name, file] : u.deb) {
            INFO(name);
            CHECK(field(file, "Version") == version);
            CHECK_FALSE(field(file, "Maintainer").empty());
            CHECK(contents(file).count("/usr/share/doc/" + name + "/copyright") == 1);
            CHECK(contents(file).count("/usr/share/doc/" + name + "/changelog.gz") == 1);
        }
        // dpkg-shlibdeps' system libraries, and ours as the inter-package dependency.
        const auto tool_depends = field(u.deb.at("mtenant"), "Depends");
        CHECK_THAT(tool_depends, Contains(libs_package + " (= " + version + ")") && Contains("libc6") &&
                                     Contains("libstdc++6") && Contains("libprometheus-cpp-core"));
        CHECK_THAT(field(u.deb.at(libs_package), "Depends"), Contains("libpqxx") && Contains("libcpp-httplib"));
        CHECK_THAT(field(u.deb.at("libmtenant-dev"), "Depends"),
                   Contains(libs_package + " (= " + version + ")") && Contains("libpqxx-dev"));
        CHECK(field(u.deb.at(libs_package), "Section") == "libs");
        CHECK(field(u.deb.at("libmtenant-dev"), "Section") == "libdevel");

        const auto tool = contents(u.deb.at("mtenant"));
        for (const std::string& file : std::vector<std::string>{"/usr/bin/mtctl", lib + "/mtenant/plugins/discovery-sql.so",
                                       lib + "/mtenant/plugins/tracking-name.so", "/usr/share/man/man1/mtctl.1.gz",
                                       "/usr/share/man/man5/multitenant.ini.5.gz",
                                       "/usr/share/bash-completion/completions/mtctl",
                                       "/usr/share/zsh/vendor-completions/_mtctl"}) {
            INFO(file);
            CHECK(tool.count(file) == 1);
        }
        // The runtime package holds the versioned libraries only; the -dev one their links.
        const auto libs = contents(u.deb.at(libs_package));
        const auto dev = contents(u.deb.at("libmtenant-dev"));
        for (const std::string& name : std::vector<std::string>{"mtenant_runtime", "mtenant_migrations", "mtenant_adapter_httplib", "mtenant_adapter_beast"}) {
            INFO(name);
            CHECK(libs.count(lib + "/lib" + name + ".so." + std::to_string(MT_SOVERSION)) == 1);
            CHECK(libs.count(lib + "/lib" + name + ".so") == 0);
            CHECK(dev.count(lib + "/lib" + name + ".so") == 1);
        }
        for (const std::string& file : std::vector<std::string>{"/usr/include/mt/sdk/abi.h", "/usr/include/mt/sdk/version.h",
                                       "/usr/include/mt/runtime/tenant_manager.hpp", lib + "/cmake/mtenant/mtenantConfig.cmake",
                                       lib + "/pkgconfig/mtenant.pc", lib + "/pkgconfig/mtenant-httplib.pc"}) {
            INFO(file);
            CHECK(dev.count(file) == 1);
        }
        // The SONAME follows MT_SOVERSION, not the project version.
        const auto soname = mt::test::run("readelf -d " + q(u.root / lib.substr(1) / ("libmtenant_runtime.so." + std::to_string(MT_SOVERSION))));
        CHECK_THAT(soname.out, Contains("Library soname: [libmtenant_runtime.so." + std::to_string(MT_SOVERSION) + "]"));
    }

    SECTION("the installed mtctl runs and lists the plugins beside its kernel") {
        mt::test::TempDir cwd;  // no manifest here
        const auto v = u.installed(q(u.usr() / "bin/mtctl") + " --version", cwd.path());
        require_ok(v, "installed mtctl --version");
        CHECK_THAT(v.out, Contains("mtctl " + version));
        const auto r = u.installed(q(u.usr() / "bin/mtctl") + " --json plugins", cwd.path());
        require_ok(r, "installed mtctl plugins");
        const auto doc = json::parse(r.out);
        std::set<std::string> names;
        for (const auto& p : doc.at("plugins")) {
            CHECK_THAT(p.at("file").get<std::string>(), Contains((u.libdir() / "mtenant/plugins").string()));
            names.insert(p.at("name").get<std::string>());
        }
        for (const char* name : {"discovery-sql", "tracking-name", "tracking-hash", "tracking-drizzle-kit", "retry-exponential",
                                 "metrics-prometheus", "extract-header"}) {
            INFO(name);
            CHECK(names.count(name) == 1);
        }
    }

    SECTION("the man pages render without warnings and the completions are in place") {
        for (const std::string& page : std::vector<std::string>{"man1/mtctl.1.gz", "man5/multitenant.ini.5.gz"}) {
            const auto file = u.usr() / "share/man" / page;
            const auto groff = mt::test::run("zcat " + q(file) + " | groff -ww -man -Tutf8 -z");
            INFO(page << ": " << groff.err);
            CHECK(groff.exit_code == 0);
            CHECK(groff.err.empty());
            const auto man = mt::test::run("MANWIDTH=80 man -l " + q(file) + " | col -b");
            INFO(man.err);
            CHECK(man.exit_code == 0);
            CHECK(man.err.empty());
            CHECK_THAT(man.out, Contains(page[3] == '1' ? "EXIT STATUS" : "pool_size"));
        }
        const auto bash = mt::test::run("bash -c " + shell_quote("source " + q(u.usr() / "share/bash-completion/completions/mtctl") +
                                                                 " && complete -p mtctl"));
        CHECK(bash.exit_code == 0);
        CHECK_THAT(bash.out, Contains("-F _mtctl mtctl"));
        CHECK_THAT(mt::test::read_file(u.usr() / "share/zsh/vendor-completions/_mtctl"), Contains("#compdef mtctl"));
    }

    SECTION("the samples build against the installed -dev package with CMake and with pkg-config") {
        mt::test::TempDir work;
        const std::string prefix = "-DCMAKE_PREFIX_PATH=" + q(u.usr()) + " -DCMAKE_FIND_ROOT_PATH=" + q(u.root);
        // pkg-config finds the root's .pc files; --define-variable relocates their prefix=/usr.
        const std::string pc = "PKG_CONFIG_PATH=" + q(u.libdir() / "pkgconfig") + " pkg-config --define-variable=prefix=" +
                               q(u.usr()) + " ";
        const std::string cxx = "c++ " + mt::test::sample_flags() + " ";
        const auto src = mt::test::source_dir() / "samples";
        struct Build {
            std::string what, command;
            fs::path product;
        };
        const std::vector<Build> builds = {
            {"discovery-file with CMake", mt::test::cmake_sample_command("discovery-file", work / "df-cmake", prefix),
             work / "df-cmake/discovery-file.so"},
            {"http-service with CMake", mt::test::cmake_sample_command("http-service", work / "hs-cmake", prefix),
             work / "hs-cmake/http-service"},
            {"discovery-file with pkg-config",
             cxx + "-shared -fPIC -fvisibility=hidden " + q(src / "discovery-file/discovery_file.cpp") + " -o " +
                 q(work / "discovery-file.so") + " $(" + pc + "--cflags mtenant)",
             work / "discovery-file.so"},
            {"http-service with pkg-config",
             cxx + q(src / "http-service/main.cpp") + " -o " + q(work / "http-service") + " $(" + pc +
                 "--cflags --libs mtenant-httplib) -lboost_program_options -Wl,-rpath-link," + q(u.libdir()),
             work / "http-service"},
        };
        // The four builds at once (each is one compiler); the assertions after, on this thread.
        std::vector<std::future<RunResult>> running;
        for (const auto& b : builds) running.push_back(std::async(std::launch::async, [&b] { return mt::test::run(b.command); }));
        for (size_t i = 0; i < builds.size(); ++i) {
            const auto r = running[i].get();
            INFO(builds[i].command);
            require_ok(r, builds[i].what);
            CHECK(fs::is_regular_file(builds[i].product));
        }
        // The service built with pkg-config links the root's libraries and starts from them: it stops
        // at the missing manifest with the kernel's own message (a wrong library would not load).
        mt::test::TempDir cwd;
        const auto needed = mt::test::run("readelf -d " + q(work / "http-service"));
        CHECK_THAT(needed.out, Contains("[libmtenant_adapter_httplib.so." + std::to_string(MT_SOVERSION) + "]"));
        const auto started = u.installed("env -u MT_DATABASE__URL -u MT_CONFIG -u DATABASE_URL " + q(work / "http-service"), cwd.path());
        INFO(started.out << started.err);
        CHECK(started.exit_code == 2);
        CHECK_THAT(started.err, Contains("no manifest file: database.url: is required"));
        const auto inspected = u.installed(q(u.usr() / "bin/mtctl") + " --json plugins inspect " + q(work / "discovery-file.so"),
                                           cwd.path());
        require_ok(inspected, "mtctl plugins inspect of the pkg-config-built plugin");
        CHECK(json::parse(inspected.out).at("name") == "discovery-file");
    }

    SECTION("lintian reports no error") {
        const auto& r = u.lintian.get();
        INFO("lintian:\n" << r.out << r.err);
        std::vector<std::string> errors;
        std::istringstream lines(r.out);
        for (std::string line; std::getline(lines, line);)
            if (line.rfind("E: ", 0) == 0) errors.push_back(line);
        CHECK(errors.empty());
        CHECK(r.exit_code == 0);
    }
}
