// The inspect stage: a bounds-checked reader of the ELF facts the loader needs before dlopen (the
// exported entry symbol, the `.note.mtenant` note). The file may be anything: every offset and size
// is checked against it.
#include <mt/base/errors.hpp>

#include "plugin_host/plugin_inspect.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <elf.h>
#include <fstream>
#include <sstream>
#include <link.h>
#include <string>
#include <string_view>

namespace mt {

namespace fs = std::filesystem;

namespace {

// What a file's bytes say about the entry symbol, read without running any of its code.
enum class EntryExport { not_elf, foreign, absent, present };

struct ElfFacts {
    EntryExport entry = EntryExport::absent;
    std::optional<mt_plugin_note> note;
    std::string bad_note;  // why the mtenant note is unusable, when it is
};

class ElfBytes {
public:
    explicit ElfBytes(std::string bytes) : bytes_(std::move(bytes)) {}
    bool fits(uint64_t offset, uint64_t size) const { return offset <= bytes_.size() && size <= bytes_.size() - offset; }
    template <class T>
    bool read(T& out, uint64_t offset) const {
        if (!fits(offset, sizeof out)) return false;
        std::memcpy(&out, bytes_.data() + offset, sizeof out);
        return true;
    }
    const char* at(uint64_t offset) const { return bytes_.data() + offset; }

private:
    std::string bytes_;
};

// The dynamic symbol table is what dlsym searches (and what `strip` leaves), so it alone decides.
// Boost.DLL's library_info was used before and is not: Boost 1.74 trusts the file's offsets and
// sizes (reads past its buffers, allocates what a section header claims; found by
// tests/fuzz/plugin_file.cpp).
EntryExport find_symbol(const ElfBytes& elf, const ElfW(Ehdr) & header, const ElfW(Shdr) & table, std::string_view symbol) {
    // ELF allows one dynamic symbol table; reading only the first keeps a hostile file linear.
    ElfW(Shdr) names{};
    if (table.sh_link >= header.e_shnum || !elf.read(names, header.e_shoff + table.sh_link * sizeof(ElfW(Shdr))) ||
        !elf.fits(names.sh_offset, names.sh_size))
        return EntryExport::absent;
    for (uint64_t off = 0; off + sizeof(ElfW(Sym)) <= table.sh_size; off += sizeof(ElfW(Sym))) {
        ElfW(Sym) sym{};
        if (!elf.read(sym, table.sh_offset + off)) return EntryExport::absent;
        if (sym.st_shndx == SHN_UNDEF || ELF64_ST_VISIBILITY(sym.st_other) != STV_DEFAULT) continue;
        const auto bind = ELF64_ST_BIND(sym.st_info);
        if ((bind != STB_GLOBAL && bind != STB_WEAK) || sym.st_name >= names.sh_size) continue;
        const char* name = elf.at(names.sh_offset + sym.st_name);
        const size_t room = names.sh_size - sym.st_name;
        if (std::string_view(name, ::strnlen(name, room)) == symbol) return EntryExport::present;
    }
    return EntryExport::absent;
}

// Walks one SHT_NOTE section's records; fills facts.note (or facts.bad_note) from the first
// mtenant record. Each record's sizes are checked against the section, which is checked against
// the file, so a hostile size only ends the walk.
void find_note(const ElfBytes& elf, const ElfW(Shdr) & section, ElfFacts& facts) {
    if (!elf.fits(section.sh_offset, section.sh_size)) return;
    const uint64_t align = section.sh_addralign == 8 ? 8 : 4;
    auto padded = [&](uint64_t n) { return (n + align - 1) / align * align; };
    uint64_t pos = 0;
    while (pos + 12 <= section.sh_size) {
        uint32_t head[3] = {};
        elf.read(head, section.sh_offset + pos);
        const uint64_t name_at = pos + 12;
        const uint64_t desc_at = name_at + padded(head[0]);
        const uint64_t end = desc_at + padded(head[1]);
        if (desc_at > section.sh_size || end > section.sh_size || desc_at + head[1] > section.sh_size) return;
        const std::string_view name(elf.at(section.sh_offset + name_at), head[0]);
        if (name == std::string_view(MT_NOTE_NAME, sizeof MT_NOTE_NAME) && head[2] == MT_NOTE_TYPE) {
            constexpr size_t least = offsetof(mt_plugin_note, abi_required_minor) + sizeof(uint32_t);
            mt_plugin_note note{};
            std::memcpy(&note, elf.at(section.sh_offset + desc_at), std::min<size_t>(head[1], sizeof note));
            if (head[1] < least)
                facts.bad_note = "its .note.mtenant is " + std::to_string(head[1]) + " bytes, expected at least " +
                                 std::to_string(least);
            else if (note.magic != MT_NOTE_MAGIC)
                facts.bad_note = "its .note.mtenant does not start with the mtenant magic";
            else
                facts.note = note;
            return;
        }
        pos = end;
    }
}

ElfFacts elf_facts(const fs::path& file, std::string_view symbol) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw PluginError(file.string(), "inspect", "cannot be read");
    // Through the stream buffer in blocks: an istreambuf_iterator copy went byte by byte, which
    // cost 0.1 s a plugin under ASan (each mtctl start inspects every plugin it loads).
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (in.bad()) throw PluginError(file.string(), "inspect", "cannot be read");
    const ElfBytes elf(std::move(bytes).str());
    ElfFacts facts;
    ElfW(Ehdr) header{};
    if (!elf.read(header, 0) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
        facts.entry = EntryExport::not_elf;
        return facts;
    }
    if (header.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32)) {
        facts.entry = EntryExport::foreign;
        return facts;
    }
    if (header.e_shentsize != sizeof(ElfW(Shdr))) return facts;
    bool seen_dynsym = false;
    for (uint64_t i = 0; i < header.e_shnum; ++i) {
        ElfW(Shdr) section{};
        if (!elf.read(section, header.e_shoff + i * sizeof(ElfW(Shdr)))) continue;
        if (section.sh_type == SHT_DYNSYM && !seen_dynsym) {
            seen_dynsym = true;
            facts.entry = find_symbol(elf, header, section, symbol);
        } else if (section.sh_type == SHT_NOTE && !facts.note && facts.bad_note.empty()) {
            find_note(elf, section, facts);
        }
    }
    return facts;
}

using detail::abi_text;

void check_entry(const fs::path& file, EntryExport entry) {
    const std::string where = file.string();
    switch (entry) {
        case EntryExport::present: return;
        case EntryExport::not_elf:
            throw PluginError(where, "inspect", "not a shared library (too short or not an ELF file)");
        case EntryExport::foreign:
            throw PluginError(where, "inspect",
                              std::string("not a shared library for this system (ELF class is not ") +
                                  (sizeof(void*) == 8 ? "64" : "32") + "-bit)");
        case EntryExport::absent: break;
    }
    throw PluginError(where, "inspect",
                      "does not export " MT_ENTRY_SYMBOL ": not an mtenant plugin (a plugin declares itself with "
                      "MT_PLUGIN(...) from <mt/sdk/plugin.hpp>)");
}

void check_file(const fs::path& file) {
    std::error_code ec;
    if (!fs::exists(file, ec)) throw PluginError(file.string(), "inspect", "no such file");
    if (!fs::is_regular_file(file, ec)) throw PluginError(file.string(), "inspect", "not a regular file");
}

}  // namespace

void detail::check_entry_symbol(const fs::path& file) {
    check_file(file);
    check_entry(file, elf_facts(file, MT_ENTRY_SYMBOL).entry);
}

std::optional<mt_plugin_note> detail::inspect_file(const fs::path& file) {
    check_file(file);
    const ElfFacts facts = elf_facts(file, MT_ENTRY_SYMBOL);
    check_entry(file, facts.entry);
    const std::string where = file.string();
    if (!facts.bad_note.empty()) throw PluginError(where, "inspect", facts.bad_note + ": rebuild the plugin with the SDK");
    if (!facts.note) return std::nullopt;
    const mt_plugin_note& n = *facts.note;
    if (n.abi_major != MT_ABI_MAJOR) throw PluginError(where, "abi", other_major_reason(n.abi_major, n.abi_built_minor));
    if (n.abi_required_minor > MT_ABI_MINOR)
        throw PluginError(where, "abi", too_new_reason(n.abi_major, n.abi_built_minor, n.abi_required_minor));
    return n;
}

std::string detail::other_major_reason(uint32_t major, uint32_t built_minor) {
    return "built for plugin ABI " + abi_text(major, built_minor) + ", this kernel speaks ABI " +
           abi_text(MT_ABI_MAJOR, MT_ABI_MINOR) + " (major versions must match): rebuild the plugin against SDK " MT_SDK_VERSION;
}

std::string detail::too_new_reason(uint32_t major, uint32_t built_minor, uint32_t required_minor) {
    return "built for plugin ABI " + abi_text(major, built_minor) + ", newer than this kernel's ABI " +
           abi_text(MT_ABI_MAJOR, MT_ABI_MINOR) + ": it requires minor " + std::to_string(required_minor) +
           ", this kernel supports up to minor " + std::to_string(MT_ABI_MINOR) +
           "; upgrade mtenant, or rebuild the plugin requiring at most minor " + std::to_string(MT_ABI_MINOR);
}

}  // namespace mt
