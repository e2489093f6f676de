#include "tracking/copy_read.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

namespace mt {

namespace {

// Binary COPY output (the format of COPY … TO STDOUT (FORMAT binary)): a signature, flags, a header
// extension, then per row a 16-bit field count and per field a 32-bit length (-1: NULL) and the
// bytes, all big-endian; a field count of -1 ends the data.
class CopyReader {
public:
    explicit CopyReader(std::string_view data) : data_(data) {
        static constexpr std::string_view signature("PGCOPY\n\377\r\n\0", 11);
        if (data_.substr(0, signature.size()) != signature) fail("no binary COPY signature");
        pos_ = signature.size();
        if (integer(4) != 0) fail("unexpected COPY flags");
        skip(static_cast<size_t>(integer(4)));
    }
    // The next row's fields (nullopt: NULL), or false at the end.
    bool row(std::vector<std::optional<std::string_view>>& fields) {
        const int64_t count = integer(2);
        if (count == -1) return false;
        fields.clear();
        for (int64_t i = 0; i < count; ++i) {
            const int64_t size = integer(4);
            if (size == -1) {
                fields.emplace_back(std::nullopt);
            } else {
                need(static_cast<size_t>(size));
                fields.emplace_back(data_.substr(pos_, static_cast<size_t>(size)));
                pos_ += static_cast<size_t>(size);
            }
        }
        return true;
    }
    // A big-endian signed integer of 2, 4 or 8 bytes (smallint, integer, bigint, timestamp).
    static int64_t decode(std::string_view bytes) {
        if (bytes.size() != 2 && bytes.size() != 4 && bytes.size() != 8)
            fail("an integer of " + std::to_string(bytes.size()) + " bytes");
        uint64_t v = 0;
        for (unsigned char b : bytes) v = v << 8 | b;
        const unsigned bits = static_cast<unsigned>(bytes.size()) * 8;
        if (bits < 64 && (v >> (bits - 1)) != 0) v |= ~uint64_t{0} << bits;  // sign-extend
        return static_cast<int64_t>(v);
    }

private:
    [[noreturn]] static void fail(const std::string& what) {
        throw OperationError("reading a tracking table by COPY: " + what + " (a server or protocol fault)");
    }
    void need(size_t n) const {
        if (data_.size() - pos_ < n) fail("the data ends early");
    }
    void skip(size_t n) {
        need(n);
        pos_ += n;
    }
    int64_t integer(size_t n) {
        need(n);
        const int64_t v = decode(data_.substr(pos_, n));
        pos_ += n;
        return v;
    }
    std::string_view data_;
    size_t pos_ = 0;
};

}  // namespace

std::string copy_statement(const TrackingCopyRead& read, const std::string& schema, const std::string& table) {
    std::string columns = quote_ident(read.order);
    for (const auto* c : {&read.name, &read.hash, &read.created_at})
        if (!c->empty()) columns += ", " + quote_ident(*c);
    return "COPY " + quote_qualified(schema, table) + " (" + columns + ") TO STDOUT (FORMAT binary)";
}

std::vector<sdk::Record> decode_copy(std::string_view data, const TrackingCopyRead& read, const std::string& schema,
                                     const std::string& table) {
    struct Row {
        std::optional<int64_t> order;
        sdk::Record record;
    };
    std::vector<Row> rows;
    std::vector<std::optional<std::string_view>> fields;
    const size_t expected = 1 + !read.name.empty() + !read.hash.empty() + !read.created_at.empty();
    CopyReader reader(data);
    while (reader.row(fields)) {
        if (fields.size() != expected)
            throw OperationError("reading " + quote_qualified(schema, table) + " by COPY: " +
                                 std::to_string(fields.size()) + " columns where " + std::to_string(expected) +
                                 " were asked for (a server or protocol fault)");
        Row row;
        // The fields in copy_statement()'s column order; a column the read does not name has none.
        size_t k = 0;
        const auto field_of = [&](const std::string& column) {
            return column.empty() ? std::optional<std::string_view>() : fields[k++];
        };
        if (const auto order = field_of(read.order)) row.order = CopyReader::decode(*order);
        if (const auto name = field_of(read.name)) row.record.name = std::string(*name);
        if (const auto hash = field_of(read.hash)) row.record.hash = std::string(*hash);
        if (const auto time = field_of(read.created_at)) {
            const int64_t v = CopyReader::decode(*time);
            if (!read.created_at_timestamp) {
                row.record.created_at_ms = v;
            } else {
                // Microseconds since 2000-01-01; ±infinity are the extremes, which have no epoch
                // milliseconds (list_query fails on them too).
                if (v == std::numeric_limits<int64_t>::max() || v == std::numeric_limits<int64_t>::min())
                    throw OperationError(quote_qualified(schema, table) + "." + quote_ident(read.created_at) +
                                         " holds infinity, which is no time a migration was applied at: set it to "
                                         "the real time (UPDATE … SET " + read.created_at + " = now() WHERE …)");
                const int64_t ms = v / 1000 - (v % 1000 < 0 ? 1 : 0);  // floor, as list_query's floor()
                row.record.created_at_ms = ms + 946684800000;  // 2000-01-01 in Unix milliseconds
            }
        }
        rows.push_back(std::move(row));
    }
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        if (!a.order || !b.order) return a.order.has_value() && !b.order.has_value();
        return *a.order < *b.order;
    });
    std::vector<sdk::Record> out;
    out.reserve(rows.size());
    for (auto& row : rows) out.push_back(std::move(row.record));
    return out;
}

}  // namespace mt
