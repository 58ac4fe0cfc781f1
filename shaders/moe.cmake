# The MoE matmul's shaders (included by shaders.cmake): the vector path for every weight type,
# quantized or float; the tiled path for the quantized types, plain and with cooperative
# matrices (VK_NV_cooperative_matrix; float weights always take the vector path); the routing
# and the weighted sum, which know no type. runtime/vulkan/moe_vulkan.c picks among them.
foreach(type ${QK_SHADER_ALL_TYPES})
  qk_shader(moe_vec/${type} moe_vec.comp DEFINES QK_TYPE_${type})
endforeach()
foreach(type ${QK_SHADER_QUANT_TYPES})
  qk_shader(moe_tiled/${type} moe_tiled.comp DEFINES QK_TYPE_${type})
  qk_shader(moe_tiled_cm/${type} moe_tiled.comp DEFINES QK_TYPE_${type} QK_COOPMAT)
endforeach()
qk_shader(moe_route moe_route.comp)
qk_shader(moe_wsum moe_wsum.comp)
