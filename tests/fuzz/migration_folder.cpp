// The migration folder reader (SPEC §6.1): drizzle-kit's meta/_journal.json, plain numbered files,
// "--> statement-breakpoint" splitting and the "-- mt:no-transaction" marker. Each input is written
// out as a real folder and read with read_migration_folder, as mtctl reads one.
// Input: an optional journal, then files, each introduced by a line "=== FILE <name>":
//   {"version":"7","dialect":"postgresql","entries":[...]}      (omit for a plain folder)
//   === FILE 0000_init.sql
//   CREATE TABLE a (id int);
//   --> statement-breakpoint
//   ...
//
// Properties:
// - Refusals are MigrationFolderError naming a file, nothing else.
// - Each migration's statements, joined again with breakpoints and split, are the same statements;
//   none is empty, untrimmed or holds a breakpoint; and their concatenation is the file's text
//   with the breakpoints and white space removed (nothing is lost or invented).
// - hash = sha256 of node_utf8_text(bytes); node_utf8_text's output is valid UTF-8 and leaves
//   valid UTF-8 untouched; no_transaction is exactly "first line is -- mt:no-transaction".
// - Journal layout: one migration per entry, in journal order, named by its tag, with its when
//   (exactly: a value beyond int64 is refused, not wrapped).
//   Plain layout: numbered files first, in numeric order, then the rest by name.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/tracking/migration_folder.hpp>

#include <nlohmann/json.hpp>

#include <set>

namespace {

namespace fs = std::filesystem;
constexpr std::string_view marker = "--> statement-breakpoint";
constexpr std::string_view bom = "\xEF\xBB\xBF";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string without_space(std::string_view s) {
    std::string out;
    for (char c : s)
        if (!is_space(c)) out += c;
    return out;
}

// The text with every breakpoint removed, scanning left to right as drizzle-orm's split does.
std::string without_markers(std::string_view s) {
    std::string out;
    for (size_t pos = 0;;) {
        const size_t at = s.find(marker, pos);
        out.append(s.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
        if (at == std::string_view::npos) return out;
        pos = at + marker.size();
    }
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        size_t n = 0;
        uint32_t cp = 0;
        if (b < 0x80) { ++i; continue; }
        if (b >= 0xC2 && b <= 0xDF) { n = 1; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { n = 2; cp = b & 0x0F; }
        else if (b >= 0xF0 && b <= 0xF4) { n = 3; cp = b & 0x07; }
        else return false;
        if (i + n >= s.size()) return false;
        for (size_t k = 1; k <= n; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

std::string read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void check_text(std::string_view bytes) {
    const std::string text = mt::node_utf8_text(bytes);
    fuzz::check(valid_utf8(text), "node_utf8_text returns valid UTF-8");
    if (valid_utf8(bytes)) fuzz::check(text == bytes, "node_utf8_text leaves valid UTF-8 unchanged");
    fuzz::check(mt::node_utf8_text(text) == text, "node_utf8_text is idempotent");

    const auto statements = mt::split_statements(text);
    // Starts with a newline so a first statement beginning with a BOM (after white space in the
    // file) is not taken for the file's own BOM.
    std::string joined = "\n", concatenated;
    for (const auto& s : statements) {
        fuzz::check(!s.empty() && !is_space(s.front()) && !is_space(s.back()), "a statement is trimmed and not empty", s);
        fuzz::check(s.find(marker) == std::string::npos, "a statement holds no breakpoint", s);
        if (joined.size() > 1) joined += "\n--> statement-breakpoint\n";
        joined += s;
        concatenated += s;
    }
    fuzz::check(mt::split_statements(joined) == statements, "statements re-joined with breakpoints split the same", joined);
    std::string_view body = text;
    if (body.starts_with(bom)) body.remove_prefix(bom.size());
    fuzz::check(without_space(without_markers(body)) == without_space(concatenated),
                "the statements are the text modulo breakpoints and white space", text);
}

// "=== FILE name" lines split the input; names are made safe to create (no '/', no NUL).
struct Layout {
    std::optional<std::string> journal;
    std::vector<std::pair<std::string, std::string>> files;
};

Layout parse_input(std::string_view input) {
    Layout layout;
    const auto parts = fuzz::split(input, "=== FILE ");
    if (!parts.empty() && !parts[0].empty()) layout.journal = std::string(parts[0]);
    for (size_t i = 1; i < parts.size(); ++i) {
        const auto part = parts[i];
        const size_t nl = part.find('\n');
        std::string name(part.substr(0, nl));
        const std::string content(nl == std::string_view::npos ? std::string_view() : part.substr(nl + 1));
        for (char& c : name)
            if (c == '/' || c == '\0') c = '_';
        if (name.empty() || name == "." || name == ".." || name == "meta" || name.size() > 200) continue;
        layout.files.emplace_back(std::move(name), content);
    }
    return layout;
}

std::optional<std::string> leading_digits(const std::string& name) {
    size_t n = 0;
    while (n < name.size() && name[n] >= '0' && name[n] <= '9') ++n;
    if (n == 0) return std::nullopt;
    const std::string digits = name.substr(0, n);
    const size_t nz = digits.find_first_not_of('0');
    return nz == std::string::npos ? std::string("0") : digits.substr(nz);
}

bool number_less(const std::string& a, const std::string& b) { return a.size() != b.size() ? a.size() < b.size() : a < b; }

void check_folder(const fs::path& dir, const Layout& layout) {
    mt::MigrationFolder folder;
    try {
        folder = mt::read_migration_folder(dir);
    } catch (const mt::MigrationFolderError& e) {
        fuzz::check(!e.file.empty(), "a folder error names a file", e.what());
        return;
    } catch (const std::exception& e) {
        fuzz::violated("the folder reader refuses only with MigrationFolderError", e.what());
    }
    for (const auto& m : folder.migrations) {
        const std::string bytes = read_file(m.file);
        const std::string text = mt::node_utf8_text(bytes);
        fuzz::check(m.hash == mt::sha256_hex(text) && m.hash == mt::migration_hash(bytes), "hash is sha256 of the decoded text",
                    m.name);
        fuzz::check(m.statements == mt::split_statements(text), "statements are the split text", m.name);
        std::string_view first = text;
        if (first.starts_with(bom)) first.remove_prefix(bom.size());
        first = first.substr(0, first.find('\n'));
        while (!first.empty() && is_space(first.back())) first.remove_suffix(1);
        fuzz::check(m.no_transaction == (first == "-- mt:no-transaction"), "no_transaction is the first line's marker",
                    m.name);
        fuzz::check(m.file.parent_path() == dir, "a migration file lies inside its folder", m.file.string());
    }
    if (folder.layout == mt::FolderLayout::drizzle_kit) {
        fuzz::check(layout.journal.has_value(), "journal layout only with a journal");
        const auto doc = nlohmann::json::parse(*layout.journal);
        const auto& entries = doc.at("entries");
        fuzz::check(entries.size() == folder.migrations.size(), "one migration per journal entry");
        for (size_t i = 0; i < entries.size(); ++i) {
            const auto& m = folder.migrations[i];
            // A "when" that does not fit int64 must not come back wrapped (nlohmann's == would wrap it too).
            const auto& when = entries[i].at("when");
            const bool same_when = m.when && (when.is_number_unsigned()
                                                  ? *m.when >= 0 && static_cast<uint64_t>(*m.when) == when.get<uint64_t>()
                                                  : *m.when == when.get<int64_t>());
            fuzz::check(m.name == entries[i].at("tag").get<std::string>() && same_when,
                        "migrations follow the journal: tag and when, exactly", m.name);
            fuzz::check(m.file.filename() == m.name + ".sql", "a journal migration is <tag>.sql", m.file.string());
        }
        return;
    }
    std::set<std::string> sql_files;
    for (const auto& [name, content] : layout.files)
        if (name.size() > 4 && name.ends_with(".sql")) sql_files.insert(name);
    fuzz::check(folder.migrations.size() == sql_files.size(), "a plain folder has one migration per .sql file");
    for (size_t i = 0; i < folder.migrations.size(); ++i) {
        const auto& m = folder.migrations[i];
        fuzz::check(sql_files.count(m.name + ".sql") == 1, "a plain migration is named after its file", m.name);
        if (i == 0) continue;
        const auto a = leading_digits(folder.migrations[i - 1].name), b = leading_digits(m.name);
        const bool ordered = a && b   ? number_less(*a, *b) || (*a == *b && folder.migrations[i - 1].name < m.name)
                             : a      ? true
                             : b      ? false
                                      : folder.migrations[i - 1].name < m.name;
        fuzz::check(ordered, "plain migrations: numbered first, by number, then by name", m.name);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::Scratch scratch("migrations");
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const Layout layout = parse_input(input);
    for (const auto& [name, content] : layout.files) check_text(content);
    if (layout.files.size() > 32) return 0;

    scratch.clear();
    const fs::path dir = scratch.dir() / "tenant";
    fs::create_directories(dir);
    if (layout.journal) {
        fs::create_directories(dir / "meta");
        fuzz::Scratch::write(dir / "meta" / "_journal.json", *layout.journal);
    }
    for (const auto& [name, content] : layout.files) fuzz::Scratch::write(dir / name, content);
    check_folder(dir, layout);
    return 0;
}
