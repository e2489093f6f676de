// The fuzz target's puppet plugin: its entry returns whatever descriptor the target set last, so
// the kernel's real loader (inspect, dlopen, entry, ABI checks, describe) reads fuzzer-made
// descriptors exactly as it reads a plugin's.
#include <mt/sdk/abi.h>

namespace {
const mt_plugin_descriptor* current = nullptr;
}

extern "C" MT_EXPORT void mt_fuzz_set_descriptor(const mt_plugin_descriptor* descriptor) { current = descriptor; }

extern "C" MT_EXPORT const mt_plugin_descriptor* mt_plugin_entry_v1(void) { return current; }
