// discovery-file: a tenant_discovery plugin that reads the tenant list from a text file, one id per
// line, optionally routed to a server as `id@server`. `#` starts a comment; blank lines are ignored.
//
// It is the sample of a plugin written outside the mtenant tree: it includes only the installed SDK
// header and is built with find_package(mtenant) + mtenant_add_plugin (see CMakeLists.txt, README.md).
#include <mt/sdk/plugin.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace mt::sdk;

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

class FileDiscovery final : public TenantDiscovery {
public:
    // The plugin sees only the configured string, not where the manifest lives, so a relative path
    // is taken against the working directory of the process, resolved once here at start-up.
    FileDiscovery(const Config& config, const Host&) {
        const std::string configured = config.require("file");
        std::error_code ec;
        file_ = fs::absolute(configured, ec).lexically_normal();
        if (ec) throw ConfigError("file", "cannot resolve '" + configured + "': " + ec.message());
    }

    // Read on every call, so an edited file is picked up without restarting a long-running service.
    std::vector<DiscoveredTenant> discover(Sql&) override {
        std::error_code ec;
        if (fs::is_directory(file_, ec)) throw unreadable("it is a directory");
        std::ifstream in(file_);
        if (!in) {
            const int open_errno = errno;
            throw unreadable(fs::exists(file_, ec) ? std::strerror(open_errno) : "no such file");
        }
        std::vector<DiscoveredTenant> out;
        std::map<std::string, int> first_seen;  // id -> line number
        std::string line;
        for (int number = 1; std::getline(in, line); ++number) {
            if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
            const std::string item = trim(line);
            if (item.empty()) continue;
            DiscoveredTenant tenant;
            if (const auto at = item.find('@'); at == std::string::npos) {
                tenant.id = item;
            } else {
                tenant.id = trim(item.substr(0, at));
                tenant.server = trim(item.substr(at + 1));
                if (tenant.server->empty()) throw error_at(number, "'" + item + "' names no server after '@'");
            }
            if (tenant.id.empty()) throw error_at(number, "'" + item + "' has no tenant id");
            if (const auto [it, inserted] = first_seen.emplace(tenant.id, number); !inserted)
                throw error_at(number, "tenant '" + tenant.id + "' is already listed on line " + std::to_string(it->second));
            out.push_back(std::move(tenant));
        }
        if (in.bad()) throw unreadable(std::strerror(errno));
        return out;
    }

private:
    // The kernel prefixes these with the plugin's name and the failing call.
    Error unreadable(const std::string& why) const {
        return Error("cannot read tenant file " + file_.string() + ": " + why +
                     " (set [plugin.discovery-file] file; a relative path is taken against the working directory)");
    }

    Error error_at(int line, const std::string& what) const {
        return Error(file_.string() + ":" + std::to_string(line) + ": " + what);
    }

    fs::path file_;
};

}  // namespace

MT_PLUGIN("discovery-file", MT_SDK_VERSION, MT_FACTORY(FileDiscovery, "discovery-file", "file"))
