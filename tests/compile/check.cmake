# Proves the lease API cannot be misused into a leak (issue 10 item 1): begin() and connection() on
# a temporary lease do not compile, while the same calls on a named lease do.
#   cmake -DCXX=... -DFLAGS="-I... -I..." -DDIR=<this folder> -P check.cmake
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
function(compile source out_result out_output)
  execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only ${flags} ${DIR}/${source}
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(${out_result} ${result} PARENT_SCOPE)
  set(${out_output} "${output}" PARENT_SCOPE)
endfunction()

compile(lease_named.cpp result output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "lease_named.cpp should compile:\n${output}")
endif()
foreach(bad lease_temporary_begin.cpp lease_temporary_connection.cpp)
  compile(${bad} result output)
  if(result EQUAL 0)
    message(FATAL_ERROR "${bad} compiled, but calling begin()/connection() on a temporary lease must not")
  endif()
  if(NOT output MATCHES "use of deleted function")
    message(FATAL_ERROR "${bad} failed for another reason than the deleted rvalue overload:\n${output}")
  endif()
endforeach()
message(STATUS "lease misuse is refused at compile time")
