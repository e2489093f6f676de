// A PostgreSQL SQL lexer (scan.l's rules, standard_conforming_strings on) that keeps byte offsets,
// so a rewrite can replace exact token spans and leave every other byte as written.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mt {

enum class SqlTokenKind {
    whitespace,
    line_comment,       // -- to the end of the line
    block_comment,      // /* … */, nested
    identifier,         // unquoted: letters, digits, _, $ (not first); folds to lower case
    quoted_identifier,  // "…" with "" for a quote, or U&"…" (unicode escapes)
    string,             // '…' with '' doubling, E'…' (backslash escapes), U&'…', B'…', X'…', N'…'
    dollar_string,      // $$…$$ or $tag$…$tag$
    number,
    parameter,          // $1
    punctuation,        // one of ( ) [ ] , ; : . and operator characters, one byte each
};

struct SqlToken {
    SqlTokenKind kind;
    size_t begin = 0;  // byte offsets into the lexed text: [begin, end)
    size_t end = 0;
    // An unterminated string, quoted identifier, dollar string or block comment runs to the end.
    bool terminated = true;

    std::string_view text(std::string_view sql) const { return sql.substr(begin, end - begin); }
    bool is_trivia() const { return kind == SqlTokenKind::whitespace || kind == SqlTokenKind::line_comment ||
                                    kind == SqlTokenKind::block_comment; }
};

// Splits the whole text into tokens that cover every byte exactly once, in order. Never throws:
// input PostgreSQL would refuse still lexes (an unterminated literal runs to the end).
std::vector<SqlToken> lex_sql(std::string_view sql);

// The name an identifier token stands for, as PostgreSQL resolves it: unquoted folded to lower
// case (ASCII only, as in a UTF-8 database), quoted with "" undoubled, U&"…" with its \XXXX and
// \+XXXXXX escapes decoded; truncated to 63 bytes (NAMEDATALEN) on a character boundary.
// nullopt for a token that is no identifier, an unterminated one, or a U&"…" with a UESCAPE
// clause or an escape it cannot decode.
std::optional<std::string> identifier_value(std::string_view sql, const std::vector<SqlToken>& tokens, size_t index);

// An identifier name as PostgreSQL stores it: truncated to 63 bytes on a UTF-8 character boundary.
std::string truncate_identifier(std::string_view name);

// For a dollar string token: the body between its opening and closing tags.
std::string_view dollar_body(std::string_view sql, const SqlToken& token, size_t* body_offset = nullptr);

}  // namespace mt
