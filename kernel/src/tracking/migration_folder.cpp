// Migration folders (SPEC §6.1), read the way drizzle-orm 0.45 (drizzle-kit layout) and
// drizzle-multitenant 1.3 (plain layout) read them, so hashes and names match theirs.
//
// What those tools do, and where mtenant differs on purpose:
// - drizzle-orm's readMigrationFiles reads meta/_journal.json, then for each entry `<tag>.sql` with
//   `readFileSync(...).toString()`, splits that string on "--> statement-breakpoint" and hashes the
//   whole string with `createHash('sha256').update(query)`. drizzle-multitenant does the same with
//   `readFile(path, 'utf-8')`. Both hash the decoded-then-re-encoded text, not the raw bytes: a BOM
//   survives (identical bytes), CRLF survives (0.45 does not normalise line endings; drizzle-orm's
//   unreleased main branch does, and would hash CRLF files differently), but invalid UTF-8 becomes
//   U+FFFD before hashing. node_utf8_text reproduces that decoding, so the hash matches in every case.
// - drizzle-multitenant sorts with a regex `^(\d+)_` and treats files without it as number 0 (first).
//   mtenant takes any leading digit run and puts files without one last, so a stray `seed.sql`
//   never runs before `0001_init.sql`; two files with the same number are refused, not ordered by
//   chance.
// - drizzle-kit writes the journal with JSON.stringify(journal, null, 2), no trailing newline, keys
//   in insertion order; generate_migration keeps exactly that shape.
#include <mt/base/errors.hpp>
#include <mt/tracking/migration_folder.hpp>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <system_error>

namespace mt {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view breakpoint_marker = "--> statement-breakpoint";
constexpr std::string_view no_transaction_marker = "-- mt:no-transaction";
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";
constexpr std::string_view replacement_char = "\xEF\xBF\xBD";
constexpr std::string_view whitespace = " \t\n\r\f\v";
constexpr std::string_view default_journal_version = "7";
// The `name` tracking table stores names in varchar(255).
constexpr size_t max_migration_name = 255;

std::string errno_text() { return std::strerror(errno); }

std::string read_bytes(const fs::path& file) {
    errno = 0;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw MigrationFolderError(file.string(), "cannot open: " + errno_text());
    std::string bytes;
    std::array<char, 65536> buf{};
    while (in.read(buf.data(), buf.size()) || in.gcount() > 0)
        bytes.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (in.bad()) throw MigrationFolderError(file.string(), "cannot read: " + errno_text());
    return bytes;
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(whitespace);
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(whitespace);
    return s.substr(first, last - first + 1);
}

bool starts_with_no_transaction(std::string_view text) {
    if (text.starts_with(utf8_bom)) text.remove_prefix(utf8_bom.size());
    std::string_view first_line = text.substr(0, text.find('\n'));
    const auto last = first_line.find_last_not_of(whitespace);
    first_line = last == std::string_view::npos ? std::string_view{} : first_line.substr(0, last + 1);
    return first_line == no_transaction_marker;
}

// The leading digit run of a file name without its leading zeros ("0" for all zeros), or nullopt.
// Kept as a string so prefixes of any length (drizzle-kit's 14-digit timestamps) compare exactly.
std::optional<std::string> leading_number(std::string_view name) {
    size_t digits = 0;
    while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
    if (digits == 0) return std::nullopt;
    std::string_view n = name.substr(0, digits);
    const auto nonzero = n.find_first_not_of('0');
    return nonzero == std::string_view::npos ? std::string("0") : std::string(n.substr(nonzero));
}

int compare_numbers(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

std::string increment(std::string n) {
    for (auto it = n.rbegin(); it != n.rend(); ++it) {
        if (*it != '9') {
            ++*it;
            return n;
        }
        *it = '0';
    }
    return "1" + n;
}

std::string zero_pad(std::string n, size_t width) {
    if (n.size() < width) n.insert(0, width - n.size(), '0');
    return n;
}

Migration load_migration(const fs::path& file, std::string name, std::optional<int64_t> when) {
    const std::string text = node_utf8_text(read_bytes(file));
    Migration m;
    m.name = std::move(name);
    m.hash = sha256_hex(text);
    m.when = when;
    m.file = file;
    m.statements = split_statements(text);
    m.no_transaction = starts_with_no_transaction(text);
    return m;
}

fs::path journal_path(const fs::path& dir) { return dir / "meta" / "_journal.json"; }

bool is_journal_folder(const fs::path& dir) {
    std::error_code ec;
    return fs::exists(journal_path(dir), ec);
}

// Parses and checks the journal; the returned document keeps its key order for rewriting.
nlohmann::ordered_json parse_journal(const fs::path& journal) {
    const std::string file = journal.string();
    nlohmann::ordered_json doc;
    // json::exception, not only parse_error: a number too large for a double (1e999) is out_of_range
    // 406 (found by tests/fuzz/migration_folder.cpp).
    try {
        doc = nlohmann::ordered_json::parse(read_bytes(journal));
    } catch (const nlohmann::json::exception& e) {
        throw MigrationFolderError(file, std::string("malformed JSON (") + e.what() +
                                             "); fix it or regenerate it with drizzle-kit");
    }
    if (!doc.is_object())
        throw MigrationFolderError(file, "expected a JSON object with an \"entries\" array (drizzle-kit journal)");
    const auto entries = doc.find("entries");
    if (entries == doc.end() || !entries->is_array())
        throw MigrationFolderError(file, "\"entries\": missing or not an array; a drizzle-kit journal is "
                                         "{\"version\", \"dialect\", \"entries\": [...]}");
    std::set<std::string> tags;
    for (size_t i = 0; i < entries->size(); ++i) {
        const auto& entry = (*entries)[i];
        const std::string where = "entries[" + std::to_string(i) + "]";
        if (!entry.is_object()) throw MigrationFolderError(file, where + ": expected an object");
        const auto tag = entry.find("tag");
        if (tag == entry.end() || !tag->is_string() || tag->get_ref<const std::string&>().empty())
            throw MigrationFolderError(file, where + ".tag: missing or not a non-empty string (the migration "
                                                     "file name without .sql)");
        const auto& t = tag->get_ref<const std::string&>();
        // The tag names a file inside the folder; refuse anything that would leave it.
        if (t == "." || t == ".." || t.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
            throw MigrationFolderError(file, where + ".tag: '" + t + "' is not a plain file name");
        const auto when = entry.find("when");
        if (when == entry.end() || !when->is_number_integer())
            throw MigrationFolderError(file, where + ".when: missing or not an integer (milliseconds since "
                                                     "the epoch, as drizzle-kit writes it)");
        // Read as int64 later: a larger unsigned value would come back wrapped (negative).
        if (when->is_number_unsigned() && when->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw MigrationFolderError(file, where + ".when: " + when->dump() +
                                                 " is larger than a 64-bit integer holds; write milliseconds since the epoch");
        if (!tags.insert(t).second)
            throw MigrationFolderError(file, where + ".tag: '" + t + "' appears twice; each entry needs its own tag");
    }
    return doc;
}

MigrationFolder read_journal_folder(const fs::path& dir) {
    const fs::path journal = journal_path(dir);
    const auto doc = parse_journal(journal);
    MigrationFolder folder;
    folder.dir = dir;
    folder.layout = FolderLayout::drizzle_kit;
    const auto& entries = doc.at("entries");
    for (size_t i = 0; i < entries.size(); ++i) {
        const auto& entry = entries[i];
        const auto& tag = entry.at("tag").get_ref<const std::string&>();
        const fs::path file = dir / (tag + ".sql");
        std::error_code ec;
        if (!fs::is_regular_file(file, ec))
            throw MigrationFolderError(file.string(), "listed in " + journal.string() + " (entries[" +
                                                          std::to_string(i) + "], tag '" + tag +
                                                          "') but missing; restore the file or remove its entry");
        folder.migrations.push_back(load_migration(file, tag, entry.at("when").get<int64_t>()));
    }
    return folder;
}

struct PlainFile {
    fs::path path;
    std::string name;
    std::optional<std::string> number;
};

MigrationFolder read_plain_folder(const fs::path& dir) {
    std::vector<PlainFile> files;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw MigrationFolderError(dir.string(), "cannot list the migration folder: " + ec.message());
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) throw MigrationFolderError(dir.string(), "cannot list the migration folder: " + ec.message());
        const std::string filename = it->path().filename().string();
        if (!filename.ends_with(".sql")) continue;
        std::error_code type_ec;
        if (!it->is_regular_file(type_ec)) continue;  // directories and dangling links are not migrations
        std::string name = filename.substr(0, filename.size() - 4);
        if (name.empty()) throw MigrationFolderError(it->path().string(), "a migration file needs a name before .sql");
        auto number = leading_number(name);
        files.push_back({it->path(), std::move(name), std::move(number)});
    }
    if (ec) throw MigrationFolderError(dir.string(), "cannot list the migration folder: " + ec.message());

    std::sort(files.begin(), files.end(), [](const PlainFile& a, const PlainFile& b) {
        if (a.number.has_value() != b.number.has_value()) return a.number.has_value();
        if (a.number) {
            const int c = compare_numbers(*a.number, *b.number);
            if (c != 0) return c < 0;
        }
        return a.name < b.name;
    });
    for (size_t i = 1; i < files.size(); ++i) {
        const auto& prev = files[i - 1];
        const auto& cur = files[i];
        if (prev.number && cur.number && *prev.number == *cur.number)
            throw MigrationFolderError(prev.path.string(), "has the same leading number (" + *cur.number + ") as " +
                                                               cur.path.string() +
                                                               "; renumber one of them so the order is certain");
    }

    MigrationFolder folder;
    folder.dir = dir;
    folder.layout = FolderLayout::plain;
    for (const auto& f : files) folder.migrations.push_back(load_migration(f.path, f.name, std::nullopt));
    return folder;
}

void validate_name(const std::string& name) {
    if (name.empty()) throw UsageError("migration name is empty; use letters, digits, '_' and '-'");
    const bool ok = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (!ok) throw UsageError("migration name '" + name + "': use only letters, digits, '_' and '-'");
}

void check_length(const std::string& stem) {
    if (stem.size() > max_migration_name)
        throw UsageError("migration name '" + stem + "' is longer than " + std::to_string(max_migration_name) +
                         " characters (the name tracking table's limit); choose a shorter name");
}

// Creates the file, refusing to overwrite one that exists ("x": O_EXCL).
void write_new_file(const fs::path& file, std::string_view content) {
    errno = 0;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "wx"), &std::fclose);
    if (!f) throw MigrationFolderError(file.string(), "cannot create: " + errno_text());
    if (std::fwrite(content.data(), 1, content.size(), f.get()) != content.size() || std::fflush(f.get()) != 0)
        throw MigrationFolderError(file.string(), "cannot write: " + errno_text());
}

// Writes beside the target then renames, so a crash never leaves a half-written journal.
void replace_file(const fs::path& file, std::string_view content) {
    fs::path tmp = file;
    tmp += ".mt-tmp";
    {
        errno = 0;
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw MigrationFolderError(tmp.string(), "cannot create: " + errno_text());
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
        out.close();
        if (!out) throw MigrationFolderError(tmp.string(), "cannot write: " + errno_text());
    }
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw MigrationFolderError(file.string(), "cannot replace: " + ec.message());
    }
}

std::string file_comment(const std::string& stem) {
    // No statement-breakpoint marker here: drizzle-orm would split on it even inside a comment.
    return "-- Migration " + stem + ": write its SQL below.\n";
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

fs::path generate_plain(const MigrationFolder& folder, const std::string& name) {
    std::optional<std::string> max;
    for (const auto& m : folder.migrations)
        if (auto n = leading_number(m.name); n && (!max || compare_numbers(*n, *max) > 0)) max = std::move(n);
    // drizzle-multitenant starts an empty folder at 0001.
    const std::string stem = zero_pad(max ? increment(*max) : std::string("1"), 4) + "_" + name;
    check_length(stem);
    const fs::path file = folder.dir / (stem + ".sql");
    write_new_file(file, file_comment(stem));
    return file;
}

fs::path generate_journal(const fs::path& dir, const std::string& name) {
    const fs::path journal = journal_path(dir);
    auto doc = parse_journal(journal);
    auto& entries = doc["entries"];

    // drizzle-kit: idx = last idx + 1, tag prefix = idx padded to 4. Also stay above every tag's
    // number so a hand-edited journal never gets a duplicate prefix.
    int64_t idx = static_cast<int64_t>(entries.size());
    if (!entries.empty()) {
        const auto& last = entries.back();
        if (auto it = last.find("idx"); it != last.end() && it->is_number_integer()) idx = it->get<int64_t>() + 1;
    }
    std::string number = std::to_string(idx);
    int64_t max_when = std::numeric_limits<int64_t>::min();
    std::string version(default_journal_version);
    if (auto v = doc.find("version"); v != doc.end() && v->is_string()) version = v->get<std::string>();
    for (const auto& entry : entries) {
        if (auto n = leading_number(entry.at("tag").get_ref<const std::string&>()))
            if (auto next = increment(*n); compare_numbers(next, number) > 0) number = next;
        max_when = std::max(max_when, entry.at("when").get<int64_t>());
        if (auto v = entry.find("version"); v != entry.end() && v->is_string()) version = v->get<std::string>();
    }
    const std::string tag = zero_pad(number, 4) + "_" + name;
    check_length(tag);
    // drizzle-orm applies a migration only when its `when` is newer than the last one recorded.
    if (max_when == std::numeric_limits<int64_t>::max())
        throw MigrationFolderError(journal.string(), "an entry's \"when\" is the largest integer; no later one exists");
    const int64_t when = entries.empty() ? now_ms() : std::max(now_ms(), max_when + 1);

    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["idx"] = idx;
    entry["version"] = version;
    entry["when"] = when;
    entry["tag"] = tag;
    entry["breakpoints"] = true;
    entries.push_back(std::move(entry));

    // The SQL file first: a crash before the journal is rewritten leaves an unlisted file, which
    // drizzle ignores, never a journal entry without its file.
    const fs::path file = dir / (tag + ".sql");
    write_new_file(file, file_comment(tag));
    try {
        replace_file(journal, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } catch (...) {
        std::error_code ec;
        fs::remove(file, ec);
        throw;
    }
    return file;
}

}  // namespace

const Migration* MigrationFolder::find_by_name(const std::string& name) const {
    for (const auto& m : migrations)
        if (m.name == name) return &m;
    return nullptr;
}

// Two files with identical bytes share a hash; the first in apply order is returned.
const Migration* MigrationFolder::find_by_hash(const std::string& hash) const {
    for (const auto& m : migrations)
        if (m.hash == hash) return &m;
    return nullptr;
}

std::string sha256_hex(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1)
        throw InternalError("SHA-256 failed (OpenSSL EVP_Digest)");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0x0F];
    }
    return out;
}

// The WHATWG UTF-8 decoder (which V8 and Node's Buffer follow): a byte that cannot continue the
// current sequence ends it with one U+FFFD and is then read again as a new start.
std::string node_utf8_text(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t start = 0;     // first byte of the sequence being read
    int needed = 0;       // continuation bytes still expected
    unsigned char lower = 0x80, upper = 0xBF;
    for (size_t i = 0; i < bytes.size();) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        if (needed == 0) {
            start = i;
            ++i;
            if (b <= 0x7F) {
                out += static_cast<char>(b);
            } else if (b >= 0xC2 && b <= 0xDF) {
                needed = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0) lower = 0xA0;
                if (b == 0xED) upper = 0x9F;
                needed = 2;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0) lower = 0x90;
                if (b == 0xF4) upper = 0x8F;
                needed = 3;
            } else {
                out += replacement_char;
            }
            continue;
        }
        if (b < lower || b > upper) {
            needed = 0;
            lower = 0x80;
            upper = 0xBF;
            out += replacement_char;
            continue;  // read b again as a start byte
        }
        lower = 0x80;
        upper = 0xBF;
        ++i;
        if (--needed == 0) out.append(bytes.substr(start, i - start));
    }
    if (needed != 0) out += replacement_char;
    return out;
}

std::string migration_hash(std::string_view file_bytes) { return sha256_hex(node_utf8_text(file_bytes)); }

std::vector<std::string> split_statements(std::string_view text) {
    if (text.starts_with(utf8_bom)) text.remove_prefix(utf8_bom.size());
    std::vector<std::string> statements;
    size_t pos = 0;
    while (true) {
        const size_t found = text.find(breakpoint_marker, pos);
        const std::string_view piece = trim(text.substr(pos, found == std::string_view::npos ? found : found - pos));
        if (!piece.empty()) statements.emplace_back(piece);
        if (found == std::string_view::npos) break;
        pos = found + breakpoint_marker.size();
    }
    return statements;
}

MigrationFolder read_migration_folder(const fs::path& dir) {
    std::error_code ec;
    const auto status = fs::status(dir, ec);
    if (!fs::exists(status))
        throw MigrationFolderError(dir.string(), "migration folder not found; run `mtctl init` to create it, or "
                                                 "point migrations.tenant_dir at the right folder");
    if (!fs::is_directory(status))
        throw MigrationFolderError(dir.string(), "is not a folder; point migrations.tenant_dir at the migration folder");
    return is_journal_folder(dir) ? read_journal_folder(dir) : read_plain_folder(dir);
}

fs::path generate_migration(const fs::path& dir, const std::string& name) {
    validate_name(name);
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        fs::create_directories(dir, ec);
        if (ec) throw MigrationFolderError(dir.string(), "cannot create the migration folder: " + ec.message());
    }
    if (is_journal_folder(dir)) {
        read_migration_folder(dir);  // refuse to extend a folder that does not read cleanly
        return generate_journal(dir, name);
    }
    return generate_plain(read_migration_folder(dir), name);
}

}  // namespace mt
