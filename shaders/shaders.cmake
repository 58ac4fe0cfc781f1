# The Vulkan shaders: GLSL 450 compute sources compiled by glslc into SPIR-V, checked by
# spirv-val where installed, and embedded in the library (QK_SHADER_SOURCE, a generated C file).
# Included from the top-level CMakeLists.txt, so the generated file's rule is in the library's
# directory. A variant is one source compiled with one set of defines; per-type variants are
# made for the types whose family file (shaders/formats/<family>.glsl) exists.

set(QK_SHADER_DIR "${CMAKE_CURRENT_SOURCE_DIR}/shaders")
set(QK_SPV_DIR "${CMAKE_CURRENT_BINARY_DIR}/spirv")
find_program(QK_SPIRV_VAL spirv-val)
find_program(QK_SPIRV_OPT spirv-opt)
file(GLOB QK_SHADER_INCLUDES CONFIGURE_DEPENDS "${QK_SHADER_DIR}/*.glsl" "${QK_SHADER_DIR}/formats/*.glsl")

# Every quantized type and the family file that holds its GLSL code.
set(QK_SHADER_FAMILIES
  Q4_0:legacy Q4_1:legacy Q5_0:legacy Q5_1:legacy Q8_0:legacy
  Q2_K:kquants Q3_K:kquants Q4_K:kquants Q5_K:kquants Q6_K:kquants
  IQ2_XXS:iquants_grid IQ2_XS:iquants_grid IQ2_S:iquants_grid IQ3_XXS:iquants_grid IQ3_S:iquants_grid
  IQ1_S:iquants_iq1 IQ1_M:iquants_iq1 IQ4_NL:iquants_iq4 IQ4_XS:iquants_iq4
  MXFP4:mxfp4 TQ1_0:ternary TQ2_0:ternary
  F32:floats F16:floats BF16:floats)
set(QK_SHADER_QUANT_TYPES)
set(QK_SHADER_ALL_TYPES)
foreach(entry ${QK_SHADER_FAMILIES})
  string(REPLACE ":" ";" pair "${entry}")
  list(GET pair 0 type)
  list(GET pair 1 family)
  if(EXISTS "${QK_SHADER_DIR}/formats/${family}.glsl")
    list(APPEND QK_SHADER_ALL_TYPES ${type})
    if(NOT family STREQUAL "floats")
      list(APPEND QK_SHADER_QUANT_TYPES ${type})
    endif()
  endif()
endforeach()

set(QK_SHADER_ENTRIES)
# qk_shader(NAME SOURCE [EXACT] [DEFINES d...]): EXACT is for shaders that must round as the
# CPU reference does (encoders, decoders): compiled without glslc's optimizer, which would fuse
# a*b+c into Fma and fold divisions by constants, then every float multiply/add is marked
# NoContraction (scripts/spv_nocontract.py); the driver's compiler still optimizes the rest.
function(qk_shader name source)
  cmake_parse_arguments(S "EXACT" "" "DEFINES" ${ARGN})
  string(REPLACE "/" "." file "${name}")
  set(spv "${QK_SPV_DIR}/${file}.spv")
  set(defs)
  foreach(d ${S_DEFINES})
    list(APPEND defs "-D${d}")
  endforeach()
  set(opt -O)
  if(S_EXACT)
    set(opt -O0)
  endif()
  set(cmds COMMAND ${Vulkan_GLSLC_EXECUTABLE} --target-env=vulkan1.2 ${opt} -I "${QK_SHADER_DIR}"
           -I "${QK_SHADER_DIR}/formats" -I "${QK_GEN_DIR}" ${defs} "${QK_SHADER_DIR}/${source}" -o "${spv}.raw")
  if(S_EXACT AND QK_SPIRV_OPT)
    # then only the passes that move no float arithmetic: inlining, arrays and locals into SSA
    # values, unrolling of [[unroll]] loops, dead code; what would fold or fuse stays with the driver
    list(APPEND cmds COMMAND Python3::Interpreter "${CMAKE_CURRENT_SOURCE_DIR}/scripts/spv_nocontract.py" "${spv}.raw" "${spv}.nc"
                     COMMAND ${QK_SPIRV_OPT} --target-env=vulkan1.2 --inline-entry-points-exhaustive --eliminate-dead-functions
                             --private-to-local --scalar-replacement=0 --ssa-rewrite --loop-unroll --scalar-replacement=0
                             --ssa-rewrite --eliminate-local-single-block --eliminate-local-single-store
                             --eliminate-dead-code-aggressive "${spv}.nc" -o "${spv}")
  elseif(S_EXACT)
    list(APPEND cmds COMMAND Python3::Interpreter "${CMAKE_CURRENT_SOURCE_DIR}/scripts/spv_nocontract.py" "${spv}.raw" "${spv}")
  else()
    list(APPEND cmds COMMAND ${CMAKE_COMMAND} -E copy "${spv}.raw" "${spv}")
  endif()
  if(QK_SPIRV_VAL)
    list(APPEND cmds COMMAND ${QK_SPIRV_VAL} --target-env vulkan1.2 "${spv}")
  endif()
  add_custom_command(OUTPUT "${spv}" ${cmds}
    DEPENDS "${QK_SHADER_DIR}/${source}" ${QK_SHADER_INCLUDES} "${QK_GEN_DIR}/qk_tables.glsl"
            "${CMAKE_CURRENT_SOURCE_DIR}/scripts/spv_nocontract.py"
    COMMENT "glslc ${name}" VERBATIM)
  set(QK_SHADER_ENTRIES ${QK_SHADER_ENTRIES} "${name}=${spv}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY "${QK_SPV_DIR}")
qk_shader(convert convert.comp EXACT)
qk_shader(scan_nonfinite scan_nonfinite.comp)
qk_shader(copy copy.comp)
qk_shader(row_sigma2 row_sigma2.comp EXACT)
qk_shader(arith_check arith_check.comp EXACT)
foreach(type ${QK_SHADER_QUANT_TYPES})
  qk_shader(dequant/${type} dequant.comp EXACT DEFINES QK_TYPE_${type})
  qk_shader(quant/${type} quant.comp EXACT DEFINES QK_TYPE_${type})
endforeach()
if(EXISTS "${QK_SHADER_DIR}/moe.cmake")
  include("${QK_SHADER_DIR}/moe.cmake")
endif()

set(QK_SHADER_SOURCE "${QK_GEN_DIR}/qk_shaders.c")
set(QK_SHADER_FILES)
foreach(e ${QK_SHADER_ENTRIES})
  string(REGEX REPLACE "^[^=]*=" "" f "${e}")
  list(APPEND QK_SHADER_FILES "${f}")
endforeach()
add_custom_command(OUTPUT "${QK_SHADER_SOURCE}"
  COMMAND Python3::Interpreter "${CMAKE_CURRENT_SOURCE_DIR}/scripts/embed_spirv.py" "${QK_SHADER_SOURCE}" ${QK_SHADER_ENTRIES}
  DEPENDS ${QK_SHADER_FILES} "${CMAKE_CURRENT_SOURCE_DIR}/scripts/embed_spirv.py"
  COMMENT "Embedding the SPIR-V shaders" VERBATIM)
