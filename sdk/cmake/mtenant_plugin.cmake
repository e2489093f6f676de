# mtenant_add_plugin(<name> <sources>...)
# Builds a plugin as a loadable module named <name>.so with hidden visibility and --no-undefined, so
# an unresolved symbol is a link error here rather than a load error in the field. A version script
# keeps mt_plugin_entry_v1 the only dynamic symbol: hidden visibility alone still exports the
# standard library's template instantiations (namespace std has default visibility).
function(mtenant_add_plugin name)
  set(exports "${CMAKE_BINARY_DIR}/mtenant_plugin_exports.map")
  file(CONFIGURE OUTPUT "${exports}" CONTENT "{\n  global: mt_plugin_entry_v1;\n  local: *;\n};\n")
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE mtenant::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${name} PRIVATE -Wl,--no-undefined "LINKER:--version-script=${exports}")
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${exports}")
  target_compile_features(${name} PRIVATE cxx_std_20)
endfunction()
