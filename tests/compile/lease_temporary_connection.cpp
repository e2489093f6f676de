// Must not compile: the connection goes back to the pool at the ';' but the reference lives on.
#include <mt/runtime/tenant_manager.hpp>

void misuse(mt::TenantManager& manager) { pqxx::connection& c = manager.tenant("a").connection(); (void)c; }
