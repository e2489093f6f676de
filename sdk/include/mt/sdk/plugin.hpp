// Header-only C++ layer over abi.h: a plugin author writes a class deriving from one of the kind
// interfaces below and one MT_PLUGIN(...) line; the SDK generates the extern "C" thunks, which catch
// every exception and turn it into a status plus message, and the `.note.mtenant` ELF note the
// host reads before loading the file.
//
// The minor a plugin requires of the host (abi.h, "Compatibility") is the lowest minor its kinds'
// thunks need — 0 for every kind today — raised by defining MT_PLUGIN_REQUIRED_ABI_MINOR before
// including this header.
//
// Over 500 lines on purpose: a plugin author includes one header, and the installed SDK stays a
// single file pair (abi.h + this); the thunks could move to a detail/ header if it grows further.
#pragma once

#include <mt/sdk/abi.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#ifndef MT_PLUGIN_REQUIRED_ABI_MINOR
#define MT_PLUGIN_REQUIRED_ABI_MINOR 0
#endif

namespace mt::sdk {

inline std::string_view view(mt_str s) { return s.data ? std::string_view(s.data, s.size) : std::string_view(); }
inline mt_str str(std::string_view s) { return mt_str{s.data(), s.size()}; }
inline const mt_str null_str{nullptr, 0};
inline std::optional<std::string> opt(mt_str s) {
    if (!s.data) return std::nullopt;
    return std::string(s.data, s.size);
}
inline mt_str str_opt(const std::optional<std::string>& s) { return s ? str(*s) : null_str; }

// Thrown by plugin code; becomes MT_ERROR (or MT_INVALID_CONFIG for ConfigError) at the boundary.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct ConfigError : Error {
    ConfigError(const std::string& key, const std::string& what) : Error(key + ": " + what), key(key) {}
    std::string key;
};
// A host SQL call failed; sqlstate is empty when the failure was not a server error.
struct SqlError : Error {
    SqlError(const std::string& msg, std::string state) : Error(msg), sqlstate(std::move(state)) {}
    std::string sqlstate;
};

inline void write_error(mt_error* err, std::string_view msg) noexcept {
    if (!err || !err->data || err->capacity == 0) return;
    size_t n = std::min(msg.size(), err->capacity - 1);
    std::memcpy(err->data, msg.data(), n);
    err->data[n] = '\0';
    err->size = n;
}

// A growable struct another binary wrote, as this binary's layout: the first min(struct_size,
// sizeof(T)) bytes copied over zeros, so a field the writer did not have reads as zero and a
// field this binary does not know is never touched (abi.h, "How structs grow").
template <class T>
T read_sized(const T* p) noexcept {
    static_assert(std::is_trivially_copyable_v<T> && offsetof(T, struct_size) == 0);
    T out{};
    if (!p) return out;
    uint32_t declared = 0;
    std::memcpy(&declared, p, sizeof declared);
    std::memcpy(static_cast<void*>(&out), p, std::min<size_t>(declared, sizeof(T)));
    out.struct_size = static_cast<uint32_t>(sizeof(T));
    return out;
}

namespace detail {

// The one reader of the "SQLSTATE xxxxx: " message prefix, used only when the other side is an
// ABI 1.0 binary that cannot fill mt_error.sqlstate (abi.h, mt_error). Empty when absent.
inline std::string legacy_sqlstate(std::string_view message) {
    if (message.size() < 16 || message.substr(0, 9) != "SQLSTATE " || message.substr(14, 2) != ": ") return {};
    const std::string_view state = message.substr(9, 5);
    for (char c : state)
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) return {};
    return std::string(state);
}

// The SQLSTATE field of an mt_error whose owner is 1.1 or newer, or empty.
inline std::string sqlstate_field(const mt_error& err) {
    const size_t n = ::strnlen(err.sqlstate, sizeof err.sqlstate);
    return n == 5 ? std::string(err.sqlstate, 5) : std::string();
}

// Writes state into a 1.1 buffer's sqlstate (five characters, else left empty).
inline void write_sqlstate(mt_error* err, std::string_view state) noexcept {
    if (!err || state.size() != 5) return;
    std::memcpy(err->sqlstate, state.data(), 5);
    err->sqlstate[5] = '\0';
}

}  // namespace detail

// Fixed-size error buffer for calls the SDK makes into the host.
struct ErrorBuffer {
    char data[2048] = {};
    mt_error err{data, sizeof data, 0, {}};
    std::string_view message() const { return {data, err.size}; }
};

// A JSON string literal for s (for passing a batch of values as one jsonb $n parameter).
inline std::string json_quote(std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
    return out;
}

// Parses "250ms", "5s", "2m", "1h" (a bare number is milliseconds). Throws std::invalid_argument,
// also for a value whose milliseconds do not fit 64 bits: callers catch only that, and a wrapped
// count would be a negative or tiny duration.
inline std::chrono::milliseconds parse_duration(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == 0) throw std::invalid_argument("expected a duration such as 250ms, 5s, 2m or 1h");
    const std::string_view unit = text.substr(i);
    long long per_unit = 0;
    if (unit.empty() || unit == "ms") per_unit = 1;
    else if (unit == "s") per_unit = 1000;
    else if (unit == "m") per_unit = 60 * 1000;
    else if (unit == "h") per_unit = 60 * 60 * 1000;
    else throw std::invalid_argument("unknown duration unit '" + std::string(unit) + "' (use ms, s, m or h)");
    const long long most = std::numeric_limits<long long>::max() / per_unit;
    long long n = 0;
    for (char c : text.substr(0, i)) {
        if (n > (most - (c - '0')) / 10)
            throw std::invalid_argument("duration '" + std::string(text) + "' is too large");
        n = n * 10 + (c - '0');
    }
    return std::chrono::milliseconds(n * per_unit);
}

// The [plugin.NAME] section as given to create(); keys were checked against the factory's list.
class Config {
public:
    Config() = default;
    explicit Config(const mt_config* c) {
        if (!c) return;
        for (size_t i = 0; i < c->count; ++i)
            values_[std::string(view(c->entries[i].key))] = std::string(view(c->entries[i].value));
    }
    bool has(const std::string& key) const { return values_.count(key) != 0; }
    std::string get(const std::string& key, const std::string& fallback = {}) const {
        auto it = values_.find(key);
        return it == values_.end() ? fallback : it->second;
    }
    std::string require(const std::string& key) const {
        auto it = values_.find(key);
        if (it == values_.end() || it->second.empty()) throw ConfigError(key, "is required");
        return it->second;
    }
    long long get_int(const std::string& key, long long fallback) const {
        if (!has(key)) return fallback;
        const std::string v = get(key);
        try {
            size_t used = 0;
            long long n = std::stoll(v, &used);
            if (used == v.size()) return n;
        } catch (const std::exception&) {
        }
        throw ConfigError(key, "expected an integer, got '" + v + "'");
    }
    double get_double(const std::string& key, double fallback) const {
        if (!has(key)) return fallback;
        const std::string v = get(key);
        try {
            size_t used = 0;
            double d = std::stod(v, &used);
            if (used == v.size()) return d;
        } catch (const std::exception&) {
        }
        throw ConfigError(key, "expected a number, got '" + v + "'");
    }
    bool get_bool(const std::string& key, bool fallback) const {
        if (!has(key)) return fallback;
        const std::string v = get(key);
        if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
        if (v == "false" || v == "0" || v == "no" || v == "off") return false;
        throw ConfigError(key, "expected true or false, got '" + v + "'");
    }
    std::chrono::milliseconds get_duration(const std::string& key, std::chrono::milliseconds fallback) const {
        if (!has(key)) return fallback;
        try {
            return parse_duration(get(key));
        } catch (const std::exception& e) {
            throw ConfigError(key, std::string(e.what()) + ", got '" + get(key) + "'");
        }
    }
    const std::map<std::string, std::string>& values() const { return values_; }

private:
    std::map<std::string, std::string> values_;
};

class Host {
public:
    Host(const mt_host* h, std::string plugin) : host_(read_sized(h)), plugin_(std::move(plugin)) {}
    void log(mt_log_level level, std::string_view message) const {
        if (host_.log) host_.log(host_.ctx, level, str(plugin_), str(message));
    }
    // The host's ABI minor (0 for a 1.0 host, which does not say).
    uint32_t abi_minor() const { return host_.abi_minor; }

private:
    mt_host host_;
    std::string plugin_;
};

using Value = std::optional<std::string>;
using Row = std::vector<Value>;

// SQL on the connection or transaction the current call is about (lent by the kernel).
class Sql {
public:
    explicit Sql(const mt_sql* s) : sql_(read_sized(s)), raw_(s) {}

    std::vector<Row> exec(std::string_view statement, const std::vector<Value>& params = {}) const {
        std::vector<Row> rows;
        each(statement, params, [&](Row&& r) { rows.push_back(std::move(r)); });
        return rows;
    }

    // The same, handing each row to on_row as the host delivers it instead of collecting them (a
    // large result is then never held twice).
    void each(std::string_view statement, const std::vector<Value>& params, const std::function<void(Row&&)>& on_row) const {
        std::vector<mt_str> p;
        p.reserve(params.size());
        for (const auto& v : params) p.push_back(str_opt(v));
        // The row callback runs inside the host's exec: nothing may unwind through the host's
        // frames, so a failure is parked here and rethrown once exec has returned.
        struct Collected {
            const std::function<void(Row&&)>* on_row;
            std::exception_ptr error;
        } collected{&on_row, nullptr};
        ErrorBuffer eb;
        auto collect = [](void* user, size_t n, const mt_str* values) noexcept -> int {
            auto* out = static_cast<Collected*>(user);
            try {
                Row r;
                r.reserve(n);
                for (size_t i = 0; i < n; ++i) r.push_back(opt(values[i]));
                (*out->on_row)(std::move(r));
                return 0;
            } catch (...) {
                out->error = std::current_exception();
                return 1;
            }
        };
        if (!sql_.exec) throw Error("the host lent no SQL execution");
        mt_status st = sql_.exec(sql_.ctx, str(statement), p.data(), p.size(), collect, &collected, &eb.err);
        if (collected.error) std::rethrow_exception(collected.error);
        if (st != MT_OK) {
            std::string msg(eb.message());
            throw SqlError(msg, abi_minor() >= 1 ? detail::sqlstate_field(eb.err) : detail::legacy_sqlstate(msg));
        }
    }

    std::string quote(std::string_view ident) const {
        if (!sql_.quote_ident) throw Error("the host lent no identifier quoting");
        std::string out(ident.size() * 2 + 3, '\0');
        size_t n = sql_.quote_ident(sql_.ctx, str(ident), out.data(), out.size());
        if (n + 1 > out.size()) {
            out.assign(n + 1, '\0');
            n = sql_.quote_ident(sql_.ctx, str(ident), out.data(), out.size());
        }
        out.resize(n);
        return out;
    }

    // The host's ABI minor (0 for a 1.0 host, which does not say).
    uint32_t abi_minor() const { return sql_.abi_minor; }

    // Replaces every "{table}" in a constant statement with the quoted "schema"."table".
    std::string with_table(std::string_view statement, std::string_view schema, std::string_view table) const {
        const std::string qualified = quote(schema) + "." + quote(table);
        std::string out;
        size_t pos = 0;
        for (;;) {
            size_t at = statement.find("{table}", pos);
            out.append(statement.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
            if (at == std::string_view::npos) break;
            out += qualified;
            pos = at + 7;
        }
        return out;
    }

    const mt_sql* raw() const { return raw_; }

private:
    mt_sql sql_;
    const mt_sql* raw_;
};

// ---- kind interfaces ----------------------------------------------------------------------

struct Column {
    std::string name;
    std::string type;
    bool not_null = false;
};

// A tracking table as found: columns is empty when it does not exist yet.
struct Table {
    std::string_view schema;
    std::string_view name;
    std::vector<Column> columns;
    const Column* column(std::string_view n) const {
        for (const auto& c : columns)
            if (c.name == n) return &c;
        return nullptr;
    }
};

struct Record {
    std::optional<std::string> name;
    std::optional<std::string> hash;
    std::optional<int64_t> created_at_ms;  // the table's timestamp
    std::optional<int64_t> when_ms;        // the drizzle-kit journal's `when`, when known
};

// [{"name":…,"hash":…,"created_at_ms":…}, …] in order: lets a format write or delete a whole batch
// of records with one statement over jsonb_array_elements($1::jsonb) WITH ORDINALITY.
inline std::string records_json(const std::vector<Record>& records) {
    std::string out = "[";
    for (const auto& r : records) {
        if (out.size() > 1) out += ',';
        out += "{\"name\":" + (r.name ? json_quote(*r.name) : std::string("null"));
        out += ",\"hash\":" + (r.hash ? json_quote(*r.hash) : std::string("null"));
        out += ",\"created_at_ms\":" + (r.created_at_ms ? std::to_string(*r.created_at_ms) : std::string("null"));
        out += ",\"when_ms\":" + (r.when_ms ? std::to_string(*r.when_ms) : std::string("null"));
        out += '}';
    }
    return out + "]";
}

// What a tracking format keeps in a table, and its short label (ABI 1.1). A format class
// declares `TrackingCapabilities capabilities(const Table& table) const` (columns empty: a table
// its create() would make); one that does not gets the kernel's derivation from identifies_by().
//
// ABI 1.2: `copy` names the table's own columns that list_query() computes its rows from, so the
// kernel can read many tenants' tables by COPY (no plan, no index opened) instead; see
// mt_tracking_capabilities in <mt/sdk/abi.h> for the promise it makes. Leave `order` empty when the
// table cannot be read that way (list_query() is then used).
struct TrackingCopyRead {
    std::string_view order;        // smallint/integer/bigint column the rows are listed by
    std::string_view name;         // text/varchar column, or empty (NULL)
    std::string_view hash;         // text/varchar column, or empty (NULL)
    std::string_view created_at;   // read as created_at_unit says, or empty (NULL)
    uint32_t created_at_unit = 0;  // MT_COPY_TIME_*
};
struct TrackingCapabilities {
    uint32_t keeps = 0;       // MT_TRACKING_* flags
    std::string_view label;   // a string literal: the kernel keeps the view while the plugin is loaded
    TrackingCopyRead copy;    // string literals too
};

class TrackingFormat {
public:
    static constexpr mt_kind kind = MT_KIND_TRACKING_FORMAT;
    virtual ~TrackingFormat() = default;
    // > 0 when the columns are this format's layout; higher is a more specific match.
    virtual int detect(const std::vector<Column>& columns) = 0;
    virtual void create(Sql& sql, const Table& table) = 0;
    // A SELECT over {table} yielding (name text, hash text, created_at_ms bigint), valid whatever
    // optional columns the table has (read those through to_jsonb(t)->>'col').
    virtual std::string_view list_query() const = 0;
    virtual uint32_t identifies_by() const = 0;
    virtual std::vector<Record> list(Sql& sql, const Table& table) {
        std::vector<Record> out;
        for (const auto& row : sql.exec(sql.with_table(list_query(), table.schema, table.name))) {
            Record r;
            r.name = row.at(0);
            r.hash = row.at(1);
            if (row.at(2)) r.created_at_ms = std::stoll(*row.at(2));
            out.push_back(std::move(r));
        }
        return out;
    }
    virtual void record(Sql& sql, const Table& table, const std::vector<Record>& records) = 0;
    virtual void remove(Sql& sql, const Table& table, const std::vector<Record>& records) = 0;
};

struct DiscoveredTenant {
    std::string id;
    std::optional<std::string> server;
};

class TenantDiscovery {
public:
    static constexpr mt_kind kind = MT_KIND_TENANT_DISCOVERY;
    virtual ~TenantDiscovery() = default;
    virtual std::vector<DiscoveredTenant> discover(Sql& sql) = 0;
    // Hands each tenant to emit as it is found (what the host receives); emit returns false to stop.
    // Override it when the list can be large, so that it is never held whole in the plugin.
    virtual void discover_each(Sql& sql, const std::function<bool(DiscoveredTenant&&)>& emit) {
        for (auto& t : discover(sql))
            if (!emit(std::move(t))) return;
    }
};

class MetricsSink {
public:
    static constexpr mt_kind kind = MT_KIND_METRICS_SINK;
    virtual ~MetricsSink() = default;
    virtual void on_event(const mt_event& event) = 0;
    virtual bool can_render() const { return false; }
    virtual std::string render() { return {}; }
};

struct Failure {
    std::string sqlstate;
    std::string message;
    bool is_connection = false;
    int attempt = 1;
};

class RetryPolicy {
public:
    static constexpr mt_kind kind = MT_KIND_RETRY_POLICY;
    virtual ~RetryPolicy() = default;
    // The delay before the next attempt, or nullopt to give up.
    virtual std::optional<std::chrono::milliseconds> decide(const Failure& failure) = 0;
    virtual int max_attempts() const = 0;
};

struct RequestView {
    std::string_view method, path, host, query;
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    // Case-insensitive header lookup (HTTP header names are case-insensitive).
    std::optional<std::string_view> header(std::string_view name) const {
        for (const auto& [k, v] : headers) {
            if (k.size() == name.size() &&
                std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
                    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
                }))
                return v;
        }
        return std::nullopt;
    }
};

// Thrown by an extractor for malformed input (becomes MT_EXTRACT_ERROR).
struct ExtractError : Error {
    using Error::Error;
};

class RequestTenantExtractor {
public:
    static constexpr mt_kind kind = MT_KIND_REQUEST_TENANT_EXTRACTOR;
    virtual ~RequestTenantExtractor() = default;
    // A tenant id, or nullopt when this extractor finds none.
    virtual std::optional<std::string> extract(const RequestView& request) = 0;
};

// ---- thunks -------------------------------------------------------------------------------

namespace detail {

// host_minor: the minor of the host that owns err (mt_error.sqlstate is written only when >= 1).
template <class F>
mt_status guarded(mt_error* err, F&& f, uint32_t host_minor = 0) noexcept {
    try {
        f();
        return MT_OK;
    } catch (const SqlError& e) {
        write_error(err, e.what());
        if (host_minor >= 1) write_sqlstate(err, e.sqlstate);
        return MT_SQL_ERROR;
    } catch (const ConfigError& e) {
        write_error(err, e.what());
        return MT_INVALID_CONFIG;
    } catch (const std::exception& e) {
        write_error(err, e.what());
        return MT_ERROR;
    } catch (...) {
        write_error(err, "unknown exception");
        return MT_ERROR;
    }
}

inline std::vector<Record> to_records(const mt_migration_record* r, size_t n) {
    std::vector<Record> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
        out.push_back(Record{opt(r[i].name), opt(r[i].hash),
                             r[i].created_at_ms >= 0 ? std::optional<int64_t>(r[i].created_at_ms) : std::nullopt,
                             r[i].when_ms >= 0 ? std::optional<int64_t>(r[i].when_ms) : std::nullopt});
    return out;
}

inline std::vector<Column> to_columns(const mt_column* c, size_t n) {
    std::vector<Column> cols;
    cols.reserve(n);
    for (size_t i = 0; i < n; ++i)
        cols.push_back(Column{std::string(view(c[i].name)), std::string(view(c[i].type)), c[i].not_null != 0});
    return cols;
}

inline Table to_table(const mt_table* t) {
    return Table{view(t->schema), view(t->name), to_columns(t->columns, t->ncolumns)};
}

template <class T>
struct TrackingThunks {
    static T& self(void* p) { return *static_cast<T*>(p); }
    static mt_status detect(void* p, const mt_column* c, size_t n, int* score, mt_error* err) noexcept {
        return guarded(err, [&] { *score = self(p).detect(to_columns(c, n)); });
    }
    static mt_status create(void* p, const mt_sql* s, const mt_table* t, mt_error* err) noexcept {
        Sql sql(s);
        return guarded(err, [&] { self(p).create(sql, to_table(t)); }, sql.abi_minor());
    }
    static mt_status list(void* p, const mt_sql* s, const mt_table* t, mt_record_fn fn, void* user, mt_error* err) noexcept {
        Sql sql(s);
        return guarded(err, [&] {
            for (const auto& r : self(p).list(sql, to_table(t))) {
                mt_migration_record c{str_opt(r.name), str_opt(r.hash), r.created_at_ms.value_or(-1), r.when_ms.value_or(-1)};
                if (fn(user, &c) != 0) break;
            }
        }, sql.abi_minor());
    }
    static mt_status record(void* p, const mt_sql* s, const mt_table* t, const mt_migration_record* r, size_t n,
                            mt_error* err) noexcept {
        Sql sql(s);
        return guarded(err, [&] { self(p).record(sql, to_table(t), to_records(r, n)); }, sql.abi_minor());
    }
    static mt_status remove(void* p, const mt_sql* s, const mt_table* t, const mt_migration_record* r, size_t n,
                            mt_error* err) noexcept {
        Sql sql(s);
        return guarded(err, [&] { self(p).remove(sql, to_table(t), to_records(r, n)); }, sql.abi_minor());
    }
    // An empty view (data NULL) when the plugin threw: the host refuses it with the format's name.
    static mt_str list_query(void* p) noexcept {
        try {
            return str(self(p).list_query());
        } catch (...) {
            return null_str;
        }
    }
    // 0 (identifies by nothing) when the plugin threw: the host refuses it with the format's name.
    static uint32_t identifies_by(void* p) noexcept {
        try {
            return self(p).identifies_by();
        } catch (...) {
            return 0;
        }
    }
    static mt_status capabilities(void* p, const mt_table* t, mt_tracking_capabilities* out, mt_error* err) noexcept {
        return guarded(err, [&] {
            const TrackingCapabilities c = self(p).capabilities(to_table(t));
            // Only the fields the kernel's struct has room for.
            if (out->struct_size >= offsetof(mt_tracking_capabilities, keeps) + sizeof out->keeps) out->keeps = c.keeps;
            if (out->struct_size >= offsetof(mt_tracking_capabilities, label) + sizeof out->label) out->label = str(c.label);
            // 1.2: the COPY read, only into a kernel's struct that has all of it.
            if (out->struct_size >= offsetof(mt_tracking_capabilities, reserved_1_2) + sizeof out->reserved_1_2) {
                out->copy_order = str(c.copy.order);
                out->copy_name = str(c.copy.name);
                out->copy_hash = str(c.copy.hash);
                out->copy_created_at = str(c.copy.created_at);
                out->copy_created_at_unit = c.copy.created_at_unit;
            }
        });
    }
    // NULL when the class declares no capabilities(): the kernel then derives them.
    static constexpr auto capabilities_fn() {
        if constexpr (requires(const T& f, const Table& t) { TrackingCapabilities{f.capabilities(t)}; })
            return &capabilities;
        else
            return static_cast<decltype(&capabilities)>(nullptr);
    }
    static const void* vtable() {
        static const mt_tracking_format_vtable v{sizeof(mt_tracking_format_vtable), detect, create, list, record,
                                                 remove, list_query, identifies_by, capabilities_fn()};
        return &v;
    }
};

template <class T>
struct DiscoveryThunks {
    static mt_status discover(void* p, const mt_sql* s, mt_tenant_fn fn, void* user, mt_error* err) noexcept {
        Sql sql(s);
        return guarded(err, [&] {
            static_cast<T*>(p)->discover_each(sql, [&](DiscoveredTenant&& t) {
                return fn(user, str(t.id), str_opt(t.server)) == 0;
            });
        }, sql.abi_minor());
    }
    static const void* vtable() {
        static const mt_tenant_discovery_vtable v{sizeof(mt_tenant_discovery_vtable), discover};
        return &v;
    }
};

template <class T>
struct SinkThunks {
    static void on_event(void* p, const mt_event* e) noexcept {
        try {
            const mt_event event = read_sized(e);
            static_cast<T*>(p)->on_event(event);
        } catch (...) {
            // A sink must never break the operation it observes.
        }
    }
    // A sink that cannot render yields no text.
    static mt_status render(void* p, mt_text_fn fn, void* user, mt_error* err) noexcept {
        return guarded(err, [&] {
            if (!static_cast<T*>(p)->can_render()) return;
            std::string text = static_cast<T*>(p)->render();
            fn(user, str(text));
        });
    }
    static const void* vtable() {
        static const mt_metrics_sink_vtable v{sizeof(mt_metrics_sink_vtable), on_event, render};
        return &v;
    }
};

template <class T>
struct RetryThunks {
    static void decide(void* p, const mt_failure* f, int* retry, int64_t* delay_ms) noexcept {
        *retry = 0;
        *delay_ms = 0;
        try {
            Failure failure{std::string(view(f->sqlstate)), std::string(view(f->message)), f->is_connection != 0,
                            f->attempt};
            if (auto d = static_cast<T*>(p)->decide(failure)) {
                *retry = 1;
                *delay_ms = d->count();
            }
        } catch (...) {
            *retry = 0;
        }
    }
    static int max_attempts(void* p) noexcept {
        try {
            return static_cast<T*>(p)->max_attempts();
        } catch (...) {
            return 1;
        }
    }
    static const void* vtable() {
        static const mt_retry_policy_vtable v{sizeof(mt_retry_policy_vtable), decide, max_attempts};
        return &v;
    }
};

template <class T>
struct ExtractorThunks {
    static mt_extract_result extract(void* p, const mt_request_view* r, char* out, size_t capacity, size_t* out_size,
                                     mt_error* err) noexcept {
        try {
            const mt_request_view req = read_sized(r);
            RequestView v{view(req.method), view(req.path), view(req.host), view(req.query), {}};
            for (size_t i = 0; i < req.nheaders; ++i)
                v.headers.emplace_back(view(req.headers[i].name), view(req.headers[i].value));
            auto id = static_cast<T*>(p)->extract(v);
            if (!id) return MT_EXTRACT_NONE;
            if (id->size() + 1 > capacity) {
                write_error(err, "tenant id longer than " + std::to_string(capacity - 1) + " bytes");
                return MT_EXTRACT_ERROR;
            }
            std::memcpy(out, id->data(), id->size());
            out[id->size()] = '\0';
            *out_size = id->size();
            return MT_EXTRACT_FOUND;
        } catch (const std::exception& e) {
            write_error(err, e.what());
            return MT_EXTRACT_ERROR;
        } catch (...) {
            write_error(err, "unknown exception");
            return MT_EXTRACT_ERROR;
        }
    }
    static const void* vtable() {
        static const mt_request_tenant_extractor_vtable v{sizeof(mt_request_tenant_extractor_vtable), extract};
        return &v;
    }
};

template <class T>
const void* vtable_for() {
    if constexpr (std::is_base_of_v<TrackingFormat, T>) return TrackingThunks<T>::vtable();
    else if constexpr (std::is_base_of_v<TenantDiscovery, T>) return DiscoveryThunks<T>::vtable();
    else if constexpr (std::is_base_of_v<MetricsSink, T>) return SinkThunks<T>::vtable();
    else if constexpr (std::is_base_of_v<RetryPolicy, T>) return RetryThunks<T>::vtable();
    else {
        static_assert(std::is_base_of_v<RequestTenantExtractor, T>, "a plugin class derives from one kind interface");
        return ExtractorThunks<T>::vtable();
    }
}

// Owns the strings behind one mt_factory.
struct FactoryDef {
    mt_kind kind;
    std::string name;
    std::vector<std::string> keys;
    mt_status (*create)(const mt_config*, const mt_host*, void**, mt_error*);
    void (*destroy)(void*);
    const void* vtable;
};

// FactoryDef that remembers its class, so MT_PLUGIN can compute the note's kinds at compile time.
template <class T>
struct TypedFactoryDef : FactoryDef {};

// The lowest host minor a kind's thunks need (every kind works with a 1.0 host today).
template <class T>
constexpr uint32_t required_minor_of() {
    return 0;
}

// What MT_PLUGIN knows of one factory argument at compile time: a hand-made FactoryDef (tests do
// that) adds no kind to the note and requires nothing.
template <class Def>
struct FactoryTraits {
    static constexpr uint32_t kind_bit = 0;
    static constexpr uint32_t required = 0;
};
template <class T>
struct FactoryTraits<TypedFactoryDef<T>> {
    static constexpr uint32_t kind_bit = 1u << static_cast<uint32_t>(T::kind);
    static constexpr uint32_t required = required_minor_of<T>();
};

template <class Tuple>
struct NoteOf;
template <class... Defs>
struct NoteOf<std::tuple<Defs...>> {
    static constexpr uint32_t kinds = (0u | ... | FactoryTraits<Defs>::kind_bit);
    static constexpr uint32_t required = std::max({uint32_t{MT_PLUGIN_REQUIRED_ABI_MINOR}, FactoryTraits<Defs>::required...});
    static constexpr mt_plugin_note_record record{sizeof(MT_NOTE_NAME), sizeof(mt_plugin_note), MT_NOTE_TYPE,
                                                  MT_NOTE_NAME,
                                                  {MT_NOTE_MAGIC, sizeof(mt_plugin_note), MT_ABI_MAJOR, MT_ABI_MINOR,
                                                   required, kinds}};
};

// Plugin classes are constructed as T(const Config&, const Host&).
template <class T>
TypedFactoryDef<T> factory(std::string name, std::vector<std::string> keys) {
    auto create = [](const mt_config* c, const mt_host* h, void** out, mt_error* err) -> mt_status {
        return guarded(err, [&] {
            Config cfg(c);
            Host host(h, {});  // the host knows which instance its ctx belongs to
            *out = new T(cfg, host);
        });
    };
    auto destroy = [](void* p) { delete static_cast<T*>(p); };
    return TypedFactoryDef<T>{{T::kind, std::move(name), std::move(keys), create, destroy, vtable_for<T>()}};
}

class Descriptor {
public:
    Descriptor(std::string name, std::string version, uint32_t required_minor, std::vector<FactoryDef> defs)
        : name_(std::move(name)), version_(std::move(version)), defs_(std::move(defs)) {
        toolchain_ = toolchain();
        key_views_.resize(defs_.size());
        for (size_t i = 0; i < defs_.size(); ++i) {
            for (const auto& k : defs_[i].keys) key_views_[i].push_back(str(k));
            factories_.push_back(mt_factory{sizeof(mt_factory), defs_[i].kind, str(defs_[i].name),
                                            key_views_[i].data(), key_views_[i].size(), defs_[i].create,
                                            defs_[i].destroy, defs_[i].vtable});
        }
        desc_ = mt_plugin_descriptor{sizeof(mt_plugin_descriptor), MT_ABI_MAJOR, required_minor, str(name_),
                                     str(version_), str(std::string_view(MT_SDK_VERSION)), str(toolchain_),
                                     factories_.data(), factories_.size(), MT_ABI_MINOR, 0};
    }
    const mt_plugin_descriptor* get() const { return &desc_; }

    static std::string toolchain() {
#if defined(__clang__)
        std::string t = "clang " __clang_version__;
#elif defined(__GNUC__)
        std::string t = "gcc " __VERSION__;
#else
        std::string t = "unknown compiler";
#endif
        return t + " c++" + std::to_string(__cplusplus);
    }

private:
    std::string name_, version_, toolchain_;
    std::vector<FactoryDef> defs_;
    std::vector<std::vector<mt_str>> key_views_;
    std::vector<mt_factory> factories_;
    mt_plugin_descriptor desc_{};
};

}  // namespace detail
}  // namespace mt::sdk

// MT_FACTORY(Class, "instance-name", "config_key", ...) — one kind instance a plugin offers.
#define MT_FACTORY(Class, name, ...) ::mt::sdk::detail::factory<Class>(name, {__VA_ARGS__})

// MT_PLUGIN("plugin-name", "version", MT_FACTORY(...), ...) — the plugin's single exported entry,
// and its `.note.mtenant` (ABI major, built and required minor, kinds), which the host reads from
// the file before loading it.
#define MT_PLUGIN(name, version, ...)                                                                          \
    using mt_plugin_note_of_ = ::mt::sdk::detail::NoteOf<decltype(std::tuple(__VA_ARGS__))>;                  \
    __attribute__((section(MT_NOTE_SECTION), used, aligned(4))) constexpr mt_plugin_note_record mt_plugin_note_ = \
        mt_plugin_note_of_::record;                                                                            \
    extern "C" MT_EXPORT const mt_plugin_descriptor* mt_plugin_entry_v1(void) {                                \
        try {                                                                                                  \
            static const ::mt::sdk::detail::Descriptor descriptor(name, version, mt_plugin_note_of_::required, \
                                                                  {__VA_ARGS__});                              \
            return descriptor.get();                                                                           \
        } catch (...) {                                                                                        \
            return nullptr;                                                                                    \
        }                                                                                                      \
    }
