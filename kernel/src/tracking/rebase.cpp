// Schema rebasing (issue 13). The decision for a reference never depends on the schema name being
// replaced, only on its neighbours ('.' and the owned name after it), and a replaced name is never
// the neighbour another decision reads; so a second pass finds nothing new to rewrite.
//
// Owned names are kept in one set across kinds. PostgreSQL keeps relations (tables, views,
// sequences, indexes), types and functions in separate namespaces, so `public.x` could in theory
// name a shared function x while the folder owns a table x; a folder that does that has to set
// rebase = off and qualify by hand. The position of a name (after REFERENCES, before '(' …) does not
// tell the namespaces apart reliably (REFERENCES "public"."projects"("id") is a table).
#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/tracking/rebase.hpp>
#include <mt/tracking/sql_lexer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace mt {

namespace fs = std::filesystem;

namespace {

// DO blocks inside DO blocks: deeper nesting is left as written rather than recursed into.
constexpr int max_do_depth = 16;

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// Indices of the tokens that are not white space or comments.
std::vector<size_t> significant(const std::vector<SqlToken>& tokens) {
    std::vector<size_t> out;
    out.reserve(tokens.size() / 2 + 1);
    for (size_t i = 0; i < tokens.size(); ++i)
        if (!tokens[i].is_trivia()) out.push_back(i);
    return out;
}

bool is_punct(std::string_view sql, const SqlToken& t, char c) {
    return t.kind == SqlTokenKind::punctuation && sql[t.begin] == c;
}

// An unquoted keyword at sig[k], compared case-insensitively.
bool is_keyword(std::string_view sql, const std::vector<SqlToken>& tokens, const std::vector<size_t>& sig, size_t k,
                std::string_view word) {
    if (k >= sig.size()) return false;
    const SqlToken& t = tokens[sig[k]];
    return t.kind == SqlTokenKind::identifier && t.end - t.begin == word.size() &&
           lower_ascii(t.text(sql)) == word;
}

// Whether the dollar string at sig[k] is the body of a DO block: DO $$…$$ or DO LANGUAGE x $$…$$.
bool is_do_body(std::string_view sql, const std::vector<SqlToken>& tokens, const std::vector<size_t>& sig, size_t k) {
    if (k >= 1 && is_keyword(sql, tokens, sig, k - 1, "do")) return true;
    return k >= 3 && is_keyword(sql, tokens, sig, k - 3, "do") && is_keyword(sql, tokens, sig, k - 2, "language");
}

class Rewriter {
public:
    Rewriter(const RebasePlan& plan, const std::string& tenant_schema, const RebaseOptions& options)
        : plan_(plan), replacement_(quote_ident(tenant_schema)), options_(options) {}

    // Appends the rebased text of sql to out; references' offsets are shifted by base.
    void run(std::string_view sql, size_t base, int depth, std::string& out, std::vector<SchemaReference>& refs) const {
        const auto tokens = lex_sql(sql);
        const auto sig = significant(tokens);
        size_t copied = 0;
        for (size_t k = 0; k < sig.size(); ++k) {
            const SqlToken& t = tokens[sig[k]];
            if (t.kind == SqlTokenKind::dollar_string) {
                if (depth >= max_do_depth || !(options_.function_bodies || is_do_body(sql, tokens, sig, k))) continue;
                size_t body_at = 0;
                const std::string_view body = dollar_body(sql, t, &body_at);
                out.append(sql.substr(copied, body_at - copied));
                run(body, base + body_at, depth + 1, out, refs);
                copied = body_at + body.size();
                continue;
            }
            if (t.kind != SqlTokenKind::identifier && t.kind != SqlTokenKind::quoted_identifier) continue;
            if (k + 2 >= sig.size() || !is_punct(sql, tokens[sig[k + 1]], '.')) continue;
            if (k > 0 && is_punct(sql, tokens[sig[k - 1]], '.')) continue;  // a.public.x: not a schema position
            const auto schema = identifier_value(sql, tokens, sig[k]);
            if (!schema || *schema != plan_.template_schema) continue;
            auto name = identifier_value(sql, tokens, sig[k + 2]);
            if (!name) continue;
            const bool owned = plan_.owns(*name);
            refs.push_back(SchemaReference{base + t.begin, std::move(*name), owned});
            if (!owned) continue;
            out.append(sql.substr(copied, t.begin - copied));
            // "a"public.x -> "a" "t".x: glued to a closing quote (or to U&) the new quote would
            // change how the text before it lexes.
            if (t.kind == SqlTokenKind::identifier && t.begin > 0 && (sql[t.begin - 1] == '"' || sql[t.begin - 1] == '&'))
                out += ' ';
            out += replacement_;
            copied = t.end;
        }
        out.append(sql.substr(copied));
    }

private:
    const RebasePlan& plan_;
    std::string replacement_;
    const RebaseOptions& options_;
};

// ---- owned objects

class OwnedSet {
public:
    void add(std::string name, std::string kind, const std::string& source, bool referable = true) {
        name = truncate_identifier(name);
        if (name.empty()) return;
        // One entry per name, the first source read wins: snapshots come first and say "enum"
        // where the SQL only says CREATE TYPE.
        if (referable) names_.insert(name);
        for (const auto& o : objects_)
            if (o.name == name) return;
        objects_.push_back(OwnedObject{std::move(name), std::move(kind), source});
    }
    void into(RebasePlan& plan) {
        std::sort(objects_.begin(), objects_.end(), [](const OwnedObject& a, const OwnedObject& b) {
            return a.name != b.name ? a.name < b.name : a.kind < b.kind;
        });
        plan.objects = std::move(objects_);
        plan.names = std::move(names_);
    }

private:
    std::vector<OwnedObject> objects_;
    std::set<std::string> names_;
};

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw MigrationFolderError(file.string(), "cannot be read; check its permissions");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

const std::string* string_at(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

// A snapshot entry's schema and name: its "schema" ("" means public for tables) and "name",
// else the "schema.name" key it is filed under.
std::pair<std::string, std::string> schema_and_name(const std::string& key, const nlohmann::json& entry) {
    const auto dot = key.find('.');
    std::string schema = dot == std::string::npos ? "public" : key.substr(0, dot);
    std::string name = dot == std::string::npos ? key : key.substr(dot + 1);
    if (entry.is_object()) {
        if (const auto* s = string_at(entry, "schema")) schema = s->empty() ? "public" : *s;
        if (const auto* n = string_at(entry, "name"); n && !n->empty()) name = *n;
    }
    return {schema, name};
}

void read_snapshot(const fs::path& file, const std::string& template_schema, OwnedSet& owned) {
    nlohmann::json doc;
    // json::exception: a number too large for a double is out_of_range 406, not a parse_error.
    try {
        doc = nlohmann::json::parse(read_text(file));
    } catch (const nlohmann::json::exception& e) {
        throw MigrationFolderError(file.string(), std::string("malformed JSON (") + e.what() +
                                                      "); the owned objects for schema rebasing come from it: "
                                                      "regenerate it with drizzle-kit or set migrations.rebase = off");
    }
    if (!doc.is_object())
        throw MigrationFolderError(file.string(), "expected a JSON object (a drizzle-kit snapshot); regenerate it with "
                                                  "drizzle-kit or set migrations.rebase = off");
    const std::string source = file.filename().string();
    auto section = [&](const char* key, const char* kind, auto&& more) {
        const auto it = doc.find(key);
        if (it == doc.end() || !it->is_object()) return;
        for (const auto& [k, entry] : it->items()) {
            const auto [schema, name] = schema_and_name(k, entry);
            if (schema != template_schema) continue;
            std::string kind_name = kind;
            if (entry.is_object() && entry.value("materialized", false)) kind_name = "materialized view";
            owned.add(name, kind_name, source);
            if (entry.is_object()) more(name, entry);
        }
    };
    auto nothing = [](const std::string&, const nlohmann::json&) {};
    section("tables", "table", [&](const std::string& table, const nlohmann::json& entry) {
        if (const auto idx = entry.find("indexes"); idx != entry.end() && idx->is_object())
            for (const auto& [name, index] : idx->items()) {
                const auto* n = index.is_object() ? string_at(index, "name") : nullptr;
                owned.add(n ? *n : name, "index", source);
            }
        if (const auto cols = entry.find("columns"); cols != entry.end() && cols->is_object())
            for (const auto& [col_key, col] : cols->items()) {
                if (!col.is_object()) continue;
                const auto* col_name = string_at(col, "name");
                const std::string column = col_name ? *col_name : col_key;
                if (const auto id = col.find("identity"); id != col.end() && id->is_object()) {
                    if (const auto* seq = string_at(*id, "name")) owned.add(*seq, "sequence", source);
                } else if (const auto* type = string_at(col, "type");
                           type && (*type == "serial" || *type == "bigserial" || *type == "smallserial")) {
                    // PostgreSQL names a serial column's sequence <table>_<column>_seq.
                    owned.add(table + "_" + column + "_seq", "sequence", source);
                }
            }
        if (const auto pol = entry.find("policies"); pol != entry.end() && pol->is_object())
            for (const auto& [name, p] : pol->items()) owned.add(name, "policy", source, false);
    });
    section("enums", "enum", nothing);
    section("sequences", "sequence", nothing);
    section("views", "view", nothing);
    // Top-level policies belong to tables the folder does not create (drizzle's .link()); a policy
    // name is never schema-qualified in SQL, so policies are listed but rewrite nothing.
    if (const auto pol = doc.find("policies"); pol != doc.end() && pol->is_object())
        for (const auto& [key, p] : pol->items()) {
            const auto [schema, name] = schema_and_name(key, p);
            if (schema == template_schema) owned.add(name, "policy", source, false);
        }
}

// CREATE [OR REPLACE] [TEMP|UNLOGGED|…] [UNIQUE] kind [CONCURRENTLY] [IF NOT EXISTS] [schema.]name
void scan_creates(std::string_view sql, const std::string& template_schema, const std::string& source, OwnedSet& owned,
                  int depth) {
    const auto tokens = lex_sql(sql);
    const auto sig = significant(tokens);
    auto kw = [&](size_t k, std::string_view w) { return is_keyword(sql, tokens, sig, k, w); };
    for (size_t k = 0; k < sig.size(); ++k) {
        const SqlToken& t = tokens[sig[k]];
        if (t.kind == SqlTokenKind::dollar_string && depth < max_do_depth && is_do_body(sql, tokens, sig, k)) {
            scan_creates(dollar_body(sql, t), template_schema, source, owned, depth + 1);
            continue;
        }
        if (!kw(k, "create")) continue;
        size_t i = k + 1;
        if (kw(i, "or") && kw(i + 1, "replace")) i += 2;
        bool temporary = false;
        while (kw(i, "temp") || kw(i, "temporary") || kw(i, "global") || kw(i, "local") || kw(i, "unlogged") ||
               kw(i, "recursive") || kw(i, "unique")) {
            temporary = temporary || kw(i, "temp") || kw(i, "temporary");
            ++i;
        }
        std::string kind;
        if (kw(i, "materialized") && kw(i + 1, "view")) {
            kind = "materialized view";
            i += 2;
        } else {
            static const std::vector<std::pair<std::string_view, std::string_view>> kinds = {
                {"table", "table"},       {"type", "type"},         {"domain", "type"}, {"sequence", "sequence"},
                {"view", "view"},         {"function", "function"}, {"procedure", "function"},
                {"index", "index"}};
            for (const auto& [word, name] : kinds)
                if (kw(i, word)) {
                    kind = name;
                    ++i;
                    break;
                }
        }
        if (kind.empty() || temporary) continue;
        if (kind == "index" && kw(i, "concurrently")) ++i;
        if (kw(i, "if") && kw(i + 1, "not") && kw(i + 2, "exists")) i += 3;
        if (kind == "index" && kw(i, "on")) continue;  // CREATE INDEX ON t: the server picks the name
        if (i >= sig.size()) continue;
        const auto first = identifier_value(sql, tokens, sig[i]);
        if (!first) continue;
        if (i + 2 < sig.size() && is_punct(sql, tokens[sig[i + 1]], '.')) {
            const auto second = identifier_value(sql, tokens, sig[i + 2]);
            if (second && *first == template_schema) owned.add(*second, kind, source);
        } else {
            owned.add(*first, kind, source);
        }
    }
}

std::vector<fs::path> snapshots(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    fs::directory_iterator it(dir / "meta", ec);
    if (ec) return out;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) break;
        const std::string name = it->path().filename().string();
        if (name.ends_with("_snapshot.json") && it->is_regular_file(ec)) out.push_back(it->path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

RebasePlan rebase_plan(const MigrationFolder& folder, const Manifest::Migrations& settings) {
    RebasePlan plan;
    plan.template_schema = settings.template_schema;
    if (settings.rebase == RebaseMode::off) {
        plan.reason = "migrations.rebase = off: migrations run as written";
        return plan;
    }
    OwnedSet owned;
    size_t snapshot_count = 0;
    if (folder.layout == FolderLayout::drizzle_kit)
        for (const auto& file : snapshots(folder.dir)) {
            read_snapshot(file, plan.template_schema, owned);
            ++snapshot_count;
        }
    // Also what the SQL itself creates: migrations added by hand (mtctl generate writes no
    // snapshot) own their objects as much as generated ones do.
    for (const auto& m : folder.migrations)
        for (const auto& s : m.statements) scan_creates(s, plan.template_schema, m.file.filename().string(), owned, 0);
    owned.into(plan);
    plan.enabled = true;
    plan.reason = folder.layout == FolderLayout::drizzle_kit
                      ? "drizzle-kit layout: owned objects from " + std::to_string(snapshot_count) +
                            " snapshot(s) and the migrations' CREATE statements in schema " + plan.template_schema
                      : "plain folder: owned objects from the migrations' CREATE statements in schema " +
                            plan.template_schema + " (unqualified or qualified with it)";
    return plan;
}

RebasedSql rebase_sql_detailed(std::string_view sql, const RebasePlan& plan, const std::string& tenant_schema,
                               const RebaseOptions& options) {
    RebasedSql result;
    if (!plan.enabled || tenant_schema == plan.template_schema) {
        result.sql = std::string(sql);
        return result;
    }
    result.sql.reserve(sql.size() + 64);
    Rewriter(plan, tenant_schema, options).run(sql, 0, 0, result.sql, result.references);
    return result;
}

std::string rebase_sql(std::string_view sql, const RebasePlan& plan, const std::string& tenant_schema,
                       const RebaseOptions& options) {
    return rebase_sql_detailed(sql, plan, tenant_schema, options).sql;
}

std::vector<std::string> rebased_statements(const Migration& migration, const RebasePlan& plan,
                                            const std::string& tenant_schema) {
    std::vector<std::string> out;
    out.reserve(migration.statements.size());
    for (const auto& s : migration.statements) out.push_back(rebase_sql(s, plan, tenant_schema));
    return out;
}

}  // namespace mt
