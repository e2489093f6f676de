# mt_unity_by_room(<target>): with MT_UNITY_BUILD, compiles the target's kernel sources one room at
# a time (kernel/src/<room>/*.cpp become one translation unit per room), so libpqxx, nlohmann-json,
# spdlog and the standard headers are parsed once per room instead of once per file. Rooms, not
# CMake's fixed-size batches: a new file joins its room's unit instead of shifting every batch.
# Sources outside kernel/src/<room>/ are compiled on their own. Helpers in anonymous namespaces must
# therefore be unique within a room (shared ones live in a private header, e.g. base/text.hpp).
function(mt_unity_by_room target)
  if(NOT MT_UNITY_BUILD)
    return()
  endif()
  set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE GROUP)
  get_target_property(sources ${target} SOURCES)
  foreach(source IN LISTS sources)
    if(source MATCHES "/kernel/src/([^/]+)/[^/]+\\.cpp$")
      # TARGET_DIRECTORY: source properties are per directory, and the target may be defined in
      # another one than the caller's (tests/fuzz builds kernel sources too).
      set_source_files_properties(${source} TARGET_DIRECTORY ${target} PROPERTIES UNITY_GROUP ${CMAKE_MATCH_1})
    endif()
  endforeach()
endfunction()
