// Renamed migrations (issue 14): a tracking record that names no file but carries the hash of a
// file now under another name, shared by sync (reports and repairs it) and migrate (warns).
#pragma once

#include <mt/tracking/status.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace mt {

struct RenamedRecord {
    const sdk::Record* record;  // in TenantStatus::records
    const Migration* file;      // in the folder
};

// Only where the table's capabilities say that tools sharing it find migrations by name (a table
// with a `name` column, which drizzle-multitenant reads by name): in a table read by hash, as mtctl
// reads every table that keeps hashes, a rename changes nothing for anyone. A pair counts only when
// it is unambiguous: one record with that hash, one file with that content, and no record naming
// the file. In folder order of the files.
inline std::vector<RenamedRecord> renamed_records(const TenantStatus& st, const MigrationFolder& folder) {
    std::vector<RenamedRecord> out;
    if (!st.capabilities.found_by_name) return out;
    std::map<std::string, size_t> records_by_hash, files_by_hash;
    std::map<std::string, bool> recorded_names;
    for (const auto& r : st.records) {
        if (r.hash) ++records_by_hash[*r.hash];
        if (r.name) recorded_names[*r.name] = true;
    }
    for (const auto& m : folder.migrations) ++files_by_hash[m.hash];
    for (const auto& r : st.records) {
        if (!r.name || !r.hash || folder.find_by_name(*r.name) || records_by_hash[*r.hash] != 1 ||
            files_by_hash[*r.hash] != 1)
            continue;
        const Migration* m = folder.find_by_hash(*r.hash);
        if (m && !recorded_names.count(m->name)) out.push_back(RenamedRecord{&r, m});
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const RenamedRecord& a, const RenamedRecord& b) { return a.file < b.file; });
    return out;
}

}  // namespace mt
