// Keeping passwords out of everything mtenant shows: connection strings, libpq's messages, logs.
// A password is replaced by "***". docs/security.md lists what is redacted where, and the limits.
#pragma once

#include <string>
#include <string_view>

namespace mt {

// The connection string with every password value replaced by "***", in URL form (user-info,
// percent-encoded or not, `?password=` in the query, also a percent-encoded key) and keyword form
// (quoted or not, with spaces or escaped quotes). Works on malformed strings too: an unterminated
// quote or an unparsable URL still loses everything that could be the password.
std::string redact_conninfo(std::string_view conninfo);

// A driver message about `conninfo` with its password removed: the value as written, its decoded
// and percent-encoded forms, each word of a multi-word password, and any quoted token libpq cut
// out of the password's place in the string (`invalid percent-encoded token: "Ab%9z…"`). Also
// applies redact_text.
std::string redact_message(std::string_view message, std::string_view conninfo);

// Free text (an error, a log line) with URL user-info passwords, `password=…` / `PASSWORD '…'`
// values and every password this process has seen through remember_secrets replaced by "***".
std::string redact_text(std::string_view text);

// Notes the passwords in a connection string (and PGPASSWORD's value) so that redact_text removes
// them from text that did not come with its connection string (the last line of defence at exits).
void remember_secrets(std::string_view conninfo);

namespace detail {
// A value for a libpq URI: RFC 3986 unreserved characters kept, every other byte as %XX.
std::string percent_encode(std::string_view s);
}  // namespace detail

}  // namespace mt
