// Must not compile: the lease dies at the ';' while the transaction lives on.
#include <mt/runtime/tenant_manager.hpp>

void misuse(mt::TenantManager& manager) { auto tx = manager.tenant("a").begin(); }
