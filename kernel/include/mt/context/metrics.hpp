// The Prometheus exposition of a kernel's metrics sinks (SPEC §5.1 metrics_text), for applications
// that serve /metrics themselves instead of using a sink's built-in endpoint.
#pragma once

#include <mt/context/kernel.hpp>

#include <string>

namespace mt {

// The render() text of every sink in [roles] sinks, in role order; sinks that cannot render add
// nothing. Throws Error naming the sink when one fails to render.
std::string metrics_text(const Kernel& kernel);

}  // namespace mt
