#include <mt/context/metrics.hpp>

namespace mt {

std::string metrics_text(const Kernel& kernel) {
    std::string out;
    for (const auto& sink : kernel.sinks()) {
        const std::string text = sink.render();
        if (text.empty()) continue;
        out += text;
        // Each exposition must start on a line of its own.
        if (out.back() != '\n') out += '\n';
    }
    return out;
}

}  // namespace mt
