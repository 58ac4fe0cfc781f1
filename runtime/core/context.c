/* Devices, contexts and buffers: the backend registry and the choice of device. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <dirent.h>
#include <unistd.h>
#endif

#include "internal.h"
#include "invariants.h"

double qk_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best first: a GPU backend registers ahead of the CPU when it is built. */
static const qk_backend *const registry[] = {
#ifdef QK_HAVE_CUDA
    &qk_backend_cuda,
#endif
#ifdef QK_HAVE_VULKAN
    &qk_backend_vulkan,
#endif
    &qk_backend_cpu,
};
#define N_BACKENDS ((int)(sizeof(registry) / sizeof(registry[0])))

static const char *const known_backends[] = {"cpu", "cuda", "vulkan"};

int qk_device_count(void) {
    int n = 0;
    for (int b = 0; b < N_BACKENDS; b++) n += registry[b]->device_count();
    return n;
}

/* Global device i -> (backend, index within it). */
static int locate(int i, const qk_backend **backend, int *index) {
    if (i < 0) return 0;
    for (int b = 0; b < N_BACKENDS; b++) {
        int n = registry[b]->device_count();
        if (i < n) {
            *backend = registry[b];
            *index = i;
            return 1;
        }
        i -= n;
    }
    return 0;
}

qk_status qk_device_get(int i, qk_device_info *info) {
    const qk_backend *b;
    int index;
    if (!info) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_device_get: info is NULL");
    if (!locate(i, &b, &index))
        return qk_fail(NULL, QK_ERR_NO_DEVICE, "device %d does not exist (%d devices)", i, qk_device_count());
    return b->device_info(index, info);
}

int qk_device_is_software(int i) {
    const qk_backend *b;
    int index;
    return locate(i, &b, &index) && b->is_software && b->is_software(index);
}

qk_context_params qk_context_default_params(void) {
    qk_context_params p = {sizeof(qk_context_params), NULL, 0, NULL, NULL};
    return p;
}

/* The struct as version 0.1.0 had it: a caller built against it passes this size. */
#define PARAMS_V0_SIZE offsetof(qk_context_params, notice)

static int is_automatic(const char *spec) { return !spec || !*spec || !strcmp(spec, "auto"); }

/* Whether the host shows user space a GPU: a DRM render node, an NVIDIA device or WSL's GPU
 * channel. Without one, the automatic choice does not probe a backend that can list software
 * devices: probing loads every driver (mesa's lavapipe brings LLVM, tens of MB resident) only to
 * pass the emulated device over for the cpu. Naming the device ("vulkan:0") still opens it. */
static int host_shows_a_gpu(void) {
#ifdef __linux__
    if (!access("/dev/nvidia0", F_OK) || !access("/dev/dxg", F_OK)) return 1;
    DIR *d = opendir("/dev/dri");
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) found = !strncmp(e->d_name, "renderD", 7);
    if (d) closedir(d);
    return found;
#else
    return 1;
#endif
}

/* Parses "name" or "name:N" into a backend and index. */
static qk_status resolve_device(const char *spec, const qk_backend **out, int *index) {
    if (is_automatic(spec)) { /* the first real device */
        const int gpu = host_shows_a_gpu();
        for (int b = 0; b < N_BACKENDS; b++) {
            if (registry[b]->is_software && !gpu) continue;
            for (int i = 0; i < registry[b]->device_count(); i++)
                if (!registry[b]->is_software || !registry[b]->is_software(i)) {
                    *out = registry[b], *index = i;
                    return QK_OK;
                }
        }
        return qk_fail(NULL, QK_ERR_NO_DEVICE, "no device available");
    }
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    long n = 0;
    if (colon) {
        char *end;
        n = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || n < 0)
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "device '%s': expected NAME or NAME:INDEX", spec);
    }
    for (int b = 0; b < N_BACKENDS; b++) {
        if (strlen(registry[b]->name) != len || strncmp(registry[b]->name, spec, len)) continue;
        int count = registry[b]->device_count();
        if (n >= count)
            return qk_fail(NULL, QK_ERR_NO_DEVICE, "device '%s' not found: %d %s device%s present", spec, count,
                           registry[b]->name, count == 1 ? "" : "s");
        *out = registry[b];
        *index = (int)n;
        return QK_OK;
    }
    for (size_t k = 0; k < sizeof known_backends / sizeof known_backends[0]; k++)
        if (strlen(known_backends[k]) == len && !strncmp(known_backends[k], spec, len))
            return qk_fail(NULL, QK_ERR_NO_DEVICE, "device '%s': this build of qkern has no %.*s backend", spec,
                           (int)len, spec);
    return qk_fail(NULL, QK_ERR_NO_DEVICE, "device '%s': unknown backend (expected cpu, cuda or vulkan)", spec);
}

/* "vulkan:0 (llvmpipe)": the id and the hardware's name up to its first parenthesis (the driver
 * and API versions that follow it say nothing a notice needs). */
static void label_device(qk_context *ctx) {
    qk_device_info info;
    if (ctx->backend->device_info(ctx->device_index, &info) != QK_OK) {
        snprintf(ctx->label, sizeof ctx->label, "%s:%d", ctx->backend->name, ctx->device_index);
        return;
    }
    size_t name_len = strcspn(info.name, "(");
    while (name_len && info.name[name_len - 1] == ' ') name_len--;
    if (!name_len || info.kind == QK_DEVICE_CPU)
        snprintf(ctx->label, sizeof ctx->label, "%s", info.id);
    else
        snprintf(ctx->label, sizeof ctx->label, "%s (%.*s)", info.id, (int)name_len, info.name);
}

qk_status qk_context_create(const qk_context_params *params, qk_context **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_context_create: out is NULL");
    *out = NULL;
    qk_context_params p = qk_context_default_params();
    if (params) {
        if (params->struct_size < PARAMS_V0_SIZE)
            return qk_fail(NULL, QK_ERR_INVALID_ARG,
                           "qk_context_params.struct_size is %zu, expected %zu (at least %zu, from 0.1.0)",
                           params->struct_size, sizeof(qk_context_params), (size_t)PARAMS_V0_SIZE);
        /* the fields the caller's version has; later ones keep their defaults */
        size_t n = params->struct_size < sizeof p ? params->struct_size : sizeof p;
        memcpy(&p, params, n);
        p.struct_size = sizeof p;
    }
    if (p.n_threads < 0) return qk_fail(NULL, QK_ERR_INVALID_ARG, "n_threads is %d, must be >= 0", p.n_threads);
    const qk_backend *backend = NULL;
    int index = 0;
    qk_status st = resolve_device(p.device, &backend, &index);
    if (st != QK_OK) return st;
    qk_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "cannot allocate a context");
    ctx->backend = backend;
    ctx->device_index = index;
    ctx->n_threads = p.n_threads;
    ctx->named = !is_automatic(p.device);
    ctx->notice = p.notice;
    ctx->notice_user = p.notice_user;
    label_device(ctx);
    st = backend->open(ctx, index, &ctx->state);
    if (st != QK_OK) {
        qk_fail(NULL, st, "%s", ctx->error);
        free(ctx);
        return st;
    }
    *out = ctx;
    return QK_OK;
}

void qk_context_destroy(qk_context *ctx) {
    if (!ctx) return;
    while (ctx->buffers) qk_buffer_destroy(ctx->buffers);
    ctx->backend->close(ctx->state);
    if (ctx->cpu_state) qk_backend_cpu.close(ctx->cpu_state);
    free(ctx);
}

qk_status qk_context_device(const qk_context *ctx, qk_device_info *info) {
    if (!ctx || !info) return QK_ERR_INVALID_ARG;
    return ctx->backend->device_info(ctx->device_index, info);
}

/* ---- buffers ------------------------------------------------------------------------------ */

qk_status qk_buffer_create(qk_context *ctx, size_t bytes, qk_buffer **out) {
    if (!ctx || !out) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_buffer_create: NULL argument");
    *out = NULL;
    qk_buffer *b = calloc(1, sizeof *b);
    if (!b) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot allocate a buffer descriptor");
    qk_status st = ctx->backend->alloc(ctx, ctx->state, bytes ? bytes : 1, &b->mem);
    if (st != QK_OK) {
        free(b);
        return st;
    }
    b->ctx = ctx;
    b->bytes = bytes;
    b->next = ctx->buffers;
    if (ctx->buffers) ctx->buffers->prev = b;
    ctx->buffers = b;
    *out = b;
    return QK_OK;
}

void qk_buffer_destroy(qk_buffer *b) {
    if (!b) return;
    qk_context *ctx = b->ctx;
    if (b->prev)
        b->prev->next = b->next;
    else
        ctx->buffers = b->next;
    if (b->next) b->next->prev = b->prev;
    ctx->backend->free(ctx->state, b->mem);
    free(b);
}

size_t qk_buffer_size(const qk_buffer *b) { return b ? b->bytes : 0; }

static qk_status check_range(const qk_buffer *b, size_t offset, size_t bytes, const void *host, const char *what) {
    if (!b || (!host && bytes)) return qk_fail(b ? b->ctx : NULL, QK_ERR_INVALID_ARG, "%s: NULL argument", what);
    if (offset > b->bytes || bytes > b->bytes - offset)
        return qk_fail(b->ctx, QK_ERR_BUFFER, "%s: range [%zu, %zu + %zu) exceeds the buffer's %zu bytes", what, offset,
                       offset, bytes, b->bytes);
    return QK_OK;
}

qk_status qk_buffer_write(qk_buffer *b, size_t offset, const void *src, size_t bytes) {
    qk_status st = check_range(b, offset, bytes, src, "qk_buffer_write");
    if (st != QK_OK || !bytes) return st;
    return b->ctx->backend->write(b->ctx, b->ctx->state, b->mem, offset, src, bytes);
}

qk_status qk_buffer_read(const qk_buffer *b, size_t offset, void *dst, size_t bytes) {
    qk_status st = check_range(b, offset, bytes, dst, "qk_buffer_read");
    if (st != QK_OK || !bytes) return st;
    return b->ctx->backend->read(b->ctx, b->ctx->state, b->mem, offset, dst, bytes);
}
