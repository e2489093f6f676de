// The manifest's fixed keys as documented (SPEC §4): what the starter manifest of `mtctl init` and
// multitenant.ini(5) (`mtctl __docs`) are written from.
#pragma once

#include <string>
#include <vector>

namespace mt {

// One fixed key: its default as written in the file (empty: none) and a one-line description. They
// come from the parser's own key table (kernel/src/context/manifest.cpp), so a key cannot be
// accepted yet undocumented.
struct ManifestKeyDoc {
    std::string key;  // "database.pool_size"
    std::string default_value;
    std::string description;
};
std::vector<ManifestKeyDoc> manifest_key_docs();

}  // namespace mt
