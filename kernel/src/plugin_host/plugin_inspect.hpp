// The loader's inspect stage on its own (SPEC §3.2, abi.h "Compatibility"), for the loader and the
// fuzz target that feeds it arbitrary files: it decides from the file's bytes alone, running none
// of its code.
#pragma once

#include <mt/sdk/abi.h>

#include <filesystem>
#include <optional>
#include <string>

namespace mt::detail {

// Returns when file is a shared library exporting mt_plugin_entry_v1; otherwise throws
// PluginError(file, "inspect", reason).
void check_entry_symbol(const std::filesystem::path& file);

// The whole inspect stage: the entry symbol as above, then the `.note.mtenant` note when the file
// has one (ABI 1.1+; nullopt for a plugin built against 1.0 headers). A malformed note is refused
// at "inspect"; a note naming another ABI major or requiring a newer minor than this kernel's is
// refused at "abi" — in both cases before anything of the file is loaded.
std::optional<mt_plugin_note> inspect_file(const std::filesystem::path& file);

// "1.2": an ABI version as the messages write it.
inline std::string abi_text(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

// The abi-stage reasons, worded once for the note (before loading) and the descriptor (after).
std::string other_major_reason(uint32_t major, uint32_t built_minor);
std::string too_new_reason(uint32_t major, uint32_t built_minor, uint32_t required_minor);

}  // namespace mt::detail
