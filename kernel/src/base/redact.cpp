#include <mt/base/redact.hpp>

#include "base/text.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace mt {

namespace {

constexpr std::string_view mask = "***";
// Pieces of a password shorter than this are removed only where libpq quotes them: replacing every
// "ab" in a message would shred it and hide nothing worth hiding.
constexpr size_t min_fragment = 4;

// A password value in a connection string: [begin, end), quotes included.
struct Span {
    size_t begin;
    size_t end;
};

using detail::is_space;
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = lower(c);
    return out;
}

// `word` (lower case) at text[at], ignoring case.
bool starts_with_nocase(std::string_view text, size_t at, std::string_view word) {
    if (at > text.size() || text.size() - at < word.size()) return false;
    for (size_t i = 0; i < word.size(); ++i)
        if (lower(text[at + i]) != word[i]) return false;
    return true;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// An invalid escape stays as written: libpq refuses it, and the text is what a reader would see.
std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}


// The scheme's "://" when text (after leading blanks) is a libpq URI, else npos.
size_t uri_start(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && is_space(text[i])) ++i;
    for (std::string_view scheme : {"postgresql://", "postgres://"})
        if (starts_with_nocase(text, i, scheme)) return i + scheme.size();
    return std::string_view::npos;
}

// Password spans of the URI whose authority starts at `start` and which ends at `limit`.
// libpq ends the user-info at the first '@' before a '/', so a password holding '@', '/' or '?'
// breaks the URI in ways that quote pieces of it; taking the last '@' before the query (the first
// '?' after a '/') covers each of those pieces.
void uri_spans(std::string_view text, size_t start, size_t limit, std::vector<Span>& out) {
    const std::string_view region = text.substr(0, limit);
    const size_t slash = region.find('/', start);
    const size_t first_q = slash == std::string_view::npos ? std::string_view::npos : region.find('?', slash);
    size_t at = region.substr(0, first_q == std::string_view::npos ? limit : first_q).rfind('@');
    if (at == std::string_view::npos || at < start) at = region.rfind('@');
    if (at != std::string_view::npos && at < start) at = std::string_view::npos;
    if (at != std::string_view::npos) {
        const size_t colon = region.find(':', start);
        if (colon != std::string_view::npos && colon < at && colon + 1 < at) out.push_back({colon + 1, at});
    }
    const size_t query = region.find('?', at == std::string_view::npos ? start : at + 1);
    if (query == std::string_view::npos) return;
    for (size_t p = query + 1; p < limit;) {
        size_t e = region.find('&', p);
        if (e == std::string_view::npos) e = limit;
        const std::string_view param = region.substr(p, e - p);
        const size_t eq = param.find('=');
        if (eq != std::string_view::npos) {
            // A value already reading "***" is left alone (the text that follows is not a password).
            if (lowered(percent_decode(param.substr(0, eq))) == "password" && p + eq + 1 < e &&
                param.substr(eq + 1, mask.size()) != mask)
                out.push_back({p + eq + 1, e});
        } else if (starts_with_nocase(param, 0, "password") && param.size() > 8) {
            out.push_back({p + 8, e});  // "?passwordSECRET": libpq quotes the whole parameter
        }
        p = e + 1;
    }
}

// End of a keyword-form value starting at s[i]: a quoted value (single quotes for libpq; double
// quotes taken as quoting too, since a user who wrote them meant one value) or a bare word, with
// backslash escapes; an unterminated quote runs to the end.
size_t value_end(std::string_view s, size_t i) {
    const size_t n = s.size();
    if (i < n && (s[i] == '\'' || s[i] == '"')) {
        const char q = s[i++];
        while (i < n) {
            if (s[i] == '\\' && i + 1 < n) i += 2;
            else if (s[i] == q) return i + 1;
            else ++i;
        }
        return n;
    }
    while (i < n && !is_space(s[i])) i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
    return i;
}

// True when s[k] starts `key =`.
bool starts_key(std::string_view s, size_t k) {
    size_t i = k;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    if (i == k) return false;
    while (i < s.size() && is_space(s[i])) ++i;
    return i < s.size() && s[i] == '=';
}

// Password spans of a keyword=value string. A bare password value runs on over the following words
// up to the next `key=`: `password=two words` is refused by libpq with a message quoting "words".
void keyword_spans(std::string_view s, std::vector<Span>& out) {
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        while (i < n && is_space(s[i])) ++i;
        if (i >= n) break;
        const size_t key_begin = i;
        while (i < n && !is_space(s[i]) && s[i] != '=') ++i;
        const std::string key = lowered(s.substr(key_begin, i - key_begin));
        size_t j = i;
        while (j < n && is_space(s[j])) ++j;
        if (j >= n || s[j] != '=') {
            i = j;
            continue;
        }
        i = j + 1;
        while (i < n && is_space(s[i])) ++i;
        const size_t value_begin = i;
        const bool quoted = i < n && (s[i] == '\'' || s[i] == '"');
        i = value_end(s, i);
        if (key != "password") continue;
        if (!quoted) {
            for (;;) {
                size_t k = i;
                while (k < n && is_space(s[k])) ++k;
                if (k >= n || starts_key(s, k)) break;
                i = value_end(s, k);
            }
        }
        if (i > value_begin) out.push_back({value_begin, i});
    }
}

std::vector<Span> password_spans(std::string_view conninfo) {
    std::vector<Span> spans;
    if (const size_t start = uri_start(conninfo); start != std::string_view::npos)
        uri_spans(conninfo, start, conninfo.size(), spans);
    else
        keyword_spans(conninfo, spans);
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    return spans;
}

// The values libpq reads from the string, when it parses: keyword -> value.
std::map<std::string, std::string> parsed_options(std::string_view conninfo) {
    const std::string text(conninfo);
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(text.c_str(), &error);
    if (error) PQfreemem(error);
    std::map<std::string, std::string> out;
    if (!options) return out;
    for (const PQconninfoOption* o = options; o->keyword; ++o)
        if (o->val) out[o->keyword] = o->val;
    PQconninfoFree(options);
    return out;
}

std::string parsed_password(std::string_view conninfo) {
    const auto options = parsed_options(conninfo);
    const auto it = options.find("password");
    return it == options.end() ? std::string() : it->second;
}

void replace_all(std::string& text, std::string_view piece) {
    if (piece.empty()) return;
    for (size_t at = text.find(piece); at != std::string::npos; at = text.find(piece, at + mask.size()))
        text.replace(at, piece.size(), mask);
}

std::string mask_spans(std::string_view text, const std::vector<Span>& spans, size_t offset = 0) {
    std::string out;
    size_t copied = 0;
    for (const auto& span : spans) {
        const size_t b = span.begin - offset;
        const size_t e = span.end - offset;
        if (b < copied) continue;
        out.append(text.substr(copied, b - copied));
        out.append(mask);
        copied = e;
    }
    out.append(text.substr(copied));
    return out;
}

void add_forms(std::vector<std::string>& out, const std::string& value) {
    if (value.empty()) return;
    const std::string decoded = percent_decode(value);
    for (const std::string& v : {value, decoded, detail::percent_encode(value), detail::percent_encode(decoded)}) {
        out.push_back(v);
        size_t i = 0;
        while (i < v.size()) {
            while (i < v.size() && is_space(v[i])) ++i;
            const size_t b = i;
            while (i < v.size() && !is_space(v[i])) ++i;
            if (i > b && (b > 0 || i < v.size())) out.push_back(v.substr(b, i - b));
        }
    }
}

// Every form of the connection string's passwords a message could hold, longest first.
std::vector<std::string> fragments_of(std::string_view conninfo, const std::vector<Span>& spans) {
    std::vector<std::string> forms;
    for (const auto& span : spans) {
        const std::string raw(conninfo.substr(span.begin, span.end - span.begin));
        add_forms(forms, raw);
        std::string inner = raw;
        if (!inner.empty() && (inner.front() == '\'' || inner.front() == '"')) {
            const char q = inner.front();
            inner.erase(0, 1);
            if (!inner.empty() && inner.back() == q) inner.pop_back();
            add_forms(forms, inner);
        }
        std::string unescaped;
        for (size_t i = 0; i < inner.size(); ++i) {
            if (inner[i] == '\\' && i + 1 < inner.size()) ++i;
            unescaped += inner[i];
        }
        add_forms(forms, unescaped);
    }
    const auto options = parsed_options(conninfo);
    if (const auto it = options.find("password"); it != options.end()) add_forms(forms, it->second);
    // A piece equal to the user, database or host name, or to the scheme, is shown by the string
    // itself: removing it from every message would shred them (postgres:postgres@…) and hide nothing.
    std::vector<std::string> shown = {"postgres", "postgresql"};
    for (const char* key : {"user", "dbname", "host", "hostaddr"})
        if (const auto it = options.find(key); it != options.end()) shown.push_back(it->second);
    forms.erase(std::remove_if(forms.begin(), forms.end(),
                               [&](const std::string& f) {
                                   return std::find(shown.begin(), shown.end(), f) != shown.end();
                               }),
                forms.end());
    std::sort(forms.begin(), forms.end(), [](const std::string& a, const std::string& b) {
        return a.size() != b.size() ? a.size() > b.size() : a < b;
    });
    forms.erase(std::unique(forms.begin(), forms.end()), forms.end());
    return forms;
}

// URL user-info passwords and `?password=` values anywhere in free text; a URL there ends at a
// blank or a quote.
std::string scrub_urls(std::string_view text) {
    std::vector<Span> spans;
    for (size_t scheme = text.find("://"); scheme != std::string_view::npos; scheme = text.find("://", scheme + 3)) {
        const size_t start = scheme + 3;
        size_t limit = start;
        while (limit < text.size() && !is_space(text[limit]) && text[limit] != '"' && text[limit] != '\'' &&
               text[limit] != '<' && text[limit] != '>' && text[limit] != '`')
            ++limit;
        uri_spans(text, start, limit, spans);
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    return mask_spans(text, spans);
}

// End of a quoted value starting at text[open]; backslash escapes and SQL's doubled quote are part
// of the value.
size_t quoted_end(std::string_view text, size_t open) {
    const char q = text[open];
    size_t i = open + 1;
    while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) i += 2;
        else if (text[i] == q && i + 1 < text.size() && text[i + 1] == q) i += 2;
        else if (text[i] == q) return i + 1;
        else ++i;
    }
    return i;
}

// password=secret, password = 'se cret', "password": "x", PGPASSWORD=x and SQL's PASSWORD 'x'.
std::string scrub_key_values(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t copied = 0;
    for (size_t at = 0; at < text.size(); ++at) {
        if (!starts_with_nocase(text, at, "password")) continue;
        size_t i = at + 8;
        if (i < text.size() && (text[i] == '"' || text[i] == '\'')) ++i;  // end of a quoted key
        while (i < text.size() && is_space(text[i])) ++i;
        bool separator = false;
        if (i < text.size() && (text[i] == '=' || text[i] == ':')) {
            separator = true;
            ++i;
            while (i < text.size() && is_space(text[i])) ++i;
        }
        if (i >= text.size()) break;
        if (text.substr(i, mask.size()) == mask) continue;  // redacted already
        size_t end;
        if (text[i] == '\'' || text[i] == '"') {
            end = quoted_end(text, i);
        } else if (separator) {
            end = i;
            while (end < text.size() && !is_space(text[end]) && text[end] != '&' && text[end] != ';' &&
                   text[end] != ',' && text[end] != ')' && text[end] != '}')
                ++end;
        } else {
            continue;  // "password" as a word ("password authentication failed")
        }
        if (end == i) continue;
        out.append(text.substr(copied, i - copied));
        out.append(mask);
        copied = end;
        at = end - 1;
    }
    out.append(text.substr(copied));
    return out;
}

struct Remembered {
    std::mutex mutex;
    std::vector<std::string> fragments;  // longest first
};

Remembered& remembered() {
    static Remembered r;
    return r;
}

void remember(std::vector<std::string> pieces) {
    auto& r = remembered();
    std::lock_guard lock(r.mutex);
    for (auto& p : pieces)
        if (p.size() >= min_fragment && std::find(r.fragments.begin(), r.fragments.end(), p) == r.fragments.end())
            r.fragments.push_back(std::move(p));
    std::stable_sort(r.fragments.begin(), r.fragments.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::vector<std::string> environment_password() {
    std::vector<std::string> out;
    if (const char* pw = std::getenv("PGPASSWORD"); pw && *pw) add_forms(out, pw);
    return out;
}

}  // namespace

std::string detail::percent_encode(std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string redact_conninfo(std::string_view conninfo) {
    const auto spans = password_spans(conninfo);
    std::string out = mask_spans(conninfo, spans);
    // The parser above is textual; should it miss a form libpq accepts, the parsed value is still
    // taken out wherever it appears.
    if (const std::string password = parsed_password(conninfo); spans.empty() && !password.empty()) {
        replace_all(out, password);
        replace_all(out, detail::percent_encode(password));
    }
    return scrub_key_values(scrub_urls(out));
}

std::string redact_message(std::string_view message, std::string_view conninfo) {
    const auto spans = password_spans(conninfo);
    const auto fragments = fragments_of(conninfo, spans);
    std::string out;
    size_t copied = 0;
    // libpq quotes the token it refuses, which may be a piece of the password or the whole string.
    for (size_t open = message.find('"'); open != std::string_view::npos;) {
        const size_t close = message.find('"', open + 1);
        if (close == std::string_view::npos) break;
        const std::string_view token = message.substr(open + 1, close - open - 1);
        std::optional<std::string> replacement;
        if (!token.empty()) {
            bool inside = false;
            bool outside = false;
            std::optional<size_t> whole_at;  // an occurrence holding whole spans
            for (size_t pos = conninfo.find(token); pos != std::string_view::npos; pos = conninfo.find(token, pos + 1)) {
                const size_t end = pos + token.size();
                bool overlaps = false;
                bool holds_all = true;
                for (const auto& s : spans) {
                    if (s.begin < end && pos < s.end) {
                        overlaps = true;
                        if (s.begin < pos || s.end > end) holds_all = false;
                    }
                }
                if (!overlaps) outside = true;
                else if (holds_all && !whole_at) whole_at = pos;
                else inside = true;
            }
            if (whole_at) {
                std::vector<Span> within;
                for (const auto& s : spans)
                    if (s.begin >= *whole_at && s.end <= *whole_at + token.size()) within.push_back(s);
                replacement = mask_spans(token, within, *whole_at);
            } else if (inside && !outside) {
                replacement = std::string(mask);
            } else if (token.size() >= 3) {
                for (const auto& f : fragments)
                    if (f.find(token) != std::string::npos) {
                        replacement = std::string(mask);
                        break;
                    }
            }
        }
        if (replacement) {
            out.append(message.substr(copied, open + 1 - copied));
            out.append(*replacement);
            copied = close;
        }
        open = message.find('"', close + 1);
    }
    out.append(message.substr(copied));
    for (const auto& f : fragments)
        if (f.size() >= min_fragment) replace_all(out, f);
    return redact_text(out);
}

std::string redact_text(std::string_view text) {
    std::string out = scrub_key_values(scrub_urls(text));
    for (const auto& f : environment_password())
        if (f.size() >= min_fragment) replace_all(out, f);
    auto& r = remembered();
    std::lock_guard lock(r.mutex);
    for (const auto& f : r.fragments) replace_all(out, f);
    return out;
}

void remember_secrets(std::string_view conninfo) {
    remember(fragments_of(conninfo, password_spans(conninfo)));
    remember(environment_password());
}

}  // namespace mt
