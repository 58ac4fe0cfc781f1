/* The device features qkern's shaders may need: which ones a device offers and qkern enables,
 * the test hook that hides some, and what each embedded shader needs, read from its SPIR-V
 * capabilities (so that a shader's needs cannot drift from what its source declares). */
#ifndef QK_VK_FEATURES_H
#define QK_VK_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "vk_loader.h"

/* The feature structs a device is asked for (what it offers) and created with (what is enabled). */
typedef struct qk_vk_feature_chain {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV coop;
} qk_vk_feature_chain;

/* An empty chain, linked (coop: with the cooperative-matrix struct). */
void qk_vk_chain_init(qk_vk_feature_chain *c, int coop);

/* The features named in QK_VK_DISABLE, a test hook read at each device open: a comma-separated
 * list of float64, int64, int16, float16, int8, storage16, storage8, uniform16, uniform8,
 * push16, push8, int64_atomics, memory_model, memory_model_device, coopmat, integer_dot,
 * subgroup (every subgroup operation) or subgroup_basic, _vote, _arithmetic, _ballot, _shuffle,
 * _shuffle_relative, _clustered, _quad; "all" for every one. A disabled feature is as if the
 * device did not offer it: it is not enabled, and what needs it is unsupported (the runtime
 * then falls back to the cpu or refuses, as on such a device). Unknown names are ignored. */
unsigned qk_vk_disabled_features(void);

/* Whether QK_VK_DISABLE names `what` (or "all"): for the device properties that are not
 * features, e.g. "denorm" (shaderDenormPreserveFloat32). */
int qk_vk_disables(const char *what);

/* Clears in `have` (and in *subgroup_ops, VK_SUBGROUP_FEATURE_* bits of compute shaders) what
 * `disabled` names; then fills `want` with every feature of the table that `have` offers. */
void qk_vk_choose_features(qk_vk_feature_chain *have, uint32_t *subgroup_ops, unsigned disabled,
                           qk_vk_feature_chain *want);

/* The features a device created with `want` has, as a set for qk_vk_spirv_lacks. coopmat: the
 * cooperative-matrix extension is enabled. */
unsigned qk_vk_enabled_features(const qk_vk_feature_chain *want, uint32_t subgroup_ops, int coopmat);

/* NULL if a device with `enabled` features can run this SPIR-V module, else what it lacks, in
 * Vulkan's names: "no shaderFloat64" (written to buf, n bytes, or static). */
const char *qk_vk_spirv_lacks(unsigned enabled, const uint32_t *code, size_t bytes, char *buf, size_t n);

/* A copy of the module (malloc'd, *out_bytes long) whose entry points keep 32-bit denormals:
 * the DenormPreserve capability and an OpExecutionMode DenormPreserve 32 for each entry point
 * (SPIR-V 1.4+ core, float controls). Without it a driver may flush denormal operands and
 * results to zero (NVIDIA's does), where the CPU reference keeps them. NULL if the module is
 * not valid SPIR-V 1.4+ or memory runs out. */
uint32_t *qk_vk_spirv_preserve_denorms(const uint32_t *code, size_t bytes, size_t *out_bytes);

#endif
