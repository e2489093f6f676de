// The COPY read's decoder (ABI 1.2, kernel/src/tracking/copy_read.cpp): the bytes PostgreSQL sends for
// `COPY table (order, name, hash, created_at) TO STDOUT (FORMAT binary)`, which fleet status turns
// into tracking records. Input: the first byte picks the columns and the time's unit; the rest is
// either the COPY output itself (raw mode: whatever a broken server or proxy could send), or rows
// from which the target writes well-formed output (encoded mode).
//
// Properties, beyond "does not crash":
// - Raw bytes are decoded or refused with mt::OperationError, nothing else; decoded records are at
//   most as many as the rows the bytes could hold.
// - Well-formed output decodes to exactly the rows written, sorted by the order column (NULLs last,
//   ties in the order written), each name and hash byte for byte (NUL, tab, newline, invalid
//   UTF-8 included), each time as the oracle computes it: an integer as written; a timestamp as
//   floor(microseconds since 2000-01-01 / 1000) + 946684800000, computed here in 128-bit arithmetic;
//   ±infinity refused with OperationError naming the column.
#include "fuzz_support.hpp"

#include "tracking/copy_read.hpp"

#include <mt/base/errors.hpp>

#include <algorithm>
#include <limits>
#include <optional>

namespace {

mt::TrackingCopyRead read_of(uint8_t shape) {
    mt::TrackingCopyRead read;
    read.order = "id";
    if (shape & 1) read.name = "name";
    if (shape & 2) read.hash = "hash";
    if (shape & 4) read.created_at = "created_at";
    read.created_at_timestamp = (shape & 8) != 0;
    return read;
}

void put(std::string& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

struct Row {
    std::optional<int64_t> order;
    std::optional<std::string> name, hash;
    std::optional<int64_t> time;
    size_t written = 0;  // position among the rows written
};

// Takes n bytes from the input (fewer at its end).
std::string_view take(std::string_view& in, size_t n) {
    n = std::min(n, in.size());
    const auto out = in.substr(0, n);
    in.remove_prefix(n);
    return out;
}

// The signed value of a big-endian integer of `bytes` bytes (2, 4 or 8).
int64_t signed_of(uint64_t raw, int bytes) {
    const unsigned bits = static_cast<unsigned>(bytes) * 8;
    if (bits < 64 && (raw >> (bits - 1)) != 0) raw |= ~uint64_t{0} << bits;
    return static_cast<int64_t>(raw);
}

uint64_t number(std::string_view& in, size_t bytes) {
    uint64_t v = 0;
    for (unsigned char c : take(in, bytes)) v = v << 8 | c;
    return v;
}

void encoded(std::string_view in, const mt::TrackingCopyRead& read) {
    std::vector<Row> rows;
    std::string data("PGCOPY\n\377\r\n\0", 11);
    put(data, 0, 4);
    const uint64_t extension = number(in, 1) % 4;
    put(data, extension, 4);
    data.append(extension, 'x');
    const int order_bytes[] = {2, 4, 8};
    while (!in.empty() && rows.size() < 64) {
        const uint64_t flags = number(in, 1);
        Row row;
        row.written = rows.size();
        const int width = order_bytes[flags % 3];
        std::string fields;
        int count = 1;
        if (flags & 8) {
            put(fields, ~uint64_t{0}, 4);  // NULL
        } else {
            const uint64_t raw = number(in, static_cast<size_t>(width));
            row.order = signed_of(raw, width);
            put(fields, static_cast<uint64_t>(width), 4);
            put(fields, raw, width);
        }
        for (auto [column, value] : {std::pair{&read.name, &row.name}, std::pair{&read.hash, &row.hash}}) {
            if (column->empty()) continue;
            ++count;
            if (number(in, 1) % 5 == 0) {
                put(fields, ~uint64_t{0}, 4);
            } else {
                *value = std::string(take(in, number(in, 1) % 40));
                put(fields, (*value)->size(), 4);
                fields += **value;
            }
        }
        if (!read.created_at.empty()) {
            ++count;
            if (flags & 16) {
                put(fields, ~uint64_t{0}, 4);
            } else {
                const int time_width = read.created_at_timestamp ? 8 : order_bytes[(flags >> 5) % 3];
                uint64_t raw = number(in, static_cast<size_t>(time_width));
                if (read.created_at_timestamp && (flags & 0x80)) raw = (flags & 0x40) ? 0x7fffffffffffffffULL : 0x8000000000000000ULL;
                row.time = signed_of(raw, time_width);
                put(fields, static_cast<uint64_t>(time_width), 4);
                put(fields, raw, time_width);
            }
        }
        put(data, static_cast<uint64_t>(count), 2);
        data += fields;
        rows.push_back(std::move(row));
    }
    put(data, 0xffff, 2);

    const bool infinite = read.created_at_timestamp && std::any_of(rows.begin(), rows.end(), [](const Row& r) {
        return r.time && (*r.time == std::numeric_limits<int64_t>::max() || *r.time == std::numeric_limits<int64_t>::min());
    });
    std::vector<mt::sdk::Record> got;
    try {
        got = mt::decode_copy(data, read, "s", "t");
    } catch (const mt::OperationError& e) {
        fuzz::check(infinite, "well-formed output without infinity decodes", e.what());
        fuzz::check(std::string_view(e.what()).find("\"s\".\"t\".\"created_at\" holds infinity") != std::string_view::npos,
                    "infinity is refused naming the column", e.what());
        return;
    }
    fuzz::check(!infinite, "a timestamp of infinity is refused");
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        if (!a.order || !b.order) return a.order.has_value() && !b.order.has_value();
        return *a.order < *b.order;
    });
    fuzz::check(got.size() == rows.size(), "one record per row");
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto& want = rows[i];
        fuzz::check(got[i].name == want.name, "the name, byte for byte, in order", want.name.value_or("(null)"));
        fuzz::check(got[i].hash == want.hash, "the hash, byte for byte, in order", want.hash.value_or("(null)"));
        std::optional<int64_t> ms;
        if (want.time) {
            if (read.created_at_timestamp) {
                const __int128 us = *want.time;
                __int128 q = us / 1000;
                if (us % 1000 < 0) --q;
                ms = static_cast<int64_t>(q + 946684800000);
            } else {
                ms = *want.time;
            }
        }
        fuzz::check(got[i].created_at_ms == ms, "the time in epoch milliseconds");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t shape = data[0];
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const auto read = read_of(shape);
    if (shape & 0x80) {
        encoded(in, read);
        return 0;
    }
    try {
        const auto records = mt::decode_copy(in, read, "s", "t");
        // 2 bytes of field count and 4 of length at least per row.
        fuzz::check(records.size() <= in.size() / 6, "no more records than the bytes hold");
    } catch (const mt::OperationError&) {
    }
    return 0;
}
