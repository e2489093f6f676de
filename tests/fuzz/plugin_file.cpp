// The loader's inspect stage (kernel/src/plugin_host/inspect.cpp: detail::inspect_file) on arbitrary
// file contents: the kernel's own reader of the ELF dynamic symbol table and of the `.note.mtenant`
// note (ABI major, built and required minor), which run on every file named in [plugins] load or
// given to `mtctl plugins inspect FILE` before any of its code may run.
//
// Why this stage and not the whole of inspect_plugin: the stages after it dlopen the file, and
// dlopen of fuzzer-made bytes hands them to glibc's loader, which maps them and runs their
// initialisers — that is running untrusted code, not parsing it, and a crash there is not the
// kernel's. The inspect stage is the kernel's only parser of untrusted plugin bytes; the descriptor
// checks that follow dlopen are fuzzed by plugin_descriptor.cpp through a real loaded plugin.
// Input: the file's bytes.
//
// Properties:
// - A refusal is PluginError at stage "inspect" (or "abi", for a well-formed note this kernel
//   cannot take) naming the file; nothing else escapes.
// - A file it accepts starts with the ELF magic and holds the entry symbol's name; a note it
//   returns carries the magic, this kernel's major and a required minor it supports, and the file
//   holds the note's owner name.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/sdk/abi.h>

#include "plugin_host/plugin_inspect.hpp"

#include <cstring>
#include <optional>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::Scratch scratch("plugin-file");
    static const auto file = scratch.dir() / "plugin.so";
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    fuzz::Scratch::write(file, bytes);
    std::optional<mt_plugin_note> note;
    try {
        note = mt::detail::inspect_file(file);
    } catch (const mt::PluginError& e) {
        fuzz::check((e.stage == "inspect" || e.stage == "abi") && e.file == file.string() && !e.reason.empty(),
                    "a refusal names the file and the inspect or abi stage", e.what());
        return 0;
    } catch (const std::exception& e) {
        fuzz::violated("the inspect stage refuses only with PluginError", e.what());
    }
    fuzz::check(bytes.starts_with("\x7f" "ELF"), "an accepted file is an ELF file");
    fuzz::check(bytes.find(MT_ENTRY_SYMBOL) != std::string_view::npos, "an accepted file names the entry symbol");
    if (note) {
        fuzz::check(note->magic == MT_NOTE_MAGIC && note->abi_major == MT_ABI_MAJOR &&
                        note->abi_required_minor <= MT_ABI_MINOR,
                    "an accepted note has the magic, this major and a supported required minor");
        fuzz::check(bytes.find(std::string_view(MT_NOTE_NAME, sizeof MT_NOTE_NAME)) != std::string_view::npos,
                    "an accepted note's owner name is in the file");
    }
    return 0;
}
