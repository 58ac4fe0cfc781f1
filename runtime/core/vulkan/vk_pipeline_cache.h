/* The Vulkan pipeline cache kept on disk between processes (vk_pipeline_cache.c). */
#ifndef QK_VK_PIPELINE_CACHE_H
#define QK_VK_PIPELINE_CACHE_H

#include <stddef.h>

#include "vk_loader.h"

/* The cache file of device p (its vendor, device, driver version and cache UUID, and qkern's
 * version) in the user's cache folder: $QK_CACHE_DIR, else $XDG_CACHE_HOME/qkern, else
 * $HOME/.cache/qkern. 0 where there is none: no such folder, or QK_VK_PIPELINE_CACHE=0. */
int qk_vk_pipeline_cache_path(const VkPhysicalDeviceProperties *p, char *buf, size_t n);

/* The file's bytes (malloc'ed, *size set) if it holds a cache that device p wrote; NULL else. */
void *qk_vk_pipeline_cache_read(const char *path, const VkPhysicalDeviceProperties *p, size_t *size);

/* Replaces the file with data, all or nothing; failures are ignored (the cache only saves time). */
void qk_vk_pipeline_cache_write(const char *path, const void *data, size_t size);

#endif
