// The plugin host's C-ABI bridges (SPEC §3.2): the kernel side of each kind, calling into a plugin
// instance through its function table and turning what comes back into C++ values and errors.
// Nothing thrown here crosses into plugin code: callbacks park their exceptions.
#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include "plugin_host/library.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <exception>

namespace mt {

namespace {

using detail::ErrorText;

// ---- typed views --------------------------------------------------------------------------

template <class Vtable>
const Vtable* checked_vtable(const std::shared_ptr<PluginInstance>& instance, mt_kind expected) {
    if (!instance) throw InternalError("no plugin instance given for a " + to_string(expected));
    const std::string where = instance->file().string();
    if (instance->kind() != expected)
        throw PluginError(where, "config",
                          instance->name() + " is a " + to_string(instance->kind()) + ", expected " + to_string(expected));
    const auto* vt = static_cast<const Vtable*>(instance->vtable());
    if (!vt || vt->struct_size < sizeof(uint32_t))
        throw PluginError(where, "abi", instance->name() + " has no " + to_string(expected) + " function table");
    return vt;
}

// The function a table holds at `member`, or null when the table is too short to have it (an older
// plugin) or leaves it empty.
template <class Vtable, class Fn>
Fn function_of(const Vtable* vt, Fn Vtable::*member) {
    const auto offset = static_cast<size_t>(reinterpret_cast<const char*>(&(vt->*member)) - reinterpret_cast<const char*>(vt));
    if (vt->struct_size < offset + sizeof(Fn)) return nullptr;
    return vt->*member;
}

template <class Vtable, class Fn>
Fn required(const PluginInstance& instance, const Vtable* vt, Fn Vtable::*member, const char* what) {
    Fn fn = function_of(vt, member);
    if (!fn)
        throw PluginError(instance.file().string(), "abi",
                          instance.name() + " (" + to_string(instance.kind()) + ") does not provide " + what);
    return fn;
}

[[noreturn]] void throw_operation(const PluginInstance& instance, const char* what, const ErrorText& err) {
    const std::string message = err.message_or("failed without a message");
    throw OperationError(instance.name() + ": " + what + ": " + message, err.sqlstate(instance.abi_minor()));
}

// Callbacks run inside plugin calls; an exception must not unwind through plugin frames, so it is
// parked here and rethrown once the plugin has returned.
struct Parked {
    std::exception_ptr error;
    void rethrow_if_any() const {
        if (error) std::rethrow_exception(error);
    }
};

mt_migration_record to_c(const sdk::Record& r) {
    return mt_migration_record{sdk::str_opt(r.name), sdk::str_opt(r.hash), r.created_at_ms.value_or(-1),
                               r.when_ms.value_or(-1)};
}

std::vector<mt_migration_record> to_c(const std::vector<sdk::Record>& records) {
    std::vector<mt_migration_record> out;
    out.reserve(records.size());
    for (const auto& r : records) out.push_back(to_c(r));
    return out;
}

std::vector<mt_column> to_c(const std::vector<sdk::Column>& columns) {
    std::vector<mt_column> out;
    out.reserve(columns.size());
    for (const auto& col : columns)
        out.push_back(mt_column{sdk::str(std::string_view(col.name)), sdk::str(std::string_view(col.type)),
                                col.not_null ? 1 : 0});
    return out;
}

// The C view of a TrackingTable, valid while the table lives.
class TableView {
public:
    explicit TableView(const TrackingTable& table)
        : columns_(to_c(table.columns)),
          table_{sdk::str(std::string_view(table.schema)), sdk::str(std::string_view(table.name)), columns_.data(),
                 columns_.size()} {}
    const mt_table* get() const { return &table_; }

private:
    std::vector<mt_column> columns_;
    mt_table table_;
};

}  // namespace

// ---- TrackingFormat -----------------------------------------------------------------------

TrackingFormat::TrackingFormat(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_tracking_format_vtable>(instance_, MT_KIND_TRACKING_FORMAT)) {}

int TrackingFormat::detect(const std::vector<sdk::Column>& columns) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::detect, "detect");
    const auto c = to_c(columns);
    int score = 0;
    ErrorText err;
    if (fn(instance_->self(), c.data(), c.size(), &score, err.get()) != MT_OK) throw_operation(*instance_, "detect", err);
    return score;
}

void TrackingFormat::create(SqlSession& sql, const TrackingTable& table) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::create, "create");
    const TableView t(table);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api_for(instance_->abi_minor()), t.get(), err.get()) != MT_OK)
        throw_operation(*instance_, "create tracking table", err);
}

std::vector<sdk::Record> TrackingFormat::list(SqlSession& sql, const TrackingTable& table) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::list, "list");
    struct Collected : Parked {
        std::vector<sdk::Record> records;
    } collected;
    auto on_record = [](void* user, const mt_migration_record* r) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            out->records.push_back(sdk::detail::to_records(r, 1).front());
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    const TableView t(table);
    ErrorText err;
    const mt_status st = fn(instance_->self(), sql.c_api_for(instance_->abi_minor()), t.get(), on_record, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw_operation(*instance_, "list", err);
    return std::move(collected.records);
}

void TrackingFormat::record(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::record, "record");
    const TableView t(table);
    const auto c = to_c(records);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api_for(instance_->abi_minor()), t.get(), c.data(), c.size(), err.get()) != MT_OK)
        throw_operation(*instance_, "record", err);
}

void TrackingFormat::remove(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::remove, "remove");
    const TableView t(table);
    const auto c = to_c(records);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api_for(instance_->abi_minor()), t.get(), c.data(), c.size(), err.get()) != MT_OK)
        throw_operation(*instance_, "remove", err);
}

std::string TrackingFormat::list_query() const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::list_query, "list_query");
    const mt_str query = fn(instance_->self());
    if (!query.data || query.size == 0)
        throw OperationError(instance_->name() + ": list_query returned no statement (the plugin failed or threw): fix or "
                                        "replace the tracking format plugin " + instance_->file().string());
    return std::string(sdk::view(query));
}

uint32_t TrackingFormat::identifies_by() const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::identifies_by, "identifies_by");
    const uint32_t by = fn(instance_->self());
    if ((by & (MT_IDENTIFIES_NAME | MT_IDENTIFIES_HASH)) == 0)
        throw OperationError(instance_->name() + ": identifies_by returned neither name nor hash (the plugin failed or threw): "
                                        "fix or replace the tracking format plugin " + instance_->file().string());
    return by;
}

// The only place that describes a format which does not describe itself (a 1.0 plugin, or one
// whose class declares no capabilities): from identifies_by, and the label from its name.
TrackingFormat::Described TrackingFormat::describe(const std::vector<sdk::Column>& columns) const {
    Described out;
    if (auto fn = function_of(vt_, &mt_tracking_format_vtable::capabilities)) {
        mt_tracking_capabilities c{};
        c.struct_size = sizeof c;
        const TrackingTable table{{}, {}, columns};
        const TableView t(table);
        ErrorText err;
        if (fn(instance_->self(), t.get(), &c, err.get()) != MT_OK) throw_operation(*instance_, "capabilities", err);
        out.capabilities = TrackingCapabilities{(c.keeps & MT_TRACKING_KEEPS_NAMES) != 0,
                                                (c.keeps & MT_TRACKING_KEEPS_HASHES) != 0,
                                                (c.keeps & MT_TRACKING_JOURNAL_TIME) != 0,
                                                (c.keeps & MT_TRACKING_FOUND_BY_NAME) != 0, true};
        out.label = std::string(sdk::view(c.label));
        if (c.copy_order.size > 0)
            out.copy = TrackingCopyRead{std::string(sdk::view(c.copy_order)), std::string(sdk::view(c.copy_name)),
                                        std::string(sdk::view(c.copy_hash)), std::string(sdk::view(c.copy_created_at)),
                                        c.copy_created_at_unit == MT_COPY_TIME_TIMESTAMP};
        if (out.copy && !out.copy->created_at.empty() && c.copy_created_at_unit != MT_COPY_TIME_TIMESTAMP &&
            c.copy_created_at_unit != MT_COPY_TIME_MILLISECONDS)
            out.copy.reset();  // a unit this kernel does not know: list_query
    } else {
        const uint32_t by = identifies_by();
        out.capabilities.keeps_names = out.capabilities.found_by_name = (by & MT_IDENTIFIES_NAME) != 0;
        out.capabilities.keeps_hashes = (by & MT_IDENTIFIES_HASH) != 0;
    }
    if (out.label.empty()) {
        const std::string prefix = "tracking-";
        out.label = name().rfind(prefix, 0) == 0 ? name().substr(prefix.size()) : name();
    }
    return out;
}

TrackingCapabilities TrackingFormat::capabilities(const std::vector<sdk::Column>& columns) const {
    return describe(columns).capabilities;
}

std::string TrackingFormat::label() const { return describe({}).label; }

namespace {

bool is_integer_type(const std::string& type) { return type == "smallint" || type == "integer" || type == "bigint"; }

// text and varchar come out of COPY as stored, as `col::text` gives them; char(n) would not (the
// cast drops its padding), nor would a domain or another type: those go through list_query.
bool is_text_type(const std::string& type) { return type == "text" || type.rfind("character varying", 0) == 0; }

// timestamp, timestamptz and their (p) forms: microseconds since 2000-01-01 in binary COPY.
bool is_timestamp_type(const std::string& type) {
    return type.rfind("timestamp", 0) == 0 &&
           (type.ends_with(" with time zone") || type.ends_with(" without time zone"));
}

}  // namespace

std::optional<TrackingCopyRead> TrackingFormat::copy_read(const std::vector<sdk::Column>& columns) const {
    auto copy = describe(columns).copy;
    if (!copy || columns.empty()) return std::nullopt;
    std::set<std::string> used;
    // Each named column must exist, be named once (COPY refuses a column listed twice) and have a
    // type the kernel decodes; anything else reads through list_query, which stays the reference.
    const auto fits = [&](const std::string& name, bool (*type_ok)(const std::string&)) {
        if (name.empty()) return true;
        if (!used.insert(name).second) return false;
        const auto c =
            std::find_if(columns.begin(), columns.end(), [&](const sdk::Column& col) { return col.name == name; });
        return c != columns.end() && type_ok(c->type);
    };
    if (fits(copy->order, is_integer_type) && fits(copy->name, is_text_type) && fits(copy->hash, is_text_type) &&
        fits(copy->created_at, copy->created_at_timestamp ? is_timestamp_type : is_integer_type))
        return copy;
    return std::nullopt;
}

// ---- TenantDiscovery ----------------------------------------------------------------------

TenantDiscovery::TenantDiscovery(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_tenant_discovery_vtable>(instance_, MT_KIND_TENANT_DISCOVERY)) {}

std::vector<sdk::DiscoveredTenant> TenantDiscovery::discover(SqlSession& sql) const {
    std::vector<sdk::DiscoveredTenant> tenants;
    discover(sql, [&](sdk::DiscoveredTenant&& t) { tenants.push_back(std::move(t)); });
    return tenants;
}

void TenantDiscovery::discover(SqlSession& sql, const std::function<void(sdk::DiscoveredTenant&&)>& on_tenant) const {
    auto fn = required(*instance_, vt_, &mt_tenant_discovery_vtable::discover, "discover");
    struct Collected : Parked {
        const std::function<void(sdk::DiscoveredTenant&&)>* on_tenant = nullptr;
    } collected;
    collected.on_tenant = &on_tenant;
    auto on_found = [](void* user, mt_str id, mt_str server) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            (*out->on_tenant)(sdk::DiscoveredTenant{std::string(sdk::view(id)), sdk::opt(server)});
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    ErrorText err;
    const mt_status st = fn(instance_->self(), sql.c_api_for(instance_->abi_minor()), on_found, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw_operation(*instance_, "discover", err);
}

// ---- MetricsSink --------------------------------------------------------------------------

MetricsSink::MetricsSink(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)), vt_(checked_vtable<mt_metrics_sink_vtable>(instance_, MT_KIND_METRICS_SINK)) {}

void MetricsSink::on_event(const mt_event& event) const noexcept {
    if (auto fn = function_of(vt_, &mt_metrics_sink_vtable::on_event)) fn(instance_->self(), &event);
}

std::string MetricsSink::render() const {
    auto fn = function_of(vt_, &mt_metrics_sink_vtable::render);
    if (!fn) return {};
    struct Collected : Parked {
        std::string text;
    } collected;
    auto on_chunk = [](void* user, mt_str chunk) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            out->text.append(sdk::view(chunk));
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    ErrorText err;
    const mt_status st = fn(instance_->self(), on_chunk, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw OperationError(instance_->name() + ": render: " + err.message_or("failed without a message"));
    return std::move(collected.text);
}

// ---- RetryPolicy --------------------------------------------------------------------------

RetryPolicy::RetryPolicy(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)), vt_(checked_vtable<mt_retry_policy_vtable>(instance_, MT_KIND_RETRY_POLICY)) {}

std::optional<std::chrono::milliseconds> RetryPolicy::decide(const sdk::Failure& failure) const {
    auto fn = required(*instance_, vt_, &mt_retry_policy_vtable::decide, "decide");
    const mt_failure f{sdk::str(std::string_view(failure.sqlstate)), sdk::str(std::string_view(failure.message)),
                       failure.is_connection ? 1 : 0, failure.attempt};
    int retry = 0;
    int64_t delay_ms = 0;
    fn(instance_->self(), &f, &retry, &delay_ms);
    if (!retry) return std::nullopt;
    return std::chrono::milliseconds(std::max<int64_t>(delay_ms, 0));
}

int RetryPolicy::max_attempts() const {
    auto fn = required(*instance_, vt_, &mt_retry_policy_vtable::max_attempts, "max_attempts");
    return fn(instance_->self());
}

// ---- RequestTenantExtractor ---------------------------------------------------------------

RequestTenantExtractor::RequestTenantExtractor(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_request_tenant_extractor_vtable>(instance_, MT_KIND_REQUEST_TENANT_EXTRACTOR)) {}

ExtractOutcome RequestTenantExtractor::extract(const mt_request_view& request) const {
    auto fn = required(*instance_, vt_, &mt_request_tenant_extractor_vtable::extract, "extract");
    std::array<char, 1024> id{};
    size_t size = 0;
    ErrorText err;
    ExtractOutcome out;
    out.result = fn(instance_->self(), &request, id.data(), id.size(), &size, err.get());
    switch (out.result) {
        case MT_EXTRACT_FOUND: out.tenant_id.assign(id.data(), std::min(size, id.size() - 1)); break;
        case MT_EXTRACT_NONE: break;
        case MT_EXTRACT_ERROR: out.error = err.message_or("malformed request"); break;
        default:
            out.error = instance_->name() + " returned unknown extract result " + std::to_string(static_cast<int>(out.result));
            out.result = MT_EXTRACT_ERROR;
    }
    return out;
}

}  // namespace mt
