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

// The --json document, written straight to stdout: a group's tenant ids come from the compact
// membership one by one, so that a group of 100,000 tenants is never a JSON array in memory.
void write_json(const mt::DriftReport& report) {
    const auto& m = *report.members;
    auto& o = std::cout;
    o << "{\n  \"schema_version\": " << json_schema_version << ",\n  \"identical\": " << (report.drift() ? "false" : "true")
      << ",\n  \"reference\": " << indented(report.reference ? tenant_json(*report.reference) : json(nullptr))
      << ",\n  \"groups\": [";
    for (size_t g = 0; g < report.groups.size(); ++g) {
        const auto& group = report.groups[g];
        json differences = json::array();
        for (const auto& d : group.differences)
            differences.push_back({{"kind", d.kind},
                                   {"table", d.table},
                                   {"name", d.name.empty() ? json(nullptr) : json(d.name)},
                                   {"change", mt::to_string(d.change)},
                                   {"expected", d.change == mt::DriftChange::extra ? json(nullptr) : json(d.expected)},
                                   {"actual", d.change == mt::DriftChange::missing ? json(nullptr) : json(d.actual)}});
        const json head{{"fingerprint", group.fingerprint},
                        {"reference", group.reference},
                        {"size", group.size},
                        {"objects", group.objects},
                        {"differences", differences}};
        std::string text = indented(head, "\n    ");
        text.resize(text.size() - 6);  // the closing "\n    }"
        o << (g ? ",\n    " : "\n    ") << text << ",\n      \"tenants\": [";
        for (size_t k = m.begin[g]; k < m.begin[g + 1]; ++k)
            o << (k == m.begin[g] ? "\n        " : ",\n        ") << json(m.tenants[m.order[k]].id).dump();
        o << (m.begin[g] == m.begin[g + 1] ? "]" : "\n      ]") << "\n    }";
    }
    o << (report.groups.empty() ? "]" : "\n  ]") << ",\n  \"missing_schemas\": [";
    const size_t none = report.groups.size();
    for (size_t k = m.begin[none]; k < m.begin[none + 1]; ++k)
        o << (k == m.begin[none] ? "\n    " : ",\n    ") << indented(tenant_json(m.tenants[m.order[k]]), "\n    ");
    o << (report.without_schema ? "\n  ]" : "]") << ",\n  \"summary\": "
      << indented(json{{"tenants", report.total},
                       {"groups", report.groups.size()},
                       {"drifted", report.drifted},
                       {"missing_schemas", report.without_schema},
                       {"duration_ms", report.duration_ms}})
      << "\n}\n";
    o.flush();
}

// The first kTenantsShown ids of group g (the tenants without a schema: g = groups.size()).
std::string tenant_list(const mt::DriftMembers& m, size_t g) {
    std::string out;
    const size_t n = m.begin[g + 1] - m.begin[g];
    for (size_t k = 0; k < n && k < kTenantsShown; ++k) out += (k ? ", " : "") + m.tenants[m.order[m.begin[g] + k]].id;
    if (n > kTenantsShown) out += " … and " + std::to_string(n - kTenantsShown) + " more";
    return out;
}

int cmd_diff(const Invocation& inv, const Output& out) {
    po::options_description desc("diff options");
    add_tenant_selection(desc);
    desc.add_options()("reference", po::value<std::string>()->value_name("ID"),
                       "the tenant whose structure is expected (default: the first tenant of the largest group)");
    const auto vm = parse_options(inv, desc);
    // Like status: the whole fleet unless a selection is given. The groups are known only once every
    // tenant is read, so diff prints at the end, from a membership of 8 bytes per tenant.
    const auto report = mt::command::diff(inv.globals.manifest_input(),
                                          {tenant_selection(vm), optional_flag<std::string>(vm, "reference"), true});
    const auto& m = *report.members;
    if (inv.globals.json) {
        write_json(report);
    } else {
        const size_t none = report.groups.size();
        for (size_t k = m.begin[none]; k < m.begin[none + 1]; ++k) {
            const auto& t = m.tenants[m.order[k]];
            std::cerr << out.paint("MISSING", "31") << " " << t.id << ": schema " << t.schema << " does not exist\n";
        }
        for (size_t i = 0; i < report.groups.size() && !inv.globals.quiet; ++i) {
            const auto& g = report.groups[i];
            out.info((g.reference ? out.paint("reference", "32") : out.paint("group " + std::to_string(i + 1), "33")) +
                     " " + g.fingerprint.substr(0, 12) + ": " + std::to_string(g.size) + " tenant" +
                     (g.size == 1 ? "" : "s") + ", " + std::to_string(g.objects) + " objects: " + tenant_list(m, i));
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
        if (report.without_schema) line += ", " + std::to_string(report.without_schema) + " without a schema";
        out.line(line + "; " + seconds(report.duration_ms));
    }
    return report.drift() ? 1 : 0;
}

const bool diff_registered = register_command(
    {"diff", "diff [--all | --tenant ID | --tenants a,b] [--reference ID]",
     "structural drift: tenants grouped by catalog fingerprint; exit 1 on drift", 55, cmd_diff});

}  // namespace

}  // namespace mtctl
