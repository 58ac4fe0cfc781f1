/* The pipeline cache on disk: what a device's driver compiled from qkern's shaders, kept between
 * processes in the user's cache folder, so that only the first process on a machine waits on the
 * driver's compiler (up to seconds for the large encoders) and later ones create each pipeline
 * from the cache.
 *
 * One file per device, driver version and qkern version: the driver's own key (its header's
 * vendor, device and cache UUID) is checked before the data is handed over, and the qkern version
 * in the name keeps an upgraded library's new shaders from growing an old file. Best effort
 * throughout: a missing, unreadable, foreign or damaged file means an empty cache, a failed
 * write leaves the previous file in place (written to a temporary name, then renamed). */
#include "vk_pipeline_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkern.h"

/* Larger than any cache of qkern's shaders (a few MB); a bigger file is not one of ours. */
#define MAX_CACHE_BYTES ((size_t)256 << 20)

/* VkPipelineCacheHeaderVersionOne's size: 4 + 4 + 4 + 4 + VK_UUID_SIZE bytes. */
#define HEADER_BYTES (16 + VK_UUID_SIZE)

/* The folder: $QK_CACHE_DIR, else $XDG_CACHE_HOME/qkern, else $HOME/.cache/qkern. */
static int cache_dir(char *buf, size_t n) {
    const char *dir = getenv("QK_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (dir && *dir)
        w = snprintf(buf, n, "%s", dir);
    else if (xdg && *xdg)
        w = snprintf(buf, n, "%s/qkern", xdg);
    else if (home && *home)
        w = snprintf(buf, n, "%s/.cache/qkern", home);
    else
        return 0;
    return w > 0 && (size_t)w < n;
}

int qk_vk_pipeline_cache_path(const VkPhysicalDeviceProperties *p, char *buf, size_t n) {
    const char *off = getenv("QK_VK_PIPELINE_CACHE");
    if (off && !strcmp(off, "0")) return 0;
    char dir[4096];
    if (!cache_dir(dir, sizeof dir)) return 0;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", p->pipelineCacheUUID[i]);
    const int w = snprintf(buf, n, "%s/vulkan-%04x-%04x-%08x-%s-qkern%u.bin", dir, p->vendorID, p->deviceID,
                           p->driverVersion, uuid, qk_version());
    return w > 0 && (size_t)w < n;
}

static uint32_t rd32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

void *qk_vk_pipeline_cache_read(const char *path, const VkPhysicalDeviceProperties *p, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= HEADER_BYTES && (size_t)n <= MAX_CACHE_BYTES && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n);
        if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    if (!data) return NULL;
    /* the header the driver wrote: its length, version one, and this device's identity */
    const int ours = rd32(data) == HEADER_BYTES && rd32(data + 4) == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
                     rd32(data + 8) == p->vendorID && rd32(data + 12) == p->deviceID &&
                     !memcmp(data + 16, p->pipelineCacheUUID, VK_UUID_SIZE);
    if (!ours) {
        free(data);
        return NULL;
    }
    *size = (size_t)n;
    return data;
}

/* mkdir -p for the file's folder (0700: the user's own cache). */
static int make_parents(const char *path) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return 0;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 1;
    *slash = '\0';
    for (char *c = dir + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) return 0;
        *c = '/';
    }
    return mkdir(dir, 0700) == 0 || errno == EEXIST;
}

void qk_vk_pipeline_cache_write(const char *path, const void *data, size_t size) {
    if (!size || !make_parents(path)) return;
    char tmp[4096 + 16];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp) return;
    const int fd = mkstemp(tmp);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    const int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) unlink(tmp);
}
