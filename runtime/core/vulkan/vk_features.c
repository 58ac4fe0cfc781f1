/* Features and the shaders' needs (vk_features.h): one table, from the SPIR-V capability a
 * shader declares to the device feature it needs, drives the test hook, the features enabled at
 * device creation and the answer to "can this device run that shader". */
#include "vk_features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SPIR-V capabilities (the SPIR-V specification's numbers). */
enum {
    CAP_MATRIX = 0,
    CAP_SHADER = 1,
    CAP_FLOAT16 = 9,
    CAP_FLOAT64 = 10,
    CAP_INT64 = 11,
    CAP_INT64_ATOMICS = 12,
    CAP_INT16 = 22,
    CAP_INT8 = 39,
    CAP_GROUP_NON_UNIFORM = 61, /* ..Vote 62, Arithmetic 63, Ballot 64, Shuffle 65, ShuffleRelative 66,
                                   Clustered 67, Quad 68 */
    CAP_STORAGE16 = 4433,
    CAP_UNIFORM16 = 4434,
    CAP_PUSH16 = 4435,
    CAP_STORAGE8 = 4448,
    CAP_UNIFORM8 = 4449,
    CAP_PUSH8 = 4450,
    CAP_MEMORY_MODEL = 5345,
    CAP_MEMORY_MODEL_DEVICE = 5346,
    CAP_COOPMAT_NV = 5357,
    CAP_DOT_INPUT_ALL = 6016, /* ..Input4x8Bit 6017, Input4x8BitPacked 6018, DotProduct 6019 */
};

#define FEATURE(member) offsetof(qk_vk_feature_chain, member)
#define NO_STRUCT       ((size_t)0) /* not a VkBool32 of the chain: a subgroup operation, or special */

typedef struct feature {
    const char *hook; /* its name in QK_VK_DISABLE */
    const char *name; /* Vulkan's, for messages */
    size_t at;        /* its VkBool32 in qk_vk_feature_chain, or NO_STRUCT */
    uint32_t subgroup_op;
    uint32_t cap_lo, cap_hi; /* the SPIR-V capabilities [lo, hi] that need it */
} feature;

static const feature features[] = {
    {"float64", "shaderFloat64", FEATURE(f2.features.shaderFloat64), 0, CAP_FLOAT64, CAP_FLOAT64},
    {"int64", "shaderInt64", FEATURE(f2.features.shaderInt64), 0, CAP_INT64, CAP_INT64},
    {"int16", "shaderInt16", FEATURE(f2.features.shaderInt16), 0, CAP_INT16, CAP_INT16},
    {"float16", "shaderFloat16", FEATURE(f12.shaderFloat16), 0, CAP_FLOAT16, CAP_FLOAT16},
    {"int8", "shaderInt8", FEATURE(f12.shaderInt8), 0, CAP_INT8, CAP_INT8},
    {"int64_atomics", "shaderBufferInt64Atomics", FEATURE(f12.shaderBufferInt64Atomics), 0, CAP_INT64_ATOMICS,
     CAP_INT64_ATOMICS},
    {"storage16", "storageBuffer16BitAccess", FEATURE(f11.storageBuffer16BitAccess), 0, CAP_STORAGE16, CAP_STORAGE16},
    {"uniform16", "uniformAndStorageBuffer16BitAccess", FEATURE(f11.uniformAndStorageBuffer16BitAccess), 0,
     CAP_UNIFORM16, CAP_UNIFORM16},
    {"push16", "storagePushConstant16", FEATURE(f11.storagePushConstant16), 0, CAP_PUSH16, CAP_PUSH16},
    {"storage8", "storageBuffer8BitAccess", FEATURE(f12.storageBuffer8BitAccess), 0, CAP_STORAGE8, CAP_STORAGE8},
    {"uniform8", "uniformAndStorageBuffer8BitAccess", FEATURE(f12.uniformAndStorageBuffer8BitAccess), 0, CAP_UNIFORM8,
     CAP_UNIFORM8},
    {"push8", "storagePushConstant8", FEATURE(f12.storagePushConstant8), 0, CAP_PUSH8, CAP_PUSH8},
    {"memory_model", "vulkanMemoryModel", FEATURE(f12.vulkanMemoryModel), 0, CAP_MEMORY_MODEL, CAP_MEMORY_MODEL},
    {"memory_model_device", "vulkanMemoryModelDeviceScope", FEATURE(f12.vulkanMemoryModelDeviceScope), 0,
     CAP_MEMORY_MODEL_DEVICE, CAP_MEMORY_MODEL_DEVICE},
    /* enabled with its extension by qk_vk_open where its 16x16x16 f16 shape is offered */
    {"coopmat", "VK_NV_cooperative_matrix", NO_STRUCT, 0, CAP_COOPMAT_NV, CAP_COOPMAT_NV},
    /* qkern does not enable VK_KHR_shader_integer_dot_product: a shader using it would not run */
    {"integer_dot", "shaderIntegerDotProduct (not enabled by qkern)", NO_STRUCT, 0, CAP_DOT_INPUT_ALL,
     CAP_DOT_INPUT_ALL + 3},
    {"subgroup_basic", "subgroup operations in compute shaders", NO_STRUCT, VK_SUBGROUP_FEATURE_BASIC_BIT,
     CAP_GROUP_NON_UNIFORM, CAP_GROUP_NON_UNIFORM},
    {"subgroup_vote", "subgroup vote operations", NO_STRUCT, VK_SUBGROUP_FEATURE_VOTE_BIT, CAP_GROUP_NON_UNIFORM + 1,
     CAP_GROUP_NON_UNIFORM + 1},
    {"subgroup_arithmetic", "subgroup arithmetic operations", NO_STRUCT, VK_SUBGROUP_FEATURE_ARITHMETIC_BIT,
     CAP_GROUP_NON_UNIFORM + 2, CAP_GROUP_NON_UNIFORM + 2},
    {"subgroup_ballot", "subgroup ballot operations", NO_STRUCT, VK_SUBGROUP_FEATURE_BALLOT_BIT,
     CAP_GROUP_NON_UNIFORM + 3, CAP_GROUP_NON_UNIFORM + 3},
    {"subgroup_shuffle", "subgroup shuffle operations", NO_STRUCT, VK_SUBGROUP_FEATURE_SHUFFLE_BIT,
     CAP_GROUP_NON_UNIFORM + 4, CAP_GROUP_NON_UNIFORM + 4},
    {"subgroup_shuffle_relative", "subgroup relative shuffle operations", NO_STRUCT,
     VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, CAP_GROUP_NON_UNIFORM + 5, CAP_GROUP_NON_UNIFORM + 5},
    {"subgroup_clustered", "subgroup clustered operations", NO_STRUCT, VK_SUBGROUP_FEATURE_CLUSTERED_BIT,
     CAP_GROUP_NON_UNIFORM + 6, CAP_GROUP_NON_UNIFORM + 6},
    {"subgroup_quad", "subgroup quad operations", NO_STRUCT, VK_SUBGROUP_FEATURE_QUAD_BIT, CAP_GROUP_NON_UNIFORM + 7,
     CAP_GROUP_NON_UNIFORM + 7},
};
#define N_FEATURES ((int)(sizeof features / sizeof features[0]))
_Static_assert(N_FEATURES <= 32, "the feature set is an unsigned bit set");

static int index_of(const char *hook) {
    for (int i = 0; i < N_FEATURES; i++)
        if (!strcmp(features[i].hook, hook)) return i;
    return -1;
}

static VkBool32 *member(qk_vk_feature_chain *c, const feature *f) { return (VkBool32 *)((char *)c + f->at); }

void qk_vk_chain_init(qk_vk_feature_chain *c, int coop) {
    memset(c, 0, sizeof *c);
    c->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    c->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    c->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    c->coop.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV;
    c->f2.pNext = &c->f11;
    c->f11.pNext = &c->f12;
    if (coop) c->f12.pNext = &c->coop;
}

/* The next name of QK_VK_DISABLE's comma- or space-separated list into name (empty when too
 * long); 0 at the end. */
static int next_name(const char **env, char name[48]) {
    *env += strspn(*env, ", ");
    if (!**env) return 0;
    size_t len = strcspn(*env, ", ");
    name[0] = 0;
    if (len < 48) {
        memcpy(name, *env, len);
        name[len] = 0;
    }
    *env += len;
    return 1;
}

unsigned qk_vk_disabled_features(void) {
    const char *env = getenv("QK_VK_DISABLE");
    unsigned set = 0;
    char name[48];
    while (env && next_name(&env, name)) {
        int i = index_of(name);
        if (i >= 0) set |= 1u << i;
        if (!strcmp(name, "all")) set = ~0u;
        if (!strcmp(name, "subgroup"))
            for (int k = 0; k < N_FEATURES; k++) set |= features[k].subgroup_op ? 1u << k : 0;
    }
    return set;
}

int qk_vk_disables(const char *what) {
    const char *env = getenv("QK_VK_DISABLE");
    char name[48];
    while (env && next_name(&env, name))
        if (!strcmp(name, what) || !strcmp(name, "all")) return 1;
    return 0;
}

void qk_vk_choose_features(qk_vk_feature_chain *have, uint32_t *subgroup_ops, unsigned disabled,
                           qk_vk_feature_chain *want) {
    for (int i = 0; i < N_FEATURES; i++) {
        const feature *f = &features[i];
        if (disabled & (1u << i)) {
            if (f->at != NO_STRUCT) *member(have, f) = VK_FALSE;
            *subgroup_ops &= ~f->subgroup_op;
            if (f->cap_lo == CAP_COOPMAT_NV) have->coop.cooperativeMatrix = VK_FALSE;
        }
        if (f->at != NO_STRUCT) *member(want, f) = *member(have, f);
    }
}

unsigned qk_vk_enabled_features(const qk_vk_feature_chain *want, uint32_t subgroup_ops, int coopmat) {
    unsigned set = 0;
    for (int i = 0; i < N_FEATURES; i++) {
        const feature *f = &features[i];
        int on = f->at != NO_STRUCT ? *member((qk_vk_feature_chain *)want, f) != VK_FALSE
                 : f->subgroup_op   ? (subgroup_ops & f->subgroup_op) != 0
                                    : f->cap_lo == CAP_COOPMAT_NV && coopmat;
        if (on) set |= 1u << i;
    }
    return set;
}

enum {
    OP_CAPABILITY = 17,
    OP_EXTENSION = 10,
    OP_EXT_INST_IMPORT = 11,
    OP_MEMORY_MODEL = 14,
    OP_ENTRY_POINT = 15,
    OP_EXECUTION_MODE = 16,
    OP_EXECUTION_MODE_ID = 331,
    CAP_DENORM_PRESERVE = 4464,
    MODE_DENORM_PRESERVE = 4459,
};

const char *qk_vk_spirv_lacks(unsigned enabled, const uint32_t *code, size_t bytes, char *buf, size_t n) {
    const size_t words = bytes / 4;
    if (words < 5 || code[0] != 0x07230203u) return "no valid SPIR-V module";
    /* the capabilities open a module, after its 5-word header; extensions and imports follow */
    for (size_t at = 5; at < words;) {
        const uint32_t count = code[at] >> 16, op = code[at] & 0xffffu;
        if (count == 0 || at + count > words) return "no valid SPIR-V module";
        if (op == OP_CAPABILITY && count == 2) {
            const uint32_t cap = code[at + 1];
            int known = cap == CAP_SHADER || cap == CAP_MATRIX;
            for (int i = 0; i < N_FEATURES && !known; i++) {
                if (cap < features[i].cap_lo || cap > features[i].cap_hi) continue;
                if (!(enabled & (1u << i))) {
                    snprintf(buf, n, "no %s", features[i].name);
                    return buf;
                }
                known = 1;
            }
            if (!known) { /* a capability this table does not map: refuse rather than fail in the driver */
                snprintf(buf, n, "its shader needs SPIR-V capability %u, which qkern does not check for",
                         (unsigned)cap);
                return buf;
            }
        } else if (op != OP_EXTENSION && op != OP_EXT_INST_IMPORT) {
            break;
        }
        at += count;
    }
    return NULL;
}

uint32_t *qk_vk_spirv_preserve_denorms(const uint32_t *code, size_t bytes, size_t *out_bytes) {
    const size_t words = bytes / 4;
    if (words < 5 || code[0] != 0x07230203u || code[1] < 0x00010400u) return NULL;
    /* the entry points, and where the execution modes end (the debug section follows them) */
    size_t entries = 0, modes_end = 0;
    for (size_t at = 5; at < words;) {
        const uint32_t count = code[at] >> 16, op = code[at] & 0xffffu;
        if (count == 0 || at + count > words) return NULL;
        if (op == OP_ENTRY_POINT) entries++;
        if (op == OP_ENTRY_POINT || op == OP_EXECUTION_MODE || op == OP_EXECUTION_MODE_ID)
            modes_end = at + count;
        else if (modes_end)
            break;
        at += count;
    }
    if (!entries) return NULL;
    const size_t n = words + 2 + 4 * entries;
    uint32_t *out = malloc(n * sizeof *out);
    if (!out) return NULL;
    memcpy(out, code, 5 * sizeof *out);
    size_t w = 5;
    out[w++] = 2u << 16 | OP_CAPABILITY; /* capabilities may come in any order: first */
    out[w++] = CAP_DENORM_PRESERVE;
    memcpy(out + w, code + 5, (modes_end - 5) * sizeof *out);
    w += modes_end - 5;
    for (size_t at = 5; at < modes_end; at += code[at] >> 16)
        if ((code[at] & 0xffffu) == OP_ENTRY_POINT) {
            out[w++] = 4u << 16 | OP_EXECUTION_MODE;
            out[w++] = code[at + 2]; /* the entry point's id */
            out[w++] = MODE_DENORM_PRESERVE;
            out[w++] = 32; /* bit width */
        }
    memcpy(out + w, code + modes_end, (words - modes_end) * sizeof *out);
    *out_bytes = n * sizeof *out;
    return out;
}
