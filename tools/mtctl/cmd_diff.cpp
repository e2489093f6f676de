// mtctl diff: tenants grouped by catalog fingerprint, each group's differences from the reference
// tenant listed object by object. Exit 1 on drift (more than one group, or a tenant without its
// schema), 0 when every selected tenant's structure is identical.
#include "cli.hpp"
#include "json.hpp"

#include <mt/fleet/commands.hpp>
#include <mt/fleet/drift.hpp>

#include <iostream>

namespace mtctl {

namespace {

using nlohmann::json;

// Tenants named per group in the human output; JSON lists them all.
constexpr size_t kTenantsShown = 10;

std::string object_label(const mt::DriftDifference& d) {
    return d.kind + " " + (d.name.empty() ? d.table : d.table + "." + d.name);
}

std::string tenant_list(const std::vector<mt::Tenant>& tenants) {
    std::string out;
    for (size_t i = 0; i < tenants.size() && i < kTenantsShown; ++i) out += (i ? ", " : "") + tenants[i].id;
    if (tenants.size() > kTenantsShown) out += " … and " + std::to_string(tenants.size() - kTenantsShown) + " more";
    return out;
}

int cmd_diff(const Invocation& inv, const Output& out) {
    po::options_description desc("diff options");
    add_tenant_selection(desc);
    desc.add_options()("reference", po::value<std::string>()->value_name("ID"),
                       "the tenant whose structure is expected (default: the first tenant of the largest group)");
    const auto vm = parse_options(inv, desc);
    // Like status: the whole fleet unless a selection is given.
    const auto report = mt::command::diff(inv.globals.manifest_input(),
                                          {tenant_selection(vm), optional_flag<std::string>(vm, "reference")});

    json groups = json::array();
    for (const auto& g : report.groups) {
        json ids = json::array(), differences = json::array();
        for (const auto& t : g.tenants) ids.push_back(t.id);
        for (const auto& d : g.differences)
            differences.push_back({{"kind", d.kind},
                                   {"table", d.table},
                                   {"name", d.name.empty() ? json(nullptr) : json(d.name)},
                                   {"change", mt::to_string(d.change)},
                                   {"expected", d.change == mt::DriftChange::extra ? json(nullptr) : json(d.expected)},
                                   {"actual", d.change == mt::DriftChange::missing ? json(nullptr) : json(d.actual)}});
        groups.push_back({{"fingerprint", g.fingerprint},
                          {"reference", g.reference},
                          {"size", g.tenants.size()},
                          {"objects", g.objects},
                          {"tenants", ids},
                          {"differences", differences}});
    }
    json missing = json::array();
    for (const auto& t : report.missing_schemas) missing.push_back(tenant_json(t));
    out.json({{"identical", !report.drift()},
              {"reference", report.reference ? tenant_json(*report.reference) : json(nullptr)},
              {"groups", groups},
              {"missing_schemas", missing},
              {"summary",
               {{"tenants", report.total},
                {"groups", report.groups.size()},
                {"drifted", report.drifted},
                {"missing_schemas", report.missing_schemas.size()},
                {"duration_ms", report.duration_ms}}}});

    if (!inv.globals.json) {
        for (const auto& t : report.missing_schemas)
            std::cerr << out.paint("MISSING", "31") << " " << t.id << ": schema " << t.schema << " does not exist\n";
        for (size_t i = 0; i < report.groups.size() && !inv.globals.quiet; ++i) {
            const auto& g = report.groups[i];
            out.info((g.reference ? out.paint("reference", "32") : out.paint("group " + std::to_string(i + 1), "33")) +
                     " " + g.fingerprint.substr(0, 12) + ": " + std::to_string(g.tenants.size()) + " tenant" +
                     (g.tenants.size() == 1 ? "" : "s") + ", " + std::to_string(g.objects) + " objects: " +
                     tenant_list(g.tenants));
            for (const auto& d : g.differences) {
                std::string text = "  " + object_label(d) + ": " + mt::to_string(d.change);
                if (d.change == mt::DriftChange::missing) text += " (expected: " + d.expected + ")";
                else if (d.change == mt::DriftChange::extra) text += " (found: " + d.actual + ")";
                else text += "\n    expected: " + d.expected + "\n    found:    " + d.actual;
                out.info(text);
            }
        }
        std::string line = "diff: " + std::to_string(report.total) + " tenants, " +
                           std::to_string(report.groups.size()) + " structure" +
                           (report.groups.size() == 1 ? "" : "s");
        if (report.reference) line += " (reference " + report.reference->id + ")";
        line += report.drift() ? "; " + std::to_string(report.drifted) + (report.drifted == 1 ? " tenant" : " tenants") +
                                    " drifted"
                              : "; identical";
        if (!report.missing_schemas.empty())
            line += ", " + std::to_string(report.missing_schemas.size()) + " without a schema";
        out.line(line + "; " + seconds(report.duration_ms));
    }
    return report.drift() ? 1 : 0;
}

const bool registered = register_command(
    {"diff", "diff [--all | --tenant ID | --tenants a,b] [--reference ID]",
     "structural drift: tenants grouped by catalog fingerprint; exit 1 on drift", 55, cmd_diff});

}  // namespace

}  // namespace mtctl
