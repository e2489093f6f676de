// Compiles: begin() and connection() on a named lease.
#include <mt/runtime/tenant_manager.hpp>

void use(mt::TenantManager& manager) {
    auto lease = manager.tenant("a");
    auto tx = lease.begin();
    pqxx::connection& c = lease.connection();
    (void)c;
    manager.tenant("a").query("SELECT 1");
    manager.tenant("a").transaction([](pqxx::work& w) { w.exec("SELECT 1"); });
}
