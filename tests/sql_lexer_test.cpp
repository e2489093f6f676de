// The SQL lexer behind schema rebasing (issue 13): every quoting form PostgreSQL knows, with byte
// offsets that cover the text exactly.
#include <mt/tracking/sql_lexer.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using mt::SqlTokenKind;

namespace {

using Kind = SqlTokenKind;

// The significant tokens (no white space) as (kind, text) pairs.
std::vector<std::pair<Kind, std::string>> tokens(const std::string& sql) {
    std::vector<std::pair<Kind, std::string>> out;
    for (const auto& t : mt::lex_sql(sql))
        if (t.kind != Kind::whitespace) out.emplace_back(t.kind, std::string(t.text(sql)));
    return out;
}

// identifier_value of the first identifier-like token.
std::optional<std::string> ident(const std::string& sql) {
    const auto toks = mt::lex_sql(sql);
    for (size_t i = 0; i < toks.size(); ++i)
        if (toks[i].kind == Kind::identifier || toks[i].kind == Kind::quoted_identifier)
            return mt::identifier_value(sql, toks, i);
    return std::nullopt;
}

// Tokens cover every byte exactly once, in order.
void check_coverage(const std::string& sql) {
    size_t at = 0;
    for (const auto& t : mt::lex_sql(sql)) {
        CHECK(t.begin == at);
        CHECK(t.end > t.begin);
        at = t.end;
    }
    CHECK(at == sql.size());
}

using P = std::pair<Kind, std::string>;

}  // namespace

TEST_CASE("sql lexer: unquoted identifiers fold to lower case, quoted ones keep case and undouble quotes",
          "[sql_lexer]") {
    CHECK(ident("Public") == "public");
    CHECK(ident("TASK_Status$2") == "task_status$2");
    CHECK(ident("\"Public\"") == "Public");
    CHECK(ident("\"a\"\"b\"") == "a\"b");
    CHECK(ident("\"with space\"") == "with space");
    CHECK(ident("\"\"") == std::nullopt);  // a zero-length identifier is an error in PostgreSQL
    CHECK(ident("\"unterminated") == std::nullopt);
    // Non-ASCII letters are identifier characters and are not folded (UTF-8 database).
    CHECK(ident("Ünïcode") == "Ünïcode");
    CHECK(tokens("public.\"tasks\"") ==
          std::vector<P>{{Kind::identifier, "public"}, {Kind::punctuation, "."}, {Kind::quoted_identifier, "\"tasks\""}});
    // A '$' continues an identifier: no dollar quote starts inside one.
    CHECK(tokens("a$$b $$x$$") == std::vector<P>{{Kind::identifier, "a$$b"}, {Kind::dollar_string, "$$x$$"}});
}

TEST_CASE("sql lexer: U&\"…\" identifiers decode \\XXXX and \\+XXXXXX, and refuse a UESCAPE clause", "[sql_lexer]") {
    CHECK(ident("U&\"d\\0061t\\+000061\"") == "data");
    CHECK(ident("u&\"a\\\\b\"") == "a\\b");
    CHECK(ident("U&\"x\" UESCAPE '!'") == std::nullopt);
    CHECK(ident("U&\"\\D800\"") == std::nullopt);  // a lone surrogate
    CHECK(ident("U&\"\\12\"") == std::nullopt);    // too few hex digits
    CHECK(tokens("U&\"a\".b") ==
          std::vector<P>{{Kind::quoted_identifier, "U&\"a\""}, {Kind::punctuation, "."}, {Kind::identifier, "b"}});
    // "u &" is an identifier and an operator, not a prefix.
    CHECK(tokens("u &\"a\"") ==
          std::vector<P>{{Kind::identifier, "u"}, {Kind::punctuation, "&"}, {Kind::quoted_identifier, "\"a\""}});
}

TEST_CASE("sql lexer: identifiers are truncated to 63 bytes on a character boundary", "[sql_lexer]") {
    CHECK(ident(std::string(70, 'a')) == std::string(63, 'a'));
    // 62 ASCII bytes then a two-byte character: it does not fit, so 62 bytes remain.
    const std::string name = std::string(62, 'a') + "\xC3\xA9" + "b";
    CHECK(ident("\"" + name + "\"") == std::string(62, 'a'));
    CHECK(mt::truncate_identifier(std::string(63, 'x')) == std::string(63, 'x'));
}

TEST_CASE("sql lexer: string literals: standard, E'' escapes, U&'', B'', X'', N''", "[sql_lexer]") {
    CHECK(tokens("'it''s public.x'") == std::vector<P>{{Kind::string, "'it''s public.x'"}});
    // Standard strings take no backslash escapes: the literal ends at the second quote.
    CHECK(tokens("'a\\' b") == std::vector<P>{{Kind::string, "'a\\'"}, {Kind::identifier, "b"}});
    CHECK(tokens("E'it\\'s' x") == std::vector<P>{{Kind::string, "E'it\\'s'"}, {Kind::identifier, "x"}});
    CHECK(tokens("e'\\\\' x") == std::vector<P>{{Kind::string, "e'\\\\'"}, {Kind::identifier, "x"}});
    CHECK(tokens("E'a''b'") == std::vector<P>{{Kind::string, "E'a''b'"}});
    CHECK(tokens("U&'d\\0061ta'") == std::vector<P>{{Kind::string, "U&'d\\0061ta'"}});
    CHECK(tokens("N'x'") == std::vector<P>{{Kind::string, "N'x'"}});
    // Bit strings end at the first quote.
    CHECK(tokens("B'10''01'") == std::vector<P>{{Kind::string, "B'10'"}, {Kind::string, "'01'"}});
    CHECK(tokens("X'ff'") == std::vector<P>{{Kind::string, "X'ff'"}});
    // An identifier ending in e is not an E prefix.
    CHECK(tokens("namee'x'") == std::vector<P>{{Kind::identifier, "namee"}, {Kind::string, "'x'"}});
    const auto unterminated = mt::lex_sql("select 'abc");
    REQUIRE(unterminated.size() == 3);
    CHECK(unterminated[2].kind == Kind::string);
    CHECK_FALSE(unterminated[2].terminated);
}

TEST_CASE("sql lexer: dollar quotes: $$, $tag$, nested other tags, parameters", "[sql_lexer]") {
    CHECK(tokens("$$ it's public.x $$;") ==
          std::vector<P>{{Kind::dollar_string, "$$ it's public.x $$"}, {Kind::punctuation, ";"}});
    CHECK(tokens("$fn$ a $$ b $$ c $fn$") == std::vector<P>{{Kind::dollar_string, "$fn$ a $$ b $$ c $fn$"}});
    // $a$ is closed by $a$ only, not by $ab$.
    CHECK(tokens("$a$ x $ab$ y $a$") == std::vector<P>{{Kind::dollar_string, "$a$ x $ab$ y $a$"}});
    CHECK(tokens("$_t1$x$_t1$") == std::vector<P>{{Kind::dollar_string, "$_t1$x$_t1$"}});
    CHECK(tokens("$1 $23") == std::vector<P>{{Kind::parameter, "$1"}, {Kind::parameter, "$23"}});
    // A tag cannot start with a digit, and "$a" without a closing '$' is a lone '$'.
    CHECK(tokens("$1a$") == std::vector<P>{{Kind::parameter, "$1"}, {Kind::identifier, "a$"}});
    CHECK(tokens("$a b") == std::vector<P>{{Kind::punctuation, "$"}, {Kind::identifier, "a"}, {Kind::identifier, "b"}});
    const std::string sql = "$body$ select 1 $body$";
    const auto toks = mt::lex_sql(sql);
    size_t at = 0;
    CHECK(mt::dollar_body(sql, toks[0], &at) == " select 1 ");
    CHECK(at == 6);
    const auto open = mt::lex_sql("$x$ never closed");
    REQUIRE(open.size() == 1);
    CHECK_FALSE(open[0].terminated);
}

TEST_CASE("sql lexer: comments: -- to the end of the line, nested /* */, inside operators", "[sql_lexer]") {
    CHECK(tokens("a -- public.x\nb") ==
          std::vector<P>{{Kind::identifier, "a"}, {Kind::line_comment, "-- public.x"}, {Kind::identifier, "b"}});
    CHECK(tokens("/* a /* public.x */ still */ b") ==
          std::vector<P>{{Kind::block_comment, "/* a /* public.x */ still */"}, {Kind::identifier, "b"}});
    // An operator run stops where a comment starts, as in the server's lexer.
    CHECK(tokens("1+--x\n2") == std::vector<P>{{Kind::number, "1"}, {Kind::punctuation, "+"},
                                                {Kind::line_comment, "--x"}, {Kind::number, "2"}});
    CHECK(tokens("a*/*c*/b") == std::vector<P>{{Kind::identifier, "a"}, {Kind::punctuation, "*"},
                                                {Kind::block_comment, "/*c*/"}, {Kind::identifier, "b"}});
    const auto open = mt::lex_sql("/* /* */");
    REQUIRE(open.size() == 1);
    CHECK_FALSE(open[0].terminated);
    // A quote inside a comment starts nothing.
    CHECK(tokens("-- it's\nx") == std::vector<P>{{Kind::line_comment, "-- it's"}, {Kind::identifier, "x"}});
}

TEST_CASE("sql lexer: numbers and punctuation", "[sql_lexer]") {
    CHECK(tokens("1.5e-3 .5 4. 0x1F 1_000") == std::vector<P>{{Kind::number, "1.5e-3"}, {Kind::number, ".5"},
                                                              {Kind::number, "4."}, {Kind::number, "0x1F"},
                                                              {Kind::number, "1_000"}});
    CHECK(tokens("1..10") == std::vector<P>{{Kind::number, "1"}, {Kind::punctuation, "."}, {Kind::number, ".10"}});
    CHECK(tokens("a::b") == std::vector<P>{{Kind::identifier, "a"}, {Kind::punctuation, ":"},
                                           {Kind::punctuation, ":"}, {Kind::identifier, "b"}});
    // "1e" is 1 followed by the identifier e (no exponent digits).
    CHECK(tokens("1e") == std::vector<P>{{Kind::number, "1"}, {Kind::identifier, "e"}});
}

TEST_CASE("sql lexer: tokens cover every byte of any input exactly once", "[sql_lexer]") {
    for (const std::string sql :
         {"", " ", "CREATE TYPE \"public\".\"s\" AS ENUM('a', 'b');--> statement-breakpoint\n",
          "'", "\"", "$", "$$", "$a$", "/*", "--", "E'\\", "U&", "U&\"", "u&'", "B'", "\x80\xff", "1e+", "0x",
          "DO $$ BEGIN CREATE TYPE public.t AS ENUM ('x'); EXCEPTION WHEN duplicate_object THEN null; END $$;"}) {
        CAPTURE(sql);
        check_coverage(sql);
    }
}
