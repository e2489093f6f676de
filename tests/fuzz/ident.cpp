// Identifier quoting and tenant id validation (SPEC §5.1): the gate every tenant id passes before
// any SQL is built. Input: the bytes of one tenant id.
//
// Properties, beyond "does not crash":
// - quote_ident(x), read back by PostgreSQL's rule (a double-quoted identifier, "" for one quote
//   inside), gives x again; empty names and NUL bytes are refused with mt::Error.
// - Kernel::tenant(id), what every command calls before it sends SQL for a tenant, either refuses
//   with TenantIdError (no other exception) or returns a schema that obeys every rule: at most 63
//   bytes (PostgreSQL would silently truncate a longer name, so two tenants could share a schema),
//   not pg_*, not reserved, not the shared schema; id_from_schema maps it back to the id; and the
//   statement with_idents builds from it quotes back to exactly that schema.
// - For two configurations the accept/refuse decision is compared with an oracle written without
//   std::regex, so a pattern or rule change that lets more through is a finding.
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>

#include <array>
#include <memory>

namespace {

struct Setup {
    std::unique_ptr<mt::Kernel> kernel;
    std::string schema_template;
    std::string shared;
    bool (*oracle)(std::string_view id);
};

bool id_chars(std::string_view id) {
    auto ascii_word = [](unsigned char c) { return c < 0x80 && (std::isalnum(c) || c == '_'); };
    if (id.empty() || !ascii_word(static_cast<unsigned char>(id[0]))) return false;
    for (unsigned char c : id)
        if (!ascii_word(c) && c != '-') return false;
    return true;
}

// Defaults: ^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$, tenant_{id}, shared public.
bool default_oracle(std::string_view id) { return id_chars(id) && id.size() <= 63 && 7 + id.size() <= 63; }

// ^.+$ with {id} alone: only the control-character and schema rules stand between input and SQL.
bool bare_oracle(std::string_view id) {
    if (id.empty() || id.size() > 63) return false;
    for (unsigned char c : id)
        if (c < 0x20 || c == 0x7f) return false;
    if (id.starts_with("pg_")) return false;
    return id != "public" && id != "information_schema" && id != "pg_catalog" && id != "app";
}

std::vector<Setup>& setups() {
    static fuzz::Scratch scratch("ident");
    static std::vector<Setup> all = [] {
        const auto manifest = scratch.dir() / "multitenant.ini";
        fuzz::Scratch::write(manifest, "[database]\nurl = postgresql://fuzz@127.0.0.1:1/fuzz\n");
        auto make = [&](std::string schema_template, std::string shared, std::string pattern, bool (*oracle)(std::string_view)) {
            mt::ManifestInput input;
            input.file = manifest;
            input.use_environment = false;
            input.overrides = {"--isolation.schema_template=" + schema_template, "--isolation.shared_schema=" + shared};
            if (!pattern.empty()) input.overrides.push_back("--isolation.tenant_id_pattern=" + pattern);
            return Setup{std::make_unique<mt::Kernel>(input), schema_template, shared, oracle};
        };
        std::vector<Setup> v;
        v.push_back(make("tenant_{id}", "public", "", default_oracle));
        v.push_back(make("{id}", "app", "^.+$", bare_oracle));
        v.push_back(make("t_{id}_x", "t_shared_x", "^[^\"]{1,40}$", nullptr));
        return v;
    }();
    return all;
}

void check_quoting(std::string_view text) {
    std::string quoted;
    try {
        quoted = mt::quote_ident(text);
    } catch (const mt::Error&) {
        fuzz::check(text.empty() || text.find('\0') != std::string_view::npos, "quote_ident refuses only empty names and NUL",
                    text);
        return;
    }
    fuzz::check(!text.empty() && text.find('\0') == std::string_view::npos, "quote_ident accepted an empty name or a NUL",
                text);
    std::string back;
    fuzz::check(fuzz::unquote_ident(quoted, back) && back == text, "quote_ident round-trips through PostgreSQL's rule",
                quoted);
}

void check_tenant(const Setup& s, const std::string& id) {
    mt::Tenant tenant;
    try {
        tenant = s.kernel->tenant(id);
    } catch (const mt::TenantIdError& e) {
        if (s.oracle) fuzz::check(!s.oracle(id), "an id the oracle accepts is accepted", e.what());
        return;
    } catch (const std::exception& e) {
        fuzz::violated("Kernel::tenant refuses only with TenantIdError", e.what());
    }
    if (s.oracle) fuzz::check(s.oracle(id), "an id the oracle refuses is refused before any SQL", id);
    const std::string& schema = tenant.schema;
    std::string expected = s.schema_template;
    expected.replace(expected.find("{id}"), 4, id);
    fuzz::check(tenant.id == id && schema == expected, "the schema is the template applied to the id", schema);
    for (unsigned char c : id) fuzz::check(c >= 0x20 && c != 0x7f, "an accepted id has no control character", id);
    fuzz::check(!schema.empty() && schema.size() <= 63, "an accepted schema fits PostgreSQL's 63 bytes", schema);
    fuzz::check(!schema.starts_with("pg_"), "an accepted schema is not pg_*", schema);
    for (std::string_view reserved : {"public", "information_schema", "pg_catalog"})
        fuzz::check(schema != reserved, "an accepted schema is not reserved", schema);
    fuzz::check(schema != s.shared, "an accepted schema is not the shared schema", schema);
    fuzz::check(s.kernel->namer().id_from_schema(schema) == id, "id_from_schema inverts schema_name", schema);

    const std::string prefix = "CREATE SCHEMA IF NOT EXISTS ";
    const std::string sql = mt::with_idents("CREATE SCHEMA IF NOT EXISTS {schema}", {{"schema", schema}});
    std::string back;
    fuzz::check(sql.starts_with(prefix) && fuzz::unquote_ident(std::string_view(sql).substr(prefix.size()), back) &&
                    back == schema,
                "the statement names exactly the accepted schema", sql);
}

}  // namespace

// Loading plugins and building kernels once, before the first input's timeout clock starts.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setups();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string id(reinterpret_cast<const char*>(data), size);
    check_quoting(id);
    if (size > 4096) return 0;  // std::regex recurses per character; real ids are short
    for (const auto& s : setups()) check_tenant(s, id);
    return 0;
}
