// Small text helpers that several kernel sources had each defined for themselves: one definition
// here, so that sources of one library can also be compiled together (MT_UNITY_BUILD).
#pragma once

#include <string>

namespace mt::detail {

// The characters C's isspace() accepts in the "C" locale, without its locale dependence.
inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// A driver or server message without its trailing newline and spaces, to quote inside a sentence.
inline std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

}  // namespace mt::detail
