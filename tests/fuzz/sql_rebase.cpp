// Schema rebasing (issue 13): the SQL lexer, the owned set a plain folder's CREATE statements give,
// and the rewrite. Input: SQL text, read as one migration file (split on statement-breakpoints).
//
// Properties, beyond "does not crash":
// - lex_sql's tokens cover every byte exactly once, in order, none empty.
// - Rebasing twice gives the same text as rebasing once (owned set from the input's own CREATE
//   statements, and a fixed one; a plain and a quote-needing tenant schema).
// - The output is the input with exactly the reported rewritten references' schema names replaced
//   by the quoted tenant schema (a space in front when glued to '"' or '&'), every other byte
//   unchanged; each replaced name is the template schema. So text without an owned reference
//   comes back byte-identical, and nothing in a literal or comment can change unless the lexer
//   itself mis-reads it as a reference.
// - A plan that owns nothing changes nothing.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/tracking/rebase.hpp>
#include <mt/tracking/sql_lexer.hpp>

#include <algorithm>

namespace {

void check_coverage(std::string_view sql) {
    size_t at = 0;
    for (const auto& t : mt::lex_sql(sql)) {
        fuzz::check(t.begin == at && t.end > t.begin, "tokens cover the text in order, none empty", sql);
        at = t.end;
    }
    fuzz::check(at == sql.size(), "tokens cover the whole text", sql);
}

// The input with each rewritten reference's schema token replaced, computed independently of the
// rewriter's own loop: the token is re-lexed from its offset.
std::string expected_output(std::string_view sql, const mt::RebasedSql& r, const std::string& replacement,
                            const std::string& template_schema) {
    std::string out;
    size_t copied = 0;
    for (const auto& ref : r.references) {
        if (!ref.rewritten) continue;
        fuzz::check(ref.offset >= copied && ref.offset < sql.size(), "references are in order and inside the text");
        const std::string_view rest = sql.substr(ref.offset);
        const auto tokens = mt::lex_sql(rest);
        fuzz::check(!tokens.empty(), "a reference starts a token");
        const auto value = mt::identifier_value(rest, tokens, 0);
        fuzz::check(value && *value == template_schema, "a rewritten schema name is the template schema",
                    rest.substr(0, 80));
        out.append(sql.substr(copied, ref.offset - copied));
        if (tokens[0].kind == mt::SqlTokenKind::identifier && ref.offset > 0 &&
            (sql[ref.offset - 1] == '"' || sql[ref.offset - 1] == '&'))
            out += ' ';
        out += replacement;
        copied = ref.offset + tokens[0].end;
    }
    out.append(sql.substr(copied));
    return out;
}

void check_rebase(std::string_view sql, const mt::RebasePlan& plan, const std::string& schema) {
    const auto once = mt::rebase_sql_detailed(sql, plan, schema);
    fuzz::check(once.sql == expected_output(sql, once, mt::quote_ident(schema), plan.template_schema),
                "only the rewritten references' schema names change", sql);
    const auto twice = mt::rebase_sql(once.sql, plan, schema);
    fuzz::check(twice == once.sql, "rebasing twice equals rebasing once", sql);
    if (std::none_of(once.references.begin(), once.references.end(), [](const auto& r) { return r.rewritten; }))
        fuzz::check(once.sql == sql, "text without an owned reference is byte-identical", sql);
}

const mt::RebasePlan& fixed_plan() {
    static const mt::RebasePlan plan = [] {
        mt::RebasePlan p;
        p.enabled = true;
        p.names = {"tasks", "projects", "task_status", "Mixed Case", "public", "a\"b", "data"};
        return p;
    }();
    return plan;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 16384) return 0;
    const std::string sql(reinterpret_cast<const char*>(data), size);
    check_coverage(sql);

    mt::MigrationFolder folder;
    folder.layout = mt::FolderLayout::plain;
    mt::Migration m;
    m.name = "0000_fuzz";
    m.file = "0000_fuzz.sql";
    m.statements = mt::split_statements(sql);
    folder.migrations.push_back(m);
    mt::Manifest::Migrations settings;
    const auto derived = mt::rebase_plan(folder, settings);

    mt::RebasePlan nothing;
    nothing.enabled = true;
    for (const std::string schema : {"tenant_a", "Tenant \"x\""}) {
        for (const auto& s : m.statements) {
            check_rebase(s, derived, schema);
            check_rebase(s, fixed_plan(), schema);
            fuzz::check(mt::rebase_sql(s, nothing, schema) == s, "a plan that owns nothing changes nothing", s);
        }
        check_rebase(sql, fixed_plan(), schema);
    }
    return 0;
}
