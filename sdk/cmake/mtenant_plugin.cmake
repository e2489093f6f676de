# mtenant_add_plugin(<name> <sources>...)
# Builds a plugin as a loadable module named <name>.so with hidden visibility (only
# mt_plugin_entry_v1 is exported, by the SDK macro) and --no-undefined, so an unresolved symbol is a
# link error here rather than a load error in the field.
function(mtenant_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE mtenant::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  target_compile_features(${name} PRIVATE cxx_std_20)
endfunction()
