# PyPI ROS wheels export include dirs of their manylinux build host (/opt/python/...), which
# do not exist here and make CMake refuse the targets: drop them from every imported target of
# the including directory. Include this after rosidl_generate_interfaces() (which imports more
# targets) and before ament_package().

function(_drop_manylinux_includes)
  get_directory_property(_imported IMPORTED_TARGETS)
  foreach(_t IN LISTS _imported)
    get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_inc)
      list(FILTER _inc EXCLUDE REGEX "^/opt/python/")
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_inc}")
    endif()
  endforeach()
endfunction()

_drop_manylinux_includes()
