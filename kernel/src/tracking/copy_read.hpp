// The COPY read of tracking tables (ABI 1.2): the statement that reads one table's declared columns
// in binary, and the decoding of its output into the records the format's list_query would give.
// Kernel-private; fuzzed by tests/fuzz/copy_read.cpp.
#pragma once

#include <mt/plugin_host/plugins.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace mt {

// `COPY "schema"."table" (order[, name][, hash][, created_at]) TO STDOUT (FORMAT binary)`, the
// identifiers quoted by the one helper.
std::string copy_statement(const TrackingCopyRead& read, const std::string& schema, const std::string& table);

// One table's output of copy_statement() as list_query's rows: ascending by the order column (NULLs
// last, ties in the order COPY sent them), the name and hash as stored, the time as epoch
// milliseconds (a timestamp floored, as list_query's floor(); an integer as stored). Data that is
// not such output throws OperationError ("a server or protocol fault"), as does a timestamp of
// ±infinity, which names the table and column.
std::vector<sdk::Record> decode_copy(std::string_view data, const TrackingCopyRead& read, const std::string& schema,
                                     const std::string& table);

}  // namespace mt
