// Follows PostgreSQL 15/16's scan.l closely enough that every token boundary a rewrite depends on
// (identifiers, literals, comments, dollar quotes) falls where the server puts it. Operators are
// split into single characters: nothing here needs their grouping, only that "--" and "/*" inside
// an operator run start a comment, as they do for the server.
#include <mt/tracking/sql_lexer.hpp>

#include "base/text.hpp"

#include <cstdint>

namespace mt {

namespace {

constexpr size_t max_identifier_bytes = 63;  // NAMEDATALEN - 1

using detail::is_space;
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || u >= 0x80;
}
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c) || c == '$'; }
bool is_tag_char(char c) { return is_ident_start(c) || is_digit(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

class Lexer {
public:
    explicit Lexer(std::string_view sql) : s_(sql) {}

    std::vector<SqlToken> run() {
        std::vector<SqlToken> out;
        while (pos_ < s_.size()) out.push_back(next());
        return out;
    }

private:
    char at(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }

    SqlToken make(SqlTokenKind kind, size_t begin, bool terminated = true) {
        return SqlToken{kind, begin, pos_, terminated};
    }

    SqlToken next() {
        const size_t begin = pos_;
        const char c = s_[pos_];
        if (is_space(c)) {
            while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
            return make(SqlTokenKind::whitespace, begin);
        }
        if (c == '-' && at(pos_ + 1) == '-') {
            while (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r') ++pos_;
            return make(SqlTokenKind::line_comment, begin);
        }
        if (c == '/' && at(pos_ + 1) == '*') return block_comment(begin);
        if (c == '\'') return quoted_string(begin, pos_, false);
        if (c == '"') return quoted_identifier(begin, pos_);
        if (c == '$') return dollar(begin);
        if (is_digit(c) || (c == '.' && is_digit(at(pos_ + 1)))) return number(begin);
        if (is_ident_start(c)) {
            const char lower = static_cast<char>(c | 0x20);
            const char next = at(pos_ + 1);
            if ((lower == 'e' || lower == 'n') && next == '\'') return quoted_string(begin, pos_ + 1, lower == 'e');
            if ((lower == 'b' || lower == 'x') && next == '\'') return bit_string(begin);
            if (lower == 'u' && next == '&' && at(pos_ + 2) == '\'') return quoted_string(begin, pos_ + 2, false);
            if (lower == 'u' && next == '&' && at(pos_ + 2) == '"') return quoted_identifier(begin, pos_ + 2);
            while (pos_ < s_.size() && is_ident_char(s_[pos_])) ++pos_;
            return make(SqlTokenKind::identifier, begin);
        }
        ++pos_;
        return make(SqlTokenKind::punctuation, begin);
    }

    SqlToken block_comment(size_t begin) {
        pos_ += 2;
        int depth = 1;
        while (pos_ < s_.size()) {
            if (s_[pos_] == '/' && at(pos_ + 1) == '*') {
                ++depth;
                pos_ += 2;
            } else if (s_[pos_] == '*' && at(pos_ + 1) == '/') {
                pos_ += 2;
                if (--depth == 0) return make(SqlTokenKind::block_comment, begin);
            } else {
                ++pos_;
            }
        }
        return make(SqlTokenKind::block_comment, begin, false);
    }

    // quote: offset of the opening quote. A doubled quote stands for one; in E'' a backslash
    // escapes the next byte (so \' does not end the literal).
    SqlToken quoted_string(size_t begin, size_t quote, bool backslash_escapes) {
        pos_ = quote + 1;
        while (pos_ < s_.size()) {
            const char c = s_[pos_];
            if (backslash_escapes && c == '\\') {
                pos_ += 2;
                continue;
            }
            if (c == '\'') {
                if (at(pos_ + 1) == '\'') {
                    pos_ += 2;
                    continue;
                }
                ++pos_;
                return make(SqlTokenKind::string, begin);
            }
            ++pos_;
        }
        pos_ = s_.size();
        return make(SqlTokenKind::string, begin, false);
    }

    // B'…' and X'…' take no escapes and no doubling: the first quote ends them.
    SqlToken bit_string(size_t begin) {
        const size_t close = s_.find('\'', begin + 2);
        if (close == std::string_view::npos) {
            pos_ = s_.size();
            return make(SqlTokenKind::string, begin, false);
        }
        pos_ = close + 1;
        return make(SqlTokenKind::string, begin);
    }

    SqlToken quoted_identifier(size_t begin, size_t quote) {
        pos_ = quote + 1;
        while (pos_ < s_.size()) {
            if (s_[pos_] == '"') {
                if (at(pos_ + 1) == '"') {
                    pos_ += 2;
                    continue;
                }
                ++pos_;
                return make(SqlTokenKind::quoted_identifier, begin);
            }
            ++pos_;
        }
        return make(SqlTokenKind::quoted_identifier, begin, false);
    }

    // $n is a parameter; $tag$ (tag: an identifier without '$', possibly empty) opens a dollar
    // string that the same $tag$ closes; any other '$' is a character of its own.
    SqlToken dollar(size_t begin) {
        size_t i = pos_ + 1;
        if (is_digit(at(i))) {
            while (is_digit(at(i))) ++i;
            pos_ = i;
            return make(SqlTokenKind::parameter, begin);
        }
        if (at(i) != '$') {
            if (!is_ident_start(at(i))) {
                ++pos_;
                return make(SqlTokenKind::punctuation, begin);
            }
            while (is_tag_char(at(i))) ++i;
            if (at(i) != '$') {
                ++pos_;
                return make(SqlTokenKind::punctuation, begin);
            }
        }
        const std::string_view tag = s_.substr(begin, i + 1 - begin);
        const size_t close = s_.find(tag, i + 1);
        if (close == std::string_view::npos) {
            pos_ = s_.size();
            return make(SqlTokenKind::dollar_string, begin, false);
        }
        pos_ = close + tag.size();
        return make(SqlTokenKind::dollar_string, begin);
    }

    // 42, 4.2, .42, 4., 4e2, 4.2E-1, and PostgreSQL 16's 0x2A, 0o52, 0b101010, 1_000.
    SqlToken number(size_t begin) {
        auto digits = [&](auto accept) {
            while (pos_ < s_.size() && (accept(s_[pos_]) || (s_[pos_] == '_' && accept(at(pos_ + 1))))) ++pos_;
        };
        const char prefix = static_cast<char>(at(pos_ + 1) | 0x20);
        if (s_[pos_] == '0' && (prefix == 'x' || prefix == 'o' || prefix == 'b') && is_hex(at(pos_ + 2))) {
            pos_ += 2;
            digits(is_hex);
            return make(SqlTokenKind::number, begin);
        }
        digits(is_digit);
        // "1..10" is 1 followed by "..": the second dot rules out a decimal point.
        if (at(pos_) == '.' && at(pos_ + 1) != '.') {
            ++pos_;
            digits(is_digit);
        }
        if ((at(pos_) | 0x20) == 'e') {
            const size_t sign = (at(pos_ + 1) == '+' || at(pos_ + 1) == '-') ? 1 : 0;
            if (is_digit(at(pos_ + 1 + sign))) {
                pos_ += 1 + sign;
                digits(is_digit);
            }
        }
        return make(SqlTokenKind::number, begin);
    }

    std::string_view s_;
    size_t pos_ = 0;
};

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::optional<uint32_t> hex_value(std::string_view digits) {
    uint32_t v = 0;
    for (char c : digits) {
        if (!is_hex(c)) return std::nullopt;
        v = v * 16 + static_cast<uint32_t>(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

// U&"…" content with the default escape character; nullopt for a malformed escape, a surrogate
// or a code point outside Unicode.
std::optional<std::string> decode_unicode_escapes(std::string_view body) {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
        if (body[i] != '\\') {
            out += body[i];
            continue;
        }
        if (i + 1 < body.size() && body[i + 1] == '\\') {
            out += '\\';
            ++i;
            continue;
        }
        const bool wide = i + 1 < body.size() && body[i + 1] == '+';
        const size_t width = wide ? 6 : 4;
        const size_t start = i + 1 + (wide ? 1 : 0);
        if (start + width > body.size()) return std::nullopt;
        const auto cp = hex_value(body.substr(start, width));
        if (!cp || *cp == 0 || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return std::nullopt;
        append_utf8(out, *cp);
        i = start + width - 1;
    }
    return out;
}

std::string undouble(std::string_view body) {
    std::string out;
    out.reserve(body.size());
    for (size_t i = 0; i < body.size(); ++i) {
        out += body[i];
        if (body[i] == '"' && i + 1 < body.size() && body[i + 1] == '"') ++i;
    }
    return out;
}

}  // namespace

std::vector<SqlToken> lex_sql(std::string_view sql) { return Lexer(sql).run(); }

std::string truncate_identifier(std::string_view name) {
    if (name.size() <= max_identifier_bytes) return std::string(name);
    size_t len = max_identifier_bytes;
    // Back up over continuation bytes so a multi-byte character is never cut in half.
    while (len > 0 && (static_cast<unsigned char>(name[len]) & 0xC0) == 0x80) --len;
    return std::string(name.substr(0, len));
}

std::optional<std::string> identifier_value(std::string_view sql, const std::vector<SqlToken>& tokens, size_t index) {
    if (index >= tokens.size()) return std::nullopt;
    const SqlToken& t = tokens[index];
    if (!t.terminated) return std::nullopt;
    const std::string_view text = t.text(sql);
    if (t.kind == SqlTokenKind::identifier) {
        std::string out(text);
        for (char& c : out)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return truncate_identifier(out);
    }
    if (t.kind != SqlTokenKind::quoted_identifier) return std::nullopt;
    if (text[0] == '"') {
        if (text.size() <= 2) return std::nullopt;  // "" is no identifier
        return truncate_identifier(undouble(text.substr(1, text.size() - 2)));
    }
    // U&"…": a UESCAPE clause after it changes the escape character; not worth decoding.
    for (size_t j = index + 1; j < tokens.size(); ++j) {
        if (tokens[j].is_trivia()) continue;
        if (tokens[j].kind == SqlTokenKind::identifier) {
            std::string word(tokens[j].text(sql));
            for (char& c : word) c = static_cast<char>(c | 0x20);
            if (word == "uescape") return std::nullopt;
        }
        break;
    }
    if (text.size() <= 4) return std::nullopt;
    auto decoded = decode_unicode_escapes(undouble(text.substr(3, text.size() - 4)));
    if (!decoded || decoded->empty()) return std::nullopt;
    return truncate_identifier(*decoded);
}

std::string_view dollar_body(std::string_view sql, const SqlToken& token, size_t* body_offset) {
    const std::string_view text = token.text(sql);
    const size_t tag_len = text.find('$', 1) + 1;
    const size_t body_end = token.terminated ? text.size() - tag_len : text.size();
    if (body_offset) *body_offset = token.begin + tag_len;
    if (body_end < tag_len) return {};
    return text.substr(tag_len, body_end - tag_len);
}

}  // namespace mt
