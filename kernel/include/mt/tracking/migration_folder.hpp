// Migration folders (SPEC §6.1): drizzle-kit layout (meta/_journal.json) or plain numbered *.sql.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mt {

enum class FolderLayout { drizzle_kit, plain };

struct Migration {
    std::string name;                    // file name without .sql (drizzle-kit: the journal tag)
    std::string hash;                    // lowercase hex SHA-256 of the file's bytes (as drizzle-orm)
    std::optional<int64_t> when;         // drizzle-kit journal "when" (ms since epoch)
    std::filesystem::path file;
    std::vector<std::string> statements; // split on "--> statement-breakpoint" lines
    bool no_transaction = false;         // first line is "-- mt:no-transaction"
};

struct MigrationFolder {
    std::filesystem::path dir;
    FolderLayout layout = FolderLayout::plain;
    std::vector<Migration> migrations;   // in apply order

    const Migration* find_by_name(const std::string& name) const;
    const Migration* find_by_hash(const std::string& hash) const;
};

// Reads a folder. Throws MigrationFolderError naming the file for: a missing folder, a malformed
// journal, a journal entry without its file, two plain files with the same leading number, a file
// that cannot be read.
// Plain layout: a file's leading number is its leading run of digits (compared as a number of any
// length); files without one sort after all numbered files, by name (byte order).
MigrationFolder read_migration_folder(const std::filesystem::path& dir);

// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(std::string_view bytes);

// The bytes as Node's `buffer.toString()` decodes them and `hash.update(string)` re-encodes them:
// valid UTF-8 (a BOM included) comes back unchanged; each invalid sequence becomes U+FFFD (WHATWG
// "maximal subpart" rule). drizzle-orm and drizzle-multitenant hash and run this text.
std::string node_utf8_text(std::string_view bytes);

// A migration's hash as drizzle-orm 0.45 and drizzle-multitenant 1.3 compute it:
// sha256_hex(node_utf8_text(file_bytes)), which is sha256_hex(file_bytes) for every valid UTF-8 file.
std::string migration_hash(std::string_view file_bytes);

// Splits SQL text on "--> statement-breakpoint" as drizzle-orm does (wherever the marker appears),
// trims each piece and drops empty ones; a leading BOM is dropped.
std::vector<std::string> split_statements(std::string_view text);

// Next migration file for `mtctl generate`: "<NNNN>_<name>.sql"; in drizzle-kit layout it also
// appends the journal entry (idx, version, when, tag, breakpoints) keeping drizzle-kit's JSON shape.
// A missing or empty folder is created in plain layout. Throws UsageError for a name that is not
// letters, digits, '_' and '-'; MigrationFolderError for a folder it cannot read or write.
// Returns the path written.
std::filesystem::path generate_migration(const std::filesystem::path& dir, const std::string& name);

}  // namespace mt
