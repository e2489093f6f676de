# Proves check_includes.cmake can fail: a small tree that breaks each rule once must fail with one
# line per violation, and the same tree without them must pass.
#   cmake -DWORK=<scratch dir> -P check_includes_test.cmake
cmake_minimum_required(VERSION 3.20)
if(NOT WORK)
  message(FATAL_ERROR "usage: cmake -DWORK=<scratch dir> -P check_includes_test.cmake")
endif()
set(checker ${CMAKE_CURRENT_LIST_DIR}/check_includes.cmake)

function(write path)
  string(REPLACE ";" "\n" text "${ARGN}")
  file(WRITE "${tree}/${path}" "${text}\n")
endfunction()

function(run_checker rc_var out_var)
  execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${tree} -P ${checker}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${out_var} "${out}${err}" PARENT_SCOPE)
endfunction()

# The allowed shapes, present in both trees.
set(tree ${WORK}/good)
file(REMOVE_RECURSE ${tree})
write(kernel/src/runtime/lease.cpp "#include \"runtime/manager_state.hpp\"" "#include <mt/tracking/status.hpp>" "#include <mt/sdk/plugin.hpp>")
write(kernel/src/migrations/migrate.cpp "#include \"tracking/tables.hpp\"" "#include <mt/migrations/migrate.hpp>")
write(kernel/src/fleet/doctor.cpp "#include <mt/runtime/tenant_manager.hpp>" "#include <mt/migrations/migrate.hpp>")
write(kernel/include/mt/runtime/tenant_manager.hpp "#include <mt/context/kernel.hpp>" "#include <pqxx/pqxx>")
write(kernel/include/mt/base/errors.hpp "#include <stdexcept>")
write(sdk/include/mt/sdk/plugin.hpp "#include <mt/sdk/abi.h>")
write(plugins/tracking-name/tracking-name.cpp "#include <mt/sdk/plugin.hpp>" "#include \"local.hpp\"")
write(plugins/adapter-httplib/adapter-httplib.cpp "#include <mt/adapter/httplib.hpp>" "#include <mt/runtime/request.hpp>")
write(samples/runtime/main.cpp "#include <mt/runtime/tenant_manager.hpp>")
run_checker(rc out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "include rules hold in 9 files")
  message(FATAL_ERROR "the checker refused a tree that keeps the rules (exit ${rc}):\n${out}")
endif()

# Each rule broken once.
set(tree ${WORK}/bad)
file(REMOVE_RECURSE ${tree})
file(COPY ${WORK}/good/ DESTINATION ${tree})
write(kernel/src/runtime/warmup.cpp "#include <mt/migrations/migrate.hpp>")
write(kernel/src/tracking/status.cpp "#  include \"runtime/manager_state.hpp\"")
write(kernel/include/mt/base/ident.hpp "#include <mt/context/kernel.hpp>")
write(kernel/include/mt/runtime/request.hpp "#include \"runtime/tenant_health.hpp\"")
write(kernel/src/loose.cpp "int x;")
write(kernel/src/newroom/thing.cpp "int y;")
write(sdk/include/mt/sdk/abi.h "#include <mt/base/errors.hpp>" "#include \"kernel/include/mt/runtime/request.hpp\"")
write(plugins/tracking-hash/tracking-hash.cpp "#include <mt/runtime/tenant_manager.hpp>")
write(plugins/adapter-beast/adapter-beast.cpp "#include <mt/fleet/doctor.hpp>")
write(samples/http-service/main.cpp "#include <mt/migrations/migrate.hpp>")
run_checker(rc out)
set(expected
  "kernel/src/runtime/warmup.cpp: #include <mt/migrations/migrate.hpp>: kernel room runtime must not include migrations/ (allowed: sdk, base, plugin_host, context, tracking, runtime)"
  "kernel/src/tracking/status.cpp: #include \"runtime/manager_state.hpp\": kernel room tracking must not include runtime/ (allowed: sdk, base, plugin_host, context, tracking)"
  "kernel/include/mt/base/ident.hpp: #include <mt/context/kernel.hpp>: kernel room base (public header) must not include context/ (allowed: sdk, base)"
  "kernel/include/mt/runtime/request.hpp: #include \"runtime/tenant_health.hpp\": kernel room runtime (public header) must not include the kernel's private headers (kernel/src)"
  "kernel/src/loose.cpp: belongs to no room"
  "kernel/src/newroom: not a room of docs/architecture.md"
  "sdk/include/mt/sdk/abi.h: #include <mt/base/errors.hpp>: sdk must not include base/ (allowed: sdk)"
  "sdk/include/mt/sdk/abi.h: #include \"kernel/include/mt/runtime/request.hpp\": sdk must not include kernel/ (allowed: sdk)"
  "plugins/tracking-hash/tracking-hash.cpp: #include <mt/runtime/tenant_manager.hpp>: plugin tracking-hash must not include runtime/ (allowed: sdk)"
  "plugins/adapter-beast/adapter-beast.cpp: #include <mt/fleet/doctor.hpp>: adapter adapter-beast must not include fleet/ (allowed: sdk, base, plugin_host, context, tracking, runtime, adapter)"
  "samples/http-service/main.cpp: #include <mt/migrations/migrate.hpp>: sample service must not include migrations/"
  "11 include rule violation(s) in 17 files")
if(rc EQUAL 0)
  message(FATAL_ERROR "the checker passed a tree that breaks the rules:\n${out}")
endif()
foreach(line IN LISTS expected)
  string(FIND "${out}" "${line}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the checker's report lacks \"${line}\"; it said:\n${out}")
  endif()
endforeach()
message(STATUS "the checker passes the good tree and reports each of the ${WORK}/bad violations")
