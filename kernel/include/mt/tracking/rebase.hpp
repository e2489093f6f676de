// Schema rebasing (issue 13): drizzle-kit writes every object of the tenant schema qualified with
// the schema it was generated against ("public"."projects"); at apply time such a reference to an
// object the tenant folder owns is rewritten to the tenant's schema, and everything else (shared
// tables, functions and types in public, extension objects) stays byte for byte as written.
#pragma once

#include <mt/context/manifest.hpp>
#include <mt/tracking/migration_folder.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mt {

// One object the tenant folder creates in the template schema.
struct OwnedObject {
    std::string name;    // as PostgreSQL stores it (case kept, truncated to 63 bytes)
    std::string kind;    // table, enum, sequence, view, materialized view, index, function, type, policy
    std::string source;  // the snapshot or migration file it was read from (the first one)
};

// What a tenant folder owns and whether its migrations are rebased.
struct RebasePlan {
    bool enabled = false;
    std::string template_schema = "public";
    std::vector<OwnedObject> objects;  // sorted by name, then kind
    std::set<std::string> names;       // the owned names (one namespace is enough: a reference's
                                       // position is never needed to decide, see rebase.cpp)
    std::string reason;                // one sentence: why rebasing is on or off for this folder

    bool owns(const std::string& name) const { return names.count(name) != 0; }
};

// The owned objects of a folder and whether to rebase it (settings: [migrations] rebase and
// template_schema).
// - drizzle-kit layout: the union over every meta/*_snapshot.json of its tables (with their
//   indexes and identity sequences), enums, sequences, views and policies whose schema is the
//   template schema; roles are cluster-wide and never rebased. rebase = auto turns it on.
// - plain layout: the names the folder's own CREATE TABLE / TYPE / SEQUENCE / VIEW / MATERIALIZED
//   VIEW / FUNCTION / INDEX statements create, unqualified or qualified with the template schema.
//   rebase = auto turns it on as well: a reference `public.x` to an object the same folder
//   creates can only mean the tenant's copy (the shared schema's x would be created by the shared
//   folder), and a folder without such a reference runs byte for byte as before.
// Throws MigrationFolderError naming the snapshot for a snapshot that is not JSON or not an object.
RebasePlan rebase_plan(const MigrationFolder& folder, const Manifest::Migrations& settings);

struct RebaseOptions {
    // Also rebase inside dollar-quoted strings other than DO blocks (function bodies). Off: a
    // body runs later under the caller's search_path, and what it names is the author's choice.
    bool function_bodies = false;
};

// A template-schema reference found in a statement.
struct SchemaReference {
    size_t offset = 0;       // byte offset of the schema name in the original text
    std::string name;        // the object named after the schema
    bool rewritten = false;  // owned (rewritten to the tenant schema) or left as written (shared)
};

struct RebasedSql {
    std::string sql;
    std::vector<SchemaReference> references;  // in text order, rewritten and kept alike
};

// Rewrites each reference `<template>.<owned>` (any quoting: public.x, "public"."x", "PUBLIC"
// is not public, PUBLIC is) to `"<tenant_schema>".<owned>`, replacing only the schema name's
// bytes. Literals, comments, function bodies and every other byte are left as written. DO blocks
// are rebased (they run now, as part of the migration; drizzle-kit before 0.31 wrapped CREATE TYPE
// and foreign keys in them). Rebasing twice gives the same text as rebasing once; text without an
// owned reference comes back byte-identical.
RebasedSql rebase_sql_detailed(std::string_view sql, const RebasePlan& plan, const std::string& tenant_schema,
                               const RebaseOptions& options = {});
std::string rebase_sql(std::string_view sql, const RebasePlan& plan, const std::string& tenant_schema,
                       const RebaseOptions& options = {});

// One migration's statements as they run for tenant_schema (unchanged when the plan is off);
// what `migrate --dry-run` and `doctor` show.
std::vector<std::string> rebased_statements(const Migration& migration, const RebasePlan& plan,
                                            const std::string& tenant_schema);

}  // namespace mt
