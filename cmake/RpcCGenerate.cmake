# rpc_c_generate(): .proto files -> a library of protoc-c's message code
# plus protoc-gen-rpc-c's typed server and client code.
#
#   rpc_c_generate(TARGET <name>
#                  PROTOS <file.proto>...
#                  [IMPORT_DIRS <dir>...]
#                  [STATIC])
#
# PROTOS are paths (relative ones to CMAKE_CURRENT_SOURCE_DIR), each under
# one of IMPORT_DIRS (default: CMAKE_CURRENT_SOURCE_DIR); the name protoc
# gives a file, and so its generated header, is its path relative to that
# folder: IMPORT_DIRS proto + PROTOS proto/kv/v1/kv.proto generates
# "kv/v1/kv.pb-c.h" and "kv/v1/kv.rpc.h".  Imports are looked up in
# IMPORT_DIRS; protobuf's own (google/protobuf/*.proto) too, but their C
# code is not in any library: a file that imports google/protobuf/x.proto
# lists /usr/include in IMPORT_DIRS and /usr/include/google/protobuf/x.proto
# in PROTOS.
#
# The result is a static library <name> (position-independent, so it may go
# into a shared library) whose include path holds the generated headers and
# which links the server and client libraries: the shared ones, or the
# static ones with STATIC.  Generated code lives only in the build tree,
# under ${CMAKE_CURRENT_BINARY_DIR}/<name>.
#
# Where the tools and libraries come from is set by whoever includes this
# file: the installed rpc package (rpcConfig.cmake) or this source tree.
#   RPC_C_PROTOC        protoc
#   RPC_C_PROTOC_GEN_C  protoc-c's plugin (protoc-gen-c)
#   RPC_C_PLUGIN        protoc-gen-rpc-c: a target name or a path
#   RPC_C_LIBS / RPC_C_LIBS_STATIC   what the library links
include_guard(GLOBAL)

function(rpc_c_generate)
  cmake_parse_arguments(G "STATIC" "TARGET" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT G_TARGET OR NOT G_PROTOS)
    message(FATAL_ERROR "rpc_c_generate: TARGET and PROTOS are required")
  endif()
  if(G_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "rpc_c_generate: unknown arguments ${G_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT G_IMPORT_DIRS)
    set(G_IMPORT_DIRS ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  if(TARGET ${RPC_C_PLUGIN})
    set(plugin $<TARGET_FILE:${RPC_C_PLUGIN}>)
  else()
    set(plugin ${RPC_C_PLUGIN})
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${G_TARGET})
  file(MAKE_DIRECTORY ${out})
  set(includes)
  foreach(d ${G_IMPORT_DIRS})
    get_filename_component(d ${d} ABSOLUTE)
    list(APPEND includes -I${d})
  endforeach()
  set(srcs)
  foreach(p ${G_PROTOS})
    get_filename_component(abs ${p} ABSOLUTE)
    set(rel)
    foreach(d ${G_IMPORT_DIRS})
      get_filename_component(d ${d} ABSOLUTE)
      file(RELATIVE_PATH r ${d} ${abs})
      if(NOT r MATCHES "^\\.\\./" AND NOT IS_ABSOLUTE r)
        set(rel ${r})
        break()
      endif()
    endforeach()
    if(NOT rel)
      message(FATAL_ERROR "rpc_c_generate: ${p} is under none of IMPORT_DIRS (${G_IMPORT_DIRS})")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(gen ${out}/${base}.pb-c.c ${out}/${base}.pb-c.h
            ${out}/${base}.rpc.c ${out}/${base}.rpc.h)
    add_custom_command(OUTPUT ${gen}
      COMMAND ${RPC_C_PROTOC} ${includes}
              --plugin=protoc-gen-c=${RPC_C_PROTOC_GEN_C} --c_out=${out}
              --plugin=protoc-gen-rpc-c=${plugin} --rpc-c_out=${out} ${abs}
      DEPENDS ${abs} ${RPC_C_PLUGIN}
      COMMENT "protoc --c_out --rpc-c_out ${rel}" VERBATIM)
    list(APPEND srcs ${out}/${base}.pb-c.c ${out}/${base}.rpc.c)
    set_source_files_properties(${out}/${base}.pb-c.c PROPERTIES COMPILE_OPTIONS -w)
  endforeach()
  add_library(${G_TARGET} STATIC ${srcs})
  set_target_properties(${G_TARGET} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${G_TARGET} PUBLIC $<BUILD_INTERFACE:${out}>)
  if(G_STATIC)
    target_link_libraries(${G_TARGET} PUBLIC ${RPC_C_LIBS_STATIC})
  else()
    target_link_libraries(${G_TARGET} PUBLIC ${RPC_C_LIBS})
  endif()
endfunction()
