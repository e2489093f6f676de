// The loader's inspect stage on its own (SPEC §3.2), for the fuzz target that feeds it arbitrary
// files: it decides from the file's bytes alone, running none of its code.
#pragma once

#include <filesystem>

namespace mt::detail {

// Returns when file is a shared library exporting mt_plugin_entry_v1; otherwise throws
// PluginError(file, "inspect", reason).
void check_entry_symbol(const std::filesystem::path& file);

}  // namespace mt::detail
