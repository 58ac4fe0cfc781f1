/* The Vulkan device layer: the loader and one instance per process, the list of compute
 * devices (discrete GPUs first), and per context a device with its compute queue, memory,
 * pipelines built from the embedded SPIR-V, and batches of dispatches (vk_internal.h). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iq_grid.h"
#include "qk_shaders.h"
#include "qk_tables.h"
#include "vk_features.h"
#include "vk_internal.h"
#include "vk_loader.h"
#include "vk_pipeline_cache.h"

static qk_vk_api vk;

/* Turns a failed Vulkan call into a status, near where it happened. */
#define QK_CHECK_VK(ctx, call)                                                                                         \
    do {                                                                                                               \
        VkResult r_ = (call);                                                                                          \
        if (r_ != VK_SUCCESS) return vk_fail((ctx), r_, #call);                                                        \
    } while (0)

static const char *vk_result_name(VkResult r) {
    switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_UNKNOWN: return "VK_ERROR_UNKNOWN";
    default: return "VkResult";
    }
}

static qk_status vk_fail(qk_context *ctx, VkResult r, const char *what) {
    qk_status st =
        r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? QK_ERR_OUT_OF_MEMORY : QK_ERR_BACKEND;
    const char *paren = strchr(what, '(');
    return qk_fail(ctx, st, "vulkan: %.*s: %s (%d)", paren ? (int)(paren - what) : (int)strlen(what), what,
                   vk_result_name(r), (int)r);
}

/* ---- the process's instance and devices ---------------------------------------------------- */

#define MAX_DEVICES 16

typedef struct vk_physical {
    VkPhysicalDevice pd;
    VkPhysicalDeviceProperties props;
    uint32_t queue_family;
    int timestamps; /* the queue family's timestamps are valid */
    uint64_t memory_bytes;
} vk_physical;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static VkInstance instance;
static VkDebugUtilsMessengerEXT messenger;
static vk_physical devices[MAX_DEVICES];
static int n_devices;
static pthread_mutex_t validation_lock = PTHREAD_MUTEX_INITIALIZER;
static int validation_errors;
static char validation_first[512];

/* The validation layers' reports (enabled by QK_VK_VALIDATION=1, as the tests do): errors are
 * counted and the first kept for qk_vk_validation_errors; the library prints nothing. */
static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                    VkDebugUtilsMessageTypeFlagsEXT types,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)types, (void)user;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        pthread_mutex_lock(&validation_lock);
        if (!validation_errors++) snprintf(validation_first, sizeof validation_first, "%s", data->pMessage);
        pthread_mutex_unlock(&validation_lock);
    }
    return VK_FALSE;
}

int qk_vk_validation_errors(char *first, size_t n) {
    pthread_mutex_lock(&validation_lock);
    int count = validation_errors;
    if (first && n) snprintf(first, n, "%s", validation_first);
    pthread_mutex_unlock(&validation_lock);
    return count;
}

static int has_layer(const char *name) {
    uint32_t n = 0;
    if (vk.vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || !n) return 0;
    VkLayerProperties *p = calloc(n, sizeof *p);
    int found = 0;
    if (p && vk.vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(p[i].layerName, name);
    free(p);
    return found;
}

static int device_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static void load_instance_funcs(void) {
#define QK_VK_LOAD(name) vk.name = (PFN_##name)vk.vkGetInstanceProcAddr(instance, #name);
    QK_VK_INSTANCE_FUNCS(QK_VK_LOAD)
    QK_VK_INSTANCE_OPT_FUNCS(QK_VK_LOAD)
    QK_VK_DEVICE_FUNCS(QK_VK_LOAD)
#undef QK_VK_LOAD
}

static int instance_funcs_complete(void) {
    int ok = 1;
#define QK_VK_HAS(name) ok &= vk.name != NULL;
    QK_VK_INSTANCE_FUNCS(QK_VK_HAS)
    QK_VK_DEVICE_FUNCS(QK_VK_HAS)
#undef QK_VK_HAS
    return ok;
}

static void list_devices(void) {
    uint32_t n = 0;
    if (vk.vkEnumeratePhysicalDevices(instance, &n, NULL) != VK_SUCCESS || !n) return;
    VkPhysicalDevice pds[MAX_DEVICES];
    if (n > MAX_DEVICES) n = MAX_DEVICES;
    if (vk.vkEnumeratePhysicalDevices(instance, &n, pds) < 0) return;
    for (uint32_t i = 0; i < n; i++) {
        vk_physical d;
        memset(&d, 0, sizeof d);
        d.pd = pds[i];
        vk.vkGetPhysicalDeviceProperties(pds[i], &d.props);
        if (d.props.apiVersion < VK_API_VERSION_1_2) continue;
        uint32_t nq = 0;
        vk.vkGetPhysicalDeviceQueueFamilyProperties(pds[i], &nq, NULL);
        VkQueueFamilyProperties qf[32];
        if (nq > 32) nq = 32;
        vk.vkGetPhysicalDeviceQueueFamilyProperties(pds[i], &nq, qf);
        /* a compute queue; one without graphics first (a dedicated compute engine) */
        int best = -1;
        for (uint32_t q = 0; q < nq; q++)
            if ((qf[q].queueFlags & VK_QUEUE_COMPUTE_BIT) &&
                (best < 0 || ((qf[best].queueFlags & VK_QUEUE_GRAPHICS_BIT) &&
                              !(qf[q].queueFlags & VK_QUEUE_GRAPHICS_BIT) && qf[q].timestampValidBits)))
                best = (int)q;
        if (best < 0) continue;
        d.queue_family = (uint32_t)best;
        d.timestamps = qf[best].timestampValidBits != 0;
        VkPhysicalDeviceMemoryProperties mp;
        vk.vkGetPhysicalDeviceMemoryProperties(pds[i], &mp);
        for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
            if (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT && mp.memoryHeaps[h].size > d.memory_bytes)
                d.memory_bytes = mp.memoryHeaps[h].size;
        /* stable order: by kind (discrete first), then as the loader lists them */
        int at = n_devices;
        while (at > 0 && device_rank(devices[at - 1].props.deviceType) > device_rank(d.props.deviceType)) {
            devices[at] = devices[at - 1];
            at--;
        }
        devices[at] = d;
        n_devices++;
    }
}

static void init_vulkan(void) {
    void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    vk.vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
    if (!vk.vkGetInstanceProcAddr) return;
#define QK_VK_LOAD(name) vk.name = (PFN_##name)vk.vkGetInstanceProcAddr(NULL, #name);
    QK_VK_GLOBAL_FUNCS(QK_VK_LOAD)
#undef QK_VK_LOAD
    if (!vk.vkCreateInstance || !vk.vkEnumerateInstanceLayerProperties || !vk.vkEnumerateInstanceExtensionProperties)
        return;
    uint32_t version = VK_API_VERSION_1_0;
    if (vk.vkEnumerateInstanceVersion) vk.vkEnumerateInstanceVersion(&version);
    if (version < VK_API_VERSION_1_2) return;

    const char *validation = getenv("QK_VK_VALIDATION");
    int want_validation = validation && *validation == '1' && has_layer("VK_LAYER_KHRONOS_validation");
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "qkern",
                             .pEngineName = "qkern",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                .pApplicationInfo = &app,
                                .enabledLayerCount = want_validation ? 1 : 0,
                                .ppEnabledLayerNames = layers,
                                .enabledExtensionCount = want_validation ? 1 : 0,
                                .ppEnabledExtensionNames = exts};
    if (vk.vkCreateInstance(&ici, NULL, &instance) != VK_SUCCESS) {
        instance = VK_NULL_HANDLE;
        return;
    }
    load_instance_funcs();
    if (!instance_funcs_complete()) return;
    if (want_validation && vk.vkCreateDebugUtilsMessengerEXT) {
        VkDebugUtilsMessengerCreateInfoEXT mci = {.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
                                                  .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                                                                     VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
                                                  .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                                                                 VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
                                                  .pfnUserCallback = on_validation};
        vk.vkCreateDebugUtilsMessengerEXT(instance, &mci, NULL, &messenger);
    }
    list_devices();
}

int qk_vk_device_count(void) {
    pthread_once(&init_once, init_vulkan);
    return n_devices;
}

int qk_vk_is_software(int index) {
    return index >= 0 && index < qk_vk_device_count() && devices[index].props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

qk_status qk_vk_device_info(int index, qk_device_info *info) {
    if (index < 0 || index >= qk_vk_device_count())
        return qk_fail(NULL, QK_ERR_NO_DEVICE, "vulkan:%d does not exist", index);
    const vk_physical *d = &devices[index];
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "vulkan:%d", index);
    snprintf(info->name, sizeof info->name, "%.100s (Vulkan %u.%u)", d->props.deviceName,
             VK_API_VERSION_MAJOR(d->props.apiVersion), VK_API_VERSION_MINOR(d->props.apiVersion));
    info->kind = QK_DEVICE_VULKAN;
    info->memory_bytes = d->memory_bytes;
    info->compute_units = 0; /* Vulkan does not say */
    return QK_OK;
}

/* ---- per-context state -------------------------------------------------------------------- */

/* A device allocation and its range in the context's private address space. */
typedef struct vk_alloc {
    VkBuffer buffer;
    VkDeviceMemory memory;
    uint64_t bytes;
    uintptr_t va;
    struct vk_alloc *next;
} vk_alloc;

typedef struct vk_pipeline {
    const qk_shader *shader;
    VkPipeline pipeline;
    struct vk_pipeline *next;
} vk_pipeline;

#define STAGING_BYTES ((uint64_t)64 << 20)
#define MAX_SETS      4096 /* dispatches per batch */
#define N_TIMESTAMPS  2

struct qk_vk_state {
    const vk_physical *phys;
    qk_vk_features feat;
    VkDevice device;
    VkQueue queue;
    uint32_t device_local_type, host_type; /* memory type indices */
    uint64_t min_align;                    /* minStorageBufferOffsetAlignment */
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkPipelineCache cache;
    char cache_path[4096]; /* the cache's file (vk_pipeline_cache.h), "" for none */
    int cache_grew;        /* a pipeline was created since the file was read: written back at close */
    VkDescriptorPool desc_pool;
    VkQueryPool queries;
    int recording, sets_used;
    int capturing; /* qk_vk_capture_begin: batches of operations join one submission */
    vk_alloc *allocs;
    uintptr_t next_va;
    vk_pipeline *pipelines;
    vk_alloc *tables;  /* the format tables and lattice maps: binding 0 of every shader */
    vk_alloc *dummy;   /* bound where a dispatch leaves a binding unused */
    vk_alloc *staging; /* host-visible, for write/read */
    void *staging_map;
    pthread_mutex_t lock;
};

const qk_vk_features *qk_vk_features_of(const qk_vk_state *s) { return &s->feat; }

uint64_t qk_vk_binding_limit(const qk_vk_state *s) {
    uint64_t lim = s->feat.max_storage_range;
    if (lim > ((uint64_t)1 << 31)) lim = (uint64_t)1 << 31;
    return lim - 256;
}

static int find_memory_type(const vk_physical *d, uint32_t bits, VkMemoryPropertyFlags want) {
    VkPhysicalDeviceMemoryProperties mp;
    vk.vkGetPhysicalDeviceMemoryProperties(d->pd, &mp);
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

static qk_status make_buffer(qk_context *ctx, qk_vk_state *s, uint64_t bytes, int host_visible, vk_alloc **out) {
    *out = NULL;
    vk_alloc *a = calloc(1, sizeof *a);
    if (!a) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    a->bytes = bytes;
    /* whole words: shaders see memory as 32-bit words, and a device may drop an access to a
     * word that the buffer covers only in part */
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = bytes ? (bytes + 3) & ~(uint64_t)3 : 4,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vk.vkCreateBuffer(s->device, &bci, NULL, &a->buffer);
    if (r != VK_SUCCESS) {
        free(a);
        return vk_fail(ctx, r, "vkCreateBuffer()");
    }
    VkMemoryRequirements req;
    vk.vkGetBufferMemoryRequirements(s->device, a->buffer, &req);
    int type =
        find_memory_type(s->phys, req.memoryTypeBits,
                         host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                      : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (type < 0 && !host_visible) type = find_memory_type(s->phys, req.memoryTypeBits, 0);
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)(type < 0 ? 0 : type)};
    r = type < 0 ? VK_ERROR_FEATURE_NOT_PRESENT : vk.vkAllocateMemory(s->device, &mai, NULL, &a->memory);
    if (r == VK_SUCCESS) r = vk.vkBindBufferMemory(s->device, a->buffer, a->memory, 0);
    if (r != VK_SUCCESS) {
        if (a->memory) vk.vkFreeMemory(s->device, a->memory, NULL);
        vk.vkDestroyBuffer(s->device, a->buffer, NULL);
        free(a);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: cannot allocate %llu bytes of %s memory (%s)",
                           (unsigned long long)bytes, host_visible ? "host-visible" : "device", vk_result_name(r));
        return vk_fail(ctx, r, "vkAllocateMemory()");
    }
    pthread_mutex_lock(&s->lock);
    a->va = s->next_va;
    /* ranges 64 KiB apart, so that an address one past a buffer's end is no other buffer's */
    s->next_va += ((bytes + 0xffff) & ~(uint64_t)0xffff) + 0x10000;
    a->next = s->allocs;
    s->allocs = a;
    pthread_mutex_unlock(&s->lock);
    *out = a;
    return QK_OK;
}

static void drop_buffer(qk_vk_state *s, vk_alloc *a) {
    if (!a) return;
    pthread_mutex_lock(&s->lock);
    for (vk_alloc **p = &s->allocs; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    vk.vkDestroyBuffer(s->device, a->buffer, NULL);
    vk.vkFreeMemory(s->device, a->memory, NULL);
    free(a);
}

static vk_alloc *find_alloc(const qk_vk_state *s, uintptr_t addr) {
    for (vk_alloc *a = s->allocs; a; a = a->next)
        if (addr >= a->va && addr <= a->va + a->bytes) return a;
    return NULL;
}

int qk_vk_locate(const qk_vk_state *s, const void *addr, void **vkbuffer, uint64_t *offset, uint64_t *avail) {
    qk_vk_state *m = (qk_vk_state *)s;
    pthread_mutex_lock(&m->lock);
    vk_alloc *a = find_alloc(s, (uintptr_t)addr);
    pthread_mutex_unlock(&m->lock);
    if (!a) return 0;
    *vkbuffer = (void *)a->buffer;
    *offset = (uintptr_t)addr - a->va;
    *avail = a->bytes - *offset;
    return 1;
}

qk_status qk_vk_alloc(qk_context *ctx, qk_vk_state *s, size_t bytes, void **mem) {
    vk_alloc *a;
    qk_status st = make_buffer(ctx, s, bytes, 0, &a);
    *mem = a;
    return st;
}

void qk_vk_free(qk_vk_state *s, void *mem) { drop_buffer(s, mem); }

void *qk_vk_address(void *mem, size_t offset) { return (void *)(((vk_alloc *)mem)->va + offset); }

/* ---- command recording ---------------------------------------------------------------------- */

static void barrier(qk_vk_state *s) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vk.vkCmdPipelineBarrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL,
                            0, NULL);
}

static qk_status open_batch(qk_context *ctx, qk_vk_state *s) {
    QK_CHECK_VK(ctx, vk.vkResetCommandBuffer(s->cmd, 0));
    QK_CHECK_VK(ctx, vk.vkResetDescriptorPool(s->device, s->desc_pool, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    QK_CHECK_VK(ctx, vk.vkBeginCommandBuffer(s->cmd, &bi));
    s->recording = 1;
    s->sets_used = 0;
    if (s->queries) {
        vk.vkCmdResetQueryPool(s->cmd, s->queries, 0, N_TIMESTAMPS);
        vk.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s->queries, 0);
    }
    return QK_OK;
}

qk_status qk_vk_begin(qk_context *ctx, qk_vk_state *s) {
    if (s->capturing) return QK_OK;
    if (s->recording) return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: a batch is already open");
    return open_batch(ctx, s);
}

static qk_status submit_batch(qk_context *ctx, qk_vk_state *s, double *elapsed_ns);

qk_status qk_vk_submit(qk_context *ctx, qk_vk_state *s, double *elapsed_ns) {
    if (elapsed_ns) *elapsed_ns = 0;
    if (s->capturing) return QK_OK;
    return submit_batch(ctx, s, elapsed_ns);
}

qk_status qk_vk_capture_begin(qk_context *ctx, qk_vk_state *s) {
    if (s->recording) return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: a batch is already open");
    qk_status st = open_batch(ctx, s);
    s->capturing = st == QK_OK;
    return st;
}

qk_status qk_vk_capture_end(qk_context *ctx, qk_vk_state *s, double *elapsed_ns) {
    s->capturing = 0;
    return submit_batch(ctx, s, elapsed_ns);
}

static qk_status submit_batch(qk_context *ctx, qk_vk_state *s, double *elapsed_ns) {
    if (elapsed_ns) *elapsed_ns = 0;
    if (!s->recording) return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: no batch is open");
    s->recording = 0;
    if (s->queries) vk.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->queries, 1);
    QK_CHECK_VK(ctx, vk.vkEndCommandBuffer(s->cmd));
    QK_CHECK_VK(ctx, vk.vkResetFences(s->device, 1, &s->fence));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cmd};
    QK_CHECK_VK(ctx, vk.vkQueueSubmit(s->queue, 1, &si, s->fence));
    QK_CHECK_VK(ctx, vk.vkWaitForFences(s->device, 1, &s->fence, VK_TRUE, UINT64_MAX));
    if (s->queries && elapsed_ns) {
        uint64_t t[N_TIMESTAMPS];
        QK_CHECK_VK(ctx, vk.vkGetQueryPoolResults(s->device, s->queries, 0, N_TIMESTAMPS, sizeof t, t, sizeof t[0],
                                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
        *elapsed_ns = (double)(t[1] - t[0]) * s->feat.timestamp_ns;
    }
    return QK_OK;
}

static const qk_shader *find_shader(const char *name) {
    for (int i = 0; i < qk_shader_count; i++)
        if (!strcmp(qk_shaders[i].name, name)) return &qk_shaders[i];
    return NULL;
}

int qk_vk_has_shader(const char *name) { return find_shader(name) != NULL; }

const char *qk_vk_variant(char *buf, const char *op, qk_type type) {
    const char *t = qk_type_name(type);
    snprintf(buf, QK_VK_NAME_LEN, "%s/%s", op, t ? t : "?");
    return buf;
}

/* The diagnostic hook QK_VK_SHADER_FILE=NAME=PATH: shader NAME's module read from the SPIR-V
 * file PATH instead of the embedded one (to find which form of a shader a driver refuses or
 * computes differently, scripts/vk_shader_variants.sh). NULL when not set for NAME. */
static uint32_t *module_override(const char *name, size_t *bytes) {
    const char *env = getenv("QK_VK_SHADER_FILE");
    const size_t n = strlen(name);
    if (!env || strncmp(env, name, n) || env[n] != '=') return NULL;
    FILE *f = fopen(env + n + 1, "rb");
    uint32_t *code = NULL;
    long len = -1;
    if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) > 20 && len % 4 == 0 && !fseek(f, 0, SEEK_SET) &&
        (code = malloc((size_t)len)) && fread(code, 1, (size_t)len, f) == (size_t)len)
        *bytes = (size_t)len;
    else
        free(code), code = NULL;
    if (f) fclose(f);
    return code;
}

static qk_status get_pipeline(qk_context *ctx, qk_vk_state *s, const char *name, VkPipeline *out) {
    for (vk_pipeline *p = s->pipelines; p; p = p->next)
        if (!strcmp(p->shader->name, name)) {
            *out = p->pipeline;
            return QK_OK;
        }
    const qk_shader *sh = find_shader(name);
    if (!sh) return qk_fail(ctx, QK_ERR_UNSUPPORTED, "vulkan: this build has no shader '%s'", name);
    char buf[160];
    const char *lacks = qk_vk_spirv_lacks(s->feat.enabled, sh->code, sh->bytes, buf, sizeof buf);
    if (lacks) return qk_fail(ctx, QK_ERR_UNSUPPORTED, "vulkan: shader '%s' cannot run here: %s", name, lacks);
    VkShaderModuleCreateInfo smi = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = sh->bytes, .pCode = sh->code};
    size_t other_bytes = 0;
    uint32_t *other = module_override(name, &other_bytes);
    if (other) smi.pCode = other, smi.codeSize = other_bytes;
    uint32_t *kept = NULL; /* the module keeping denormals, where the device can */
    if (s->feat.denorm_preserve32 && !(kept = qk_vk_spirv_preserve_denorms(smi.pCode, smi.codeSize, &smi.codeSize))) {
        free(other);
        return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: shader '%s': its SPIR-V cannot keep denormals", name);
    }
    if (kept) smi.pCode = kept;
    VkShaderModule module;
    VkResult mr = vk.vkCreateShaderModule(s->device, &smi, NULL, &module);
    free(kept);
    free(other);
    if (mr != VK_SUCCESS) return vk_fail(ctx, mr, "vkCreateShaderModule()");
    VkComputePipelineCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                       .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                 .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                 .module = module,
                                                 .pName = "main"},
                                       .layout = s->pipe_layout};
    VkPipeline pipe;
    VkResult r = vk.vkCreateComputePipelines(s->device, s->cache, 1, &pci, NULL, &pipe);
    vk.vkDestroyShaderModule(s->device, module, NULL);
    if (r != VK_SUCCESS) { /* the driver's compiler refused it: name the shader */
        char what[QK_VK_NAME_LEN + 48];
        snprintf(what, sizeof what, "shader '%s': vkCreateComputePipelines()", name);
        return vk_fail(ctx, r, what);
    }
    vk_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        vk.vkDestroyPipeline(s->device, pipe, NULL);
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    }
    p->shader = sh;
    p->pipeline = pipe;
    s->cache_grew = 1;
    p->next = s->pipelines;
    s->pipelines = p;
    *out = pipe;
    return QK_OK;
}

qk_status qk_vk_dispatch(qk_context *ctx, qk_vk_state *s, const char *name, const qk_vk_arg *args, int n_args,
                         const void *params, size_t params_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
    if (!s->recording) return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: dispatch outside a batch");
    if (n_args >= QK_VK_MAX_BINDINGS || params_bytes > QK_VK_PARAM_BYTES)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: %s: %d operands, %zu parameter bytes", name, n_args,
                       params_bytes);
    if (s->sets_used >= MAX_SETS)
        return qk_fail(ctx, QK_ERR_BACKEND, "vulkan: more than %d dispatches in one batch", MAX_SETS);
    VkPipeline pipe = VK_NULL_HANDLE;
    qk_status st = get_pipeline(ctx, s, name, &pipe);
    if (st != QK_OK) return st;

    uint32_t push[QK_VK_MAX_BINDINGS + QK_VK_PARAM_BYTES / 4] = {0};
    VkDescriptorBufferInfo info[QK_VK_MAX_BINDINGS];
    info[0] = (VkDescriptorBufferInfo){s->tables->buffer, 0, VK_WHOLE_SIZE};
    for (int i = 1; i < QK_VK_MAX_BINDINGS; i++) {
        info[i] = (VkDescriptorBufferInfo){s->dummy->buffer, 0, VK_WHOLE_SIZE};
        if (i > n_args || !args[i - 1].addr) continue;
        void *buf;
        uint64_t off, avail;
        if (!qk_vk_locate(s, args[i - 1].addr, &buf, &off, &avail))
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: %s: operand %d is not memory of this context", name, i);
        uint64_t base = off - off % s->min_align, need = off - base + args[i - 1].bytes;
        if (args[i - 1].bytes > avail)
            return qk_fail(ctx, QK_ERR_BUFFER, "vulkan: %s: operand %d needs %llu bytes, its buffer has %llu", name, i,
                           (unsigned long long)args[i - 1].bytes, (unsigned long long)avail);
        if (need > s->feat.max_storage_range)
            return qk_fail(ctx, QK_ERR_BUFFER,
                           "vulkan: %s: operand %d spans %llu bytes, over the device's maxStorageBufferRange (%llu)",
                           name, i, (unsigned long long)need, (unsigned long long)s->feat.max_storage_range);
        uint64_t range = (need + 3) & ~(uint64_t)3; /* whole words: buffers are sized in words */
        info[i] = (VkDescriptorBufferInfo){(VkBuffer)buf, base, range};
        push[i] = (uint32_t)(off - base);
    }
    memcpy(push + QK_VK_MAX_BINDINGS, params, params_bytes);

    VkDescriptorSet set;
    VkDescriptorSetAllocateInfo dai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                       .descriptorPool = s->desc_pool,
                                       .descriptorSetCount = 1,
                                       .pSetLayouts = &s->set_layout};
    QK_CHECK_VK(ctx, vk.vkAllocateDescriptorSets(s->device, &dai, &set));
    s->sets_used++;
    VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                              .dstSet = set,
                              .dstBinding = 0,
                              .descriptorCount = QK_VK_MAX_BINDINGS,
                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                              .pBufferInfo = info};
    vk.vkUpdateDescriptorSets(s->device, 1, &w, 0, NULL);
    vk.vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vk.vkCmdBindDescriptorSets(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, s->pipe_layout, 0, 1, &set, 0, NULL);
    vk.vkCmdPushConstants(s->cmd, s->pipe_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, push);
    vk.vkCmdDispatch(s->cmd, gx, gy, gz);
    barrier(s);
    return QK_OK;
}

/* Host <-> device through the staging buffer, in pieces of its size. */
static qk_status copy_via_staging(qk_context *ctx, qk_vk_state *s, VkBuffer buf, size_t offset, void *host,
                                  size_t bytes, int to_device) {
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < STAGING_BYTES ? bytes - done : STAGING_BYTES;
        if (to_device) memcpy(s->staging_map, (const char *)host + done, n);
        qk_status st = qk_vk_begin(ctx, s);
        if (st != QK_OK) return st;
        VkBufferCopy c = {to_device ? 0 : offset + done, to_device ? offset + done : 0, n};
        vk.vkCmdCopyBuffer(s->cmd, to_device ? s->staging->buffer : buf, to_device ? buf : s->staging->buffer, 1, &c);
        barrier(s);
        if ((st = qk_vk_submit(ctx, s, NULL)) != QK_OK) return st; /* the batch is closed either way */
        if (!to_device) memcpy((char *)host + done, s->staging_map, n);
        done += n;
    }
    return QK_OK;
}

qk_status qk_vk_write(qk_context *ctx, qk_vk_state *s, void *mem, size_t offset, const void *src, size_t bytes) {
    return copy_via_staging(ctx, s, ((vk_alloc *)mem)->buffer, offset, (void *)src, bytes, 1);
}

qk_status qk_vk_read(qk_context *ctx, qk_vk_state *s, const void *mem, size_t offset, void *dst, size_t bytes) {
    return copy_via_staging(ctx, s, ((const vk_alloc *)mem)->buffer, offset, dst, bytes, 0);
}

qk_status qk_vk_read_at(qk_context *ctx, qk_vk_state *s, const void *addr, void *dst, size_t bytes) {
    void *buf;
    uint64_t off, avail;
    if (!qk_vk_locate(s, addr, &buf, &off, &avail) || bytes > avail)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: read: not memory of this context");
    return copy_via_staging(ctx, s, (VkBuffer)buf, off, dst, bytes, 0);
}

/* ---- open and close ------------------------------------------------------------------------- */

static int has_extension(const VkExtensionProperties *e, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name)) return 1;
    return 0;
}

/* The format tables, then the IQ lattice maps (layout: shaders/common.glsl). */
static qk_status upload_tables(qk_context *ctx, qk_vk_state *s) {
    size_t words = QK_TABLES_BLOB_WORDS + 8 * QK_IQ_GRID_COUNT;
    const qk_iq_grid *g[QK_IQ_GRID_COUNT];
    for (int id = 0; id < QK_IQ_GRID_COUNT; id++) {
        g[id] = qk_iq_grid_get((qk_iq_grid_id)id);
        if (!g[id]) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: cannot build the IQ lattice maps");
        words += ((size_t)g[id]->ngrid + 1) / 2 + (size_t)g[id]->map_size + (g[id]->neighbours_len + 1) / 2;
    }
    uint32_t *blob = calloc(words, 4);
    if (!blob) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    memcpy(blob, qk_tables_blob, sizeof qk_tables_blob);
    size_t at = QK_TABLES_BLOB_WORDS + 8 * QK_IQ_GRID_COUNT;
    for (int id = 0; id < QK_IQ_GRID_COUNT; id++) {
        uint32_t *h = blob + QK_TABLES_BLOB_WORDS + 8 * id;
        h[0] = (uint32_t)g[id]->ncoord, h[1] = (uint32_t)g[id]->bits, h[2] = (uint32_t)g[id]->ngrid;
        h[3] = (uint32_t)g[id]->nwant, h[4] = (uint32_t)g[id]->map_size;
        h[5] = (uint32_t)at;
        memcpy(blob + at, g[id]->codes, (size_t)g[id]->ngrid * 2);
        at += ((size_t)g[id]->ngrid + 1) / 2;
        h[6] = (uint32_t)at;
        memcpy(blob + at, g[id]->map, (size_t)g[id]->map_size * 4);
        at += (size_t)g[id]->map_size;
        h[7] = (uint32_t)at;
        memcpy(blob + at, g[id]->neighbours, g[id]->neighbours_len * 2);
        at += (g[id]->neighbours_len + 1) / 2;
    }
    qk_status st = make_buffer(ctx, s, words * 4, 0, &s->tables);
    if (st == QK_OK) st = qk_vk_write(ctx, s, s->tables, 0, blob, words * 4);
    free(blob);
    return st;
}

/* The driver's compiled pipelines back to the cache file, for the next process. */
static void save_pipeline_cache(qk_vk_state *s) {
    if (!s->cache_grew || !s->cache_path[0]) return;
    size_t n = 0;
    if (vk.vkGetPipelineCacheData(s->device, s->cache, &n, NULL) != VK_SUCCESS || !n) return;
    void *data = malloc(n);
    if (data && vk.vkGetPipelineCacheData(s->device, s->cache, &n, data) == VK_SUCCESS)
        qk_vk_pipeline_cache_write(s->cache_path, data, n);
    free(data);
}

void qk_vk_close(void *state) {
    qk_vk_state *s = state;
    if (!s) return;
    if (s->device) {
        vk.vkDeviceWaitIdle(s->device);
        while (s->pipelines) {
            vk_pipeline *p = s->pipelines;
            s->pipelines = p->next;
            vk.vkDestroyPipeline(s->device, p->pipeline, NULL);
            free(p);
        }
        if (s->staging_map) vk.vkUnmapMemory(s->device, s->staging->memory);
        while (s->allocs) drop_buffer(s, s->allocs);
        if (s->queries) vk.vkDestroyQueryPool(s->device, s->queries, NULL);
        if (s->desc_pool) vk.vkDestroyDescriptorPool(s->device, s->desc_pool, NULL);
        if (s->cache) {
            save_pipeline_cache(s);
            vk.vkDestroyPipelineCache(s->device, s->cache, NULL);
        }
        if (s->pipe_layout) vk.vkDestroyPipelineLayout(s->device, s->pipe_layout, NULL);
        if (s->set_layout) vk.vkDestroyDescriptorSetLayout(s->device, s->set_layout, NULL);
        if (s->fence) vk.vkDestroyFence(s->device, s->fence, NULL);
        if (s->cmd_pool) vk.vkDestroyCommandPool(s->device, s->cmd_pool, NULL);
        vk.vkDestroyDevice(s->device, NULL);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Reads what the device offers, less what the test hook QK_VK_DISABLE hides (vk_features.h), into
 * `have`; fills `want` with what to enable: every feature the shaders may need that it offers.
 * *subgroup_ops: the subgroup operations of compute shaders. */
static void query_features(qk_vk_state *s, qk_vk_feature_chain *have, qk_vk_feature_chain *want, uint32_t *subgroup_ops,
                           int coop_ext) {
    qk_vk_chain_init(have, coop_ext);
    vk.vkGetPhysicalDeviceFeatures2(s->phys->pd, &have->f2);

    VkPhysicalDeviceFloatControlsProperties fc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FLOAT_CONTROLS_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                             .pNext = &fc};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vk.vkGetPhysicalDeviceProperties2(s->phys->pd, &p2);
    *subgroup_ops = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? sg.supportedOperations : 0;
    qk_vk_chain_init(want, 0);
    qk_vk_choose_features(have, subgroup_ops, qk_vk_disabled_features(), want);

    const VkPhysicalDeviceLimits *lim = &s->phys->props.limits;
    s->feat.storage16 = have->f11.storageBuffer16BitAccess;
    s->feat.storage8 = have->f12.storageBuffer8BitAccess;
    s->feat.float16 = have->f12.shaderFloat16;
    s->feat.int8 = have->f12.shaderInt8;
    s->feat.float64 = have->f2.features.shaderFloat64;
    s->feat.denorm_preserve32 = fc.shaderDenormPreserveFloat32 == VK_TRUE && !qk_vk_disables("denorm");
    s->feat.subgroup_size = (int)sg.subgroupSize;
    s->feat.subgroup_arith = (*subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
    s->feat.max_shared_bytes = lim->maxComputeSharedMemorySize;
    s->feat.max_storage_range = lim->maxStorageBufferRange;
    s->feat.timestamp_ns = lim->timestampPeriod;
    s->min_align = lim->minStorageBufferOffsetAlignment ? lim->minStorageBufferOffsetAlignment : 4;
    if (s->min_align < 4) s->min_align = 4;

    /* cooperative matrices: 16x16x16 with f16 inputs and f32 accumulators, subgroup scope */
    if (coop_ext && have->coop.cooperativeMatrix && vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV &&
        have->f12.shaderFloat16 && have->f11.storageBuffer16BitAccess) {
        uint32_t n = 0;
        vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(s->phys->pd, &n, NULL);
        VkCooperativeMatrixPropertiesNV *p = calloc(n ? n : 1, sizeof *p);
        for (uint32_t i = 0; p && i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
        if (p && vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(s->phys->pd, &n, p) == VK_SUCCESS)
            for (uint32_t i = 0; i < n; i++)
                if (p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 &&
                    p[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV && p[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                    p[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV && p[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                    p[i].scope == VK_SCOPE_SUBGROUP_NV)
                    s->feat.coopmat_nv = 1;
        free(p);
    }
}

const char *qk_vk_shader_lacks(const qk_vk_state *s, const char *name, char *buf, size_t n) {
    const qk_shader *sh = find_shader(name);
    if (!sh) return "no shader for it in this build";
    return qk_vk_spirv_lacks(s->feat.enabled, sh->code, sh->bytes, buf, n);
}

qk_status qk_vk_open(qk_context *ctx, int index, void **state) {
    *state = NULL;
    if (index < 0 || index >= qk_vk_device_count())
        return qk_fail(ctx, QK_ERR_NO_DEVICE, "vulkan:%d does not exist", index);
    qk_vk_state *s = calloc(1, sizeof *s);
    if (!s) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    pthread_mutex_init(&s->lock, NULL);
    s->phys = &devices[index];
    s->next_va = (uintptr_t)1 << 44; /* far from any host pointer a caller could confuse it with */
    *state = s;

    uint32_t n_ext = 0;
    vk.vkEnumerateDeviceExtensionProperties(s->phys->pd, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof *ext);
    if (!ext) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    vk.vkEnumerateDeviceExtensionProperties(s->phys->pd, NULL, &n_ext, ext);
    int coop_ext = has_extension(ext, n_ext, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    s->feat.integer_dot = has_extension(ext, n_ext, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    free(ext);

    qk_vk_feature_chain have, want;
    uint32_t subgroup_ops;
    query_features(s, &have, &want, &subgroup_ops, coop_ext);
    /* Required of every device: storage buffers of words and 32-bit atomics are core. Optional
     * features are enabled where offered; what a shader needs and the device lacks makes that
     * shader's operations unsupported here (qk_vk_shader_lacks). */
    const char *dev_ext[2];
    uint32_t n_dev_ext = 0;
    /* glslang declares the Vulkan memory model in every cooperative-matrix shader */
    if (!have.f12.vulkanMemoryModel) s->feat.coopmat_nv = 0;
    if (s->feat.coopmat_nv) {
        want.f12.pNext = &want.coop;
        want.coop.cooperativeMatrix = VK_TRUE;
        dev_ext[n_dev_ext++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    }
    s->feat.enabled = qk_vk_enabled_features(&want, subgroup_ops, s->feat.coopmat_nv);
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = s->phys->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = &want.f2,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = n_dev_ext,
                              .ppEnabledExtensionNames = dev_ext};
    QK_CHECK_VK(ctx, vk.vkCreateDevice(s->phys->pd, &dci, NULL, &s->device));
    vk.vkGetDeviceQueue(s->device, s->phys->queue_family, 0, &s->queue);

    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = s->phys->queue_family};
    QK_CHECK_VK(ctx, vk.vkCreateCommandPool(s->device, &cpi, NULL, &s->cmd_pool));
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = s->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    QK_CHECK_VK(ctx, vk.vkAllocateCommandBuffers(s->device, &cai, &s->cmd));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    QK_CHECK_VK(ctx, vk.vkCreateFence(s->device, &fci, NULL, &s->fence));

    VkDescriptorSetLayoutBinding b[QK_VK_MAX_BINDINGS];
    for (int i = 0; i < QK_VK_MAX_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                              VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo dli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = QK_VK_MAX_BINDINGS,
                                           .pBindings = b};
    QK_CHECK_VK(ctx, vk.vkCreateDescriptorSetLayout(s->device, &dli, NULL, &s->set_layout));
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 4 * QK_VK_MAX_BINDINGS + QK_VK_PARAM_BYTES};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &s->set_layout,
                                      .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pcr};
    QK_CHECK_VK(ctx, vk.vkCreatePipelineLayout(s->device, &pli, NULL, &s->pipe_layout));
    /* the pipelines an earlier process compiled on this device and driver, where there are any;
     * a cache the driver refuses all the same is dropped for an empty one */
    VkPipelineCacheCreateInfo pcci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    void *saved = NULL;
    if (qk_vk_pipeline_cache_path(&s->phys->props, s->cache_path, sizeof s->cache_path))
        saved = qk_vk_pipeline_cache_read(s->cache_path, &s->phys->props, &pcci.initialDataSize);
    else
        s->cache_path[0] = '\0';
    pcci.pInitialData = saved;
    VkResult cr = vk.vkCreatePipelineCache(s->device, &pcci, NULL, &s->cache);
    if (cr != VK_SUCCESS && saved) {
        pcci.initialDataSize = 0;
        pcci.pInitialData = NULL;
        cr = vk.vkCreatePipelineCache(s->device, &pcci, NULL, &s->cache);
    }
    free(saved);
    if (cr != VK_SUCCESS) return vk_fail(ctx, cr, "vkCreatePipelineCache()");
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, MAX_SETS * QK_VK_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = MAX_SETS,
                                      .poolSizeCount = 1,
                                      .pPoolSizes = &ps};
    QK_CHECK_VK(ctx, vk.vkCreateDescriptorPool(s->device, &dpi, NULL, &s->desc_pool));

    if (s->phys->timestamps && s->feat.timestamp_ns > 0) {
        VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                     .queryCount = N_TIMESTAMPS};
        QK_CHECK_VK(ctx, vk.vkCreateQueryPool(s->device, &qpi, NULL, &s->queries));
        s->feat.timestamps = 1;
    }

    qk_status st = make_buffer(ctx, s, STAGING_BYTES, 1, &s->staging);
    if (st != QK_OK) return st;
    QK_CHECK_VK(ctx, vk.vkMapMemory(s->device, s->staging->memory, 0, VK_WHOLE_SIZE, 0, &s->staging_map));
    if ((st = make_buffer(ctx, s, 256, 0, &s->dummy)) != QK_OK) return st;
    return upload_tables(ctx, s);
}
