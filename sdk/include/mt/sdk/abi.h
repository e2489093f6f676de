/* mtenant plugin ABI, version 1.2.
 *
 * This is the only thing that crosses the shared-library boundary between the kernel and a plugin.
 * Rules (SPEC §3.2):
 *  - plain C: no C++ type, no exception and no heap ownership crosses it;
 *  - strings are (pointer, size) views valid for the duration of the call unless said otherwise;
 *  - errors come back as an mt_status plus a message written into a host-owned mt_error buffer.
 *
 * What each minor shipped
 *  1.0  (commit 4174da5) descriptor, factories, the five kind vtables, mt_sql, mt_host, mt_event up
 *       to pools_max, event types 1..7.
 *  1.1  mt_event.pending / tenants / drift_groups and MT_EVENT_FLEET (these shipped in 2245d1a
 *       without a minor bump; 1.1 is where they are counted); mt_error.sqlstate; mt_host.abi_minor
 *       and mt_sql.abi_minor (the host's minor); mt_plugin_descriptor.abi_built_minor (abi_minor
 *       now means the minor the plugin *requires*); the `.note.mtenant` ELF note
 *       (mt_plugin_note); tracking-format capabilities at the end of mt_tracking_format_vtable.
 *  1.2  the COPY read of a tracking table: copy_* fields at the end of mt_tracking_capabilities
 *       (a format names the raw columns its list_query computes from, and the kernel reads many
 *       tenants' tables by COPY instead of planning a query per table).
 *
 * How structs grow
 *  - A growable struct starts with uint32_t struct_size, set by its writer to sizeof the layout it
 *    was compiled with, and only ever grows at its end, one minor per addition. A reader copies
 *    min(struct_size, sizeof) bytes into a zero-initialised struct of its own layout and reads
 *    only that copy: a field its writer did not have reads as zero / NULL, a field the reader does
 *    not know is never touched. Growable: mt_sql, mt_host, mt_event, mt_request_view, the five
 *    vtables, mt_factory, mt_plugin_descriptor; mt_plugin_note grows the same way, its size being
 *    the ELF note's descriptor size.
 *  - A minor that ends a struct with a field smaller than its alignment pads it explicitly
 *    (reserved_*, zero), so the next minor's fields start at the old sizeof and never land in
 *    bytes an older writer left as padding.
 *  - Arrays of growable structs are stepped by their elements' declared struct_size (the factory
 *    array: every element declares the same size), never by the reader's sizeof.
 *  - Frozen forever: mt_str, mt_config_entry, mt_config, mt_column, mt_migration_record, mt_table,
 *    mt_header, mt_failure. They are small values or array elements that 1.0 plugins read and write
 *    without a size field; putting struct_size in front would move every field a 1.0 binary
 *    uses. What they lack is added as a new struct passed through a new vtable member.
 *  - mt_error is frozen up to `size`; `sqlstate` (1.1) exists only when the buffer's owner is 1.1
 *    or newer: a plugin writes it into a host-owned buffer only when the host's minor (mt_host /
 *    mt_sql abi_minor, read through struct_size) is >= 1; the host writes it into a plugin-owned
 *    buffer only when the plugin's descriptor says it was built with minor >= 1. A 1.0 writer
 *    puts the SQLSTATE at the start of the message as "SQLSTATE xxxxx: "; that prefix is kept in
 *    messages for 1.0 readers and parsed only when the other side is 1.0.
 *
 * Compatibility (refines SPEC §3.2's "minor not newer")
 *  - A plugin carries the minor it was built with (abi_built_minor) and the minor it requires
 *    (abi_minor: the lowest host minor it works with). The kernel accepts it when the major is
 *    equal and the required minor <= its own; a plugin built against a newer minor that requires
 *    nothing new loads, and whatever newer fields it declares are ignored.
 *  - The SDK sets the required minor to the lowest minor whose features the plugin's code cannot
 *    do without (0 for every 1.1 feature: each has a 1.0 fallback). A plugin author raises it with
 *    `#define MT_PLUGIN_REQUIRED_ABI_MINOR n` before including <mt/sdk/plugin.hpp>; a C plugin
 *    sets abi_minor and mt_plugin_note.abi_required_minor itself.
 *  - The note is read from the file before dlopen (nothing of the plugin runs when it is refused).
 *    A plugin without it (built against 1.0 headers) takes the 1.0 path: entry symbol checked in
 *    the file, then loaded and its descriptor checked.
 *
 * Threads and lifetimes
 *  - mt_plugin_entry_v1: called once per load, from one thread; the descriptor, its factories,
 *    their names, config keys and vtables stay valid and unchanged while the library is loaded.
 *  - create: from one thread at a time (the kernel creates instances while it starts); mt_config
 *    and what it points to live for the call; the mt_host and its ctx stay valid until destroy.
 *    destroy: once per object, after every other call on that object has returned.
 *  - Every vtable function may be called from several threads at once on the same object (the
 *    migration engine runs tenants in parallel, services call sinks, retry policies and extractors
 *    from every request thread); each call gets its own mt_sql / mt_error. A plugin guards its own
 *    state. on_event must not block.
 *  - mt_host.log may be called from any thread, at any time between create and destroy.
 *  - mt_sql is valid only during the call it was passed to and only on that call's thread; its
 *    exec calls on_row synchronously on the same thread; the row values live until on_row returns.
 *  - Strings returned by a plugin: list_query's text must live as long as the object; every
 *    other string (records, tenants, chunks) is copied by the host before the callback returns.
 *  - Callbacks passed across (mt_row_fn, mt_record_fn, mt_tenant_fn, mt_text_fn) must not throw
 *    or longjmp; they return non-zero to stop early.
 */
#ifndef MT_SDK_ABI_H
#define MT_SDK_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MT_ABI_MAJOR 1
#define MT_ABI_MINOR 2
#include <mt/sdk/version.h> /* MT_SDK_VERSION: the project version, generated by CMake */
#define MT_ENTRY_SYMBOL "mt_plugin_entry_v1"

#if defined(_WIN32)
#define MT_EXPORT __declspec(dllexport)
#else
#define MT_EXPORT __attribute__((visibility("default")))
#endif

typedef struct mt_str {
    const char* data;
    size_t size;
} mt_str;

typedef enum mt_status {
    MT_OK = 0,
    MT_ERROR = 1,          /* the operation failed; the message says why */
    MT_INVALID_CONFIG = 2, /* a config value was refused (create only) */
    MT_SQL_ERROR = 3       /* a host SQL call failed; the message carries the SQLSTATE */
} mt_status;

/* A buffer owned by the caller; the callee writes at most capacity-1 bytes and a NUL, and sets size.
 * sqlstate (1.1): five characters and a NUL when the failure came from the server, else empty; it
 * exists only in a buffer whose owner is 1.1 or newer (see "How structs grow" above). */
typedef struct mt_error {
    char* data;
    size_t capacity;
    size_t size;
    char sqlstate[8];
} mt_error;

typedef enum mt_log_level {
    MT_LOG_TRACE = 0,
    MT_LOG_DEBUG = 1,
    MT_LOG_INFO = 2,
    MT_LOG_WARN = 3,
    MT_LOG_ERROR = 4
} mt_log_level;

/* ---- host services: what the kernel lends a plugin ---------------------------------------- */

/* Called once per result row; values[i].data is NULL for SQL NULL. Return 0 to go on. */
typedef int (*mt_row_fn)(void* user, size_t ncols, const mt_str* values);

/* SQL on the connection or transaction the current call is about. Values go in $1..$n, never in
 * the text. A NULL data pointer in params sends SQL NULL. */
typedef struct mt_sql {
    uint32_t struct_size;
    void* ctx;
    mt_status (*exec)(void* ctx, mt_str sql, const mt_str* params, size_t nparams, mt_row_fn on_row,
                      void* user, mt_error* err);
    /* Quotes an identifier the way the kernel does (one helper for the whole product). Writes into
     * out (capacity bytes incl. NUL); returns the length needed (excluding NUL). */
    size_t (*quote_ident)(void* ctx, mt_str ident, char* out, size_t capacity);
    uint32_t abi_minor; /* 1.1: the host's ABI minor (absent: 1.0) */
    uint32_t reserved_1_1; /* zero; keeps the next minor's fields out of this layout's tail padding */
} mt_sql;

typedef struct mt_host {
    uint32_t struct_size;
    void* ctx;
    void (*log)(void* ctx, mt_log_level level, mt_str plugin, mt_str message);
    uint32_t abi_minor; /* 1.1: the host's ABI minor (absent: 1.0) */
    uint32_t reserved_1_1; /* zero (as in mt_sql) */
} mt_host;

/* ---- configuration ------------------------------------------------------------------------- */

typedef struct mt_config_entry {
    mt_str key;
    mt_str value;
} mt_config_entry;

typedef struct mt_config {
    const mt_config_entry* entries;
    size_t count;
} mt_config;

/* ---- kind: tracking_format ----------------------------------------------------------------- */

typedef struct mt_column {
    mt_str name;
    mt_str type; /* pg_catalog.format_type output, e.g. "character varying(255)", "bigint" */
    int not_null;
} mt_column;

/* A migration as recorded in (or to be written to) a tracking table. A NULL data pointer means
 * "not known". created_at_ms: the table's timestamp (< 0: not known / now). when_ms: the
 * drizzle-kit journal's `when` for the migration when the folder has one (< 0: none); formats that
 * store the journal time (drizzle-kit) prefer it. */
typedef struct mt_migration_record {
    mt_str name;
    mt_str hash;
    int64_t created_at_ms;
    int64_t when_ms;
} mt_migration_record;

typedef int (*mt_record_fn)(void* user, const mt_migration_record* record);

/* A tracking table as the kernel found it: columns is empty when the table does not exist yet. */
typedef struct mt_table {
    mt_str schema;
    mt_str name;
    const mt_column* columns;
    size_t ncolumns;
} mt_table;

/* ABI 1.1: the answer of mt_tracking_format_vtable.capabilities. */
typedef struct mt_tracking_capabilities {
    uint32_t struct_size; /* written by the kernel: how much of this struct it reads */
    uint32_t keeps;       /* MT_TRACKING_* flags, for the table asked about */
    /* How the format is shown and accepted on the command line and in migrations.format
     * ("name"); static, owned by the plugin; empty: the kernel derives it from the factory name. */
    mt_str label;
    /* 1.2: the COPY read. What list_query computes, as columns of `table` the kernel may read
     * with `COPY table (columns) TO STDOUT` (no query is planned, so none of the table's indexes
     * is opened: about half the server's work of reading a small table for the first time in a
     * session). The kernel uses it for fleet-wide reads when every named column exists with a
     * type it decodes (see below), the table is a plain table without child tables, and
     * copy_order is set; otherwise, and always for a plugin that leaves these fields zero (1.1
     * and older), it runs list_query. The promise the plugin makes: for the table asked about,
     * these columns decoded as below give exactly list_query's rows in list_query's order.
     * Column names: static strings owned by the plugin; empty: the value is NULL in every row. */
    mt_str copy_order;      /* smallint, integer or bigint: rows ascending by it (NULLs last) */
    mt_str copy_name;       /* text or character varying: the name, as stored */
    mt_str copy_hash;       /* text or character varying: the hash, as stored */
    mt_str copy_created_at; /* the row's time, read as copy_created_at_unit says */
    uint32_t copy_created_at_unit; /* MT_COPY_TIME_* */
    uint32_t reserved_1_2;  /* zero (as in mt_sql) */
} mt_tracking_capabilities;

/* copy_created_at_unit: how copy_created_at becomes created_at_ms. */
#define MT_COPY_TIME_TIMESTAMP 1u    /* a timestamp(tz) column: floor(extract(epoch FROM col) * 1000) */
#define MT_COPY_TIME_MILLISECONDS 2u /* a smallint/integer/bigint column holding milliseconds, as stored */

#define MT_TRACKING_KEEPS_NAMES 1u    /* each row carries the migration's name */
#define MT_TRACKING_KEEPS_HASHES 2u   /* each row carries the SHA-256 of the migration's file */
#define MT_TRACKING_JOURNAL_TIME 4u   /* the row's timestamp is the drizzle-kit journal's `when` */
/* Tools that share the table (drizzle-multitenant) find a migration by its name there, so a file
 * renamed with unchanged content is reported as a rename. */
#define MT_TRACKING_FOUND_BY_NAME 8u

typedef struct mt_tracking_format_vtable {
    uint32_t struct_size;
    /* *score > 0 when the columns are this format's layout; higher is a more specific match. */
    mt_status (*detect)(void* self, const mt_column* columns, size_t ncolumns, int* score, mt_error* err);
    mt_status (*create)(void* self, const mt_sql* sql, const mt_table* table, mt_error* err);
    mt_status (*list)(void* self, const mt_sql* sql, const mt_table* table, mt_record_fn on_record, void* user,
                      mt_error* err);
    mt_status (*record)(void* self, const mt_sql* sql, const mt_table* table, const mt_migration_record* records,
                        size_t count, mt_error* err);
    mt_status (*remove)(void* self, const mt_sql* sql, const mt_table* table, const mt_migration_record* records,
                        size_t count, mt_error* err);
    /* A SELECT over the table "{table}" yielding exactly (name text, hash text, created_at_ms bigint),
     * valid whatever optional columns the table has, used by the kernel to read many tenants'
     * tables in one batched query. The kernel substitutes {table} with a quoted, schema-qualified
     * name. Static string owned by the plugin. */
    mt_str (*list_query)(void* self);
    /* What the format identifies a migration by: MT_IDENTIFIES_NAME and/or MT_IDENTIFIES_HASH. */
    uint32_t (*identifies_by)(void* self);
    /* ABI 1.1. What the format keeps in `table` (columns empty: a table create() would make) and
     * its short label, so the kernel never guesses from the format's name or column names. The
     * kernel sets out->struct_size to the size it knows and zeroes the rest; the plugin writes only
     * the fields that fit in it. Optional: when this member is NULL or past the table's
     * struct_size (a 1.0 plugin), the kernel derives MT_TRACKING_KEEPS_NAMES (and
     * MT_TRACKING_FOUND_BY_NAME) and MT_TRACKING_KEEPS_HASHES from identifies_by, and the label
     * from the factory name without a "tracking-" prefix. May be called from several threads. */
    mt_status (*capabilities)(void* self, const mt_table* table, mt_tracking_capabilities* out, mt_error* err);
} mt_tracking_format_vtable;

#define MT_IDENTIFIES_NAME 1u
#define MT_IDENTIFIES_HASH 2u

/* ---- kind: tenant_discovery ---------------------------------------------------------------- */

typedef int (*mt_tenant_fn)(void* user, mt_str id, mt_str server /* data NULL: default server */);

typedef struct mt_tenant_discovery_vtable {
    uint32_t struct_size;
    /* sql is a connection to the default server with search_path at the shared schema. */
    mt_status (*discover)(void* self, const mt_sql* sql, mt_tenant_fn on_tenant, void* user, mt_error* err);
} mt_tenant_discovery_vtable;

/* ---- kind: metrics_sink -------------------------------------------------------------------- */

typedef enum mt_event_type {
    MT_EVENT_POOL_CREATED = 1,
    MT_EVENT_POOL_EVICTED = 2,
    MT_EVENT_QUERY = 3,
    MT_EVENT_RETRY = 4,
    MT_EVENT_MIGRATION = 5,
    MT_EVENT_HEALTH = 6,
    MT_EVENT_POOL_STATS = 7,
    MT_EVENT_FLEET = 8 /* from `mtctl serve`: one per tenant (tenant, pending), then one summary
                          with an empty tenant (tenants, drift_groups) */
} mt_event_type;

/* One flat event; fields that do not apply to a type are empty / zero. A sink ignores event types
 * it does not know (a 1.0 sink receives MT_EVENT_FLEET too). */
typedef struct mt_event {
    uint32_t struct_size;
    mt_event_type type;
    mt_str tenant;
    mt_str schema;
    mt_str statement;   /* query: already cut and scrubbed by the kernel */
    mt_str reason;      /* pool evicted: lru | idle | error | manual */
    mt_str error;       /* retry / failed query / failed migration */
    mt_str name;        /* migration name */
    double duration_s;  /* query, migration, health */
    int ok;             /* query, migration; health: 1 healthy */
    int attempt;        /* retry: the attempt about to be made (2 = first retry) */
    int max_attempts;   /* retry */
    double delay_s;     /* retry */
    int64_t active, idle, waiting; /* pool stats */
    int64_t pools_active, pools_max;
    /* 1.1 */
    int64_t pending;       /* fleet: pending migrations of the tenant */
    int64_t tenants;       /* fleet summary: tenant count */
    int64_t drift_groups;  /* fleet summary: distinct schema fingerprints (-1: not computed) */
} mt_event;

typedef int (*mt_text_fn)(void* user, mt_str chunk);

typedef struct mt_metrics_sink_vtable {
    uint32_t struct_size;
    void (*on_event)(void* self, const mt_event* event); /* must not block; never fails */
    /* Optional (NULL if the sink cannot render): Prometheus exposition text, in chunks. */
    mt_status (*render)(void* self, mt_text_fn on_chunk, void* user, mt_error* err);
} mt_metrics_sink_vtable;

/* ---- kind: retry_policy -------------------------------------------------------------------- */

/* Frozen (no struct_size): a 1.0 retry policy reads these four fields. */
typedef struct mt_failure {
    mt_str sqlstate;    /* empty when the failure was not a server error */
    mt_str message;
    int is_connection;  /* the connection broke or could not be opened */
    int attempt;        /* the attempt that just failed, 1-based */
} mt_failure;

typedef struct mt_retry_policy_vtable {
    uint32_t struct_size;
    /* *retry = 1 and *delay_ms set when another attempt should be made. */
    void (*decide)(void* self, const mt_failure* failure, int* retry, int64_t* delay_ms);
    int (*max_attempts)(void* self);
} mt_retry_policy_vtable;

/* ---- kind: request_tenant_extractor -------------------------------------------------------- */

typedef struct mt_header {
    mt_str name;
    mt_str value;
} mt_header;

typedef struct mt_request_view {
    uint32_t struct_size;
    mt_str method;
    mt_str path;   /* without the query string */
    mt_str host;
    mt_str query;  /* raw query string without '?' */
    const mt_header* headers;
    size_t nheaders;
} mt_request_view;

typedef enum mt_extract_result {
    MT_EXTRACT_FOUND = 0,
    MT_EXTRACT_NONE = 1,  /* this extractor found no tenant id; the next one may */
    MT_EXTRACT_ERROR = 2  /* malformed input; err says why */
} mt_extract_result;

typedef struct mt_request_tenant_extractor_vtable {
    uint32_t struct_size;
    /* On FOUND the id is written to out (capacity incl. NUL), *out_size set to its length. */
    mt_extract_result (*extract)(void* self, const mt_request_view* request, char* out, size_t capacity,
                                 size_t* out_size, mt_error* err);
} mt_request_tenant_extractor_vtable;

/* ---- factories and the descriptor ---------------------------------------------------------- */

typedef enum mt_kind {
    MT_KIND_TRACKING_FORMAT = 1,
    MT_KIND_TENANT_DISCOVERY = 2,
    MT_KIND_METRICS_SINK = 3,
    MT_KIND_RETRY_POLICY = 4,
    MT_KIND_REQUEST_TENANT_EXTRACTOR = 5
} mt_kind;

typedef struct mt_factory {
    uint32_t struct_size;
    mt_kind kind;
    mt_str name;                 /* instance name, used in [roles] and format = */
    const mt_str* config_keys;   /* keys accepted in [plugin.<plugin name>] */
    size_t nconfig_keys;
    mt_status (*create)(const mt_config* config, const mt_host* host, void** out_self, mt_error* err);
    void (*destroy)(void* self);
    const void* vtable;          /* the mt_<kind>_vtable matching kind */
} mt_factory;

/* factories is an array of nfactories elements that all declare the same struct_size; the host
 * steps through it by that size. */
typedef struct mt_plugin_descriptor {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;          /* the minor the plugin requires of the host (1.0: the minor it was built with) */
    mt_str name;
    mt_str version;
    mt_str sdk_version;
    mt_str toolchain;
    const mt_factory* factories;
    size_t nfactories;
    uint32_t abi_built_minor;    /* 1.1: the minor of the headers the plugin was built with */
    uint32_t reserved_1_1;       /* zero (as in mt_sql) */
} mt_plugin_descriptor;

typedef const mt_plugin_descriptor* (*mt_plugin_entry_fn)(void);

/* ---- the ELF note (1.1) -------------------------------------------------------------------- */

/* What the host reads from the file before any plugin code runs: an ELF note in section
 * MT_NOTE_SECTION, of type MT_NOTE_TYPE, owner name MT_NOTE_NAME, whose descriptor is an
 * mt_plugin_note. The host reads only the first note_size bytes it knows; the fields below are
 * frozen in place and later minors append. MT_PLUGIN(...) emits it; a C plugin may emit one with
 * MT_PLUGIN_NOTE below. kinds: bit (1u << kind) for each kind the plugin's factories offer. */
#define MT_NOTE_SECTION ".note.mtenant"
#define MT_NOTE_NAME "mtenant"
#define MT_NOTE_TYPE 0x4d540001u
#define MT_NOTE_MAGIC 0x4d544e31u /* "MTN1" */

typedef struct mt_plugin_note {
    uint32_t magic;              /* MT_NOTE_MAGIC */
    uint32_t note_size;          /* sizeof the layout the plugin was built with */
    uint32_t abi_major;
    uint32_t abi_built_minor;
    uint32_t abi_required_minor;
    uint32_t kinds;
} mt_plugin_note;

/* The note as it lies in the file: the ELF note header, the owner name padded to 4 bytes, then
 * the descriptor. */
typedef struct mt_plugin_note_record {
    uint32_t namesz;             /* sizeof MT_NOTE_NAME, incl. NUL: 8 */
    uint32_t descsz;             /* sizeof(mt_plugin_note) */
    uint32_t type;               /* MT_NOTE_TYPE */
    char name[8];                /* MT_NOTE_NAME */
    mt_plugin_note note;
} mt_plugin_note_record;

#if defined(__GNUC__)
/* Emits the note for a C plugin: MT_PLUGIN_NOTE(required_minor, kinds_mask). */
#define MT_PLUGIN_NOTE(required_minor, kinds_mask)                                                    \
    __attribute__((section(MT_NOTE_SECTION), used, aligned(4))) static const mt_plugin_note_record    \
        mt_plugin_note_record_ = {sizeof(MT_NOTE_NAME), sizeof(mt_plugin_note), MT_NOTE_TYPE, MT_NOTE_NAME, \
                                  {MT_NOTE_MAGIC, sizeof(mt_plugin_note), MT_ABI_MAJOR, MT_ABI_MINOR,    \
                                   (required_minor), (kinds_mask)}}
#endif

#ifdef __cplusplus
}
#endif

#endif /* MT_SDK_ABI_H */
