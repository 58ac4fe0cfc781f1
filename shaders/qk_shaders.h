/* The SPIR-V of every shader, embedded at build time (scripts/embed_spirv.py): looked up by
 * name, "<op>/<TYPE>" or "<op>". */
#ifndef QK_SHADERS_H
#define QK_SHADERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct qk_shader {
    const char *name;
    const uint32_t *code;
    size_t bytes;
} qk_shader;

extern const qk_shader qk_shaders[];
extern const int qk_shader_count;

#endif
