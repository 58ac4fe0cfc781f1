/* Read-only memory maps of whole files, shared by the GGUF and imatrix readers. */
#ifndef QK_FILE_MAP_H
#define QK_FILE_MAP_H

#include <stddef.h>

#include "qkern.h"

typedef struct qk_file_map {
    const unsigned char *data; /* the file's bytes ("" for an empty file) */
    size_t size;
    void *map; /* the mapping to release, or NULL for an empty file */
} qk_file_map;

/* Maps `path` read-only. QK_ERR_IO (message in qk_last_error(NULL), e.g. "PATH: cannot open
 * the imatrix file: No such file or directory" with `what` = "the imatrix file", or NULL) if it
 * cannot be opened, is not a regular file or cannot be mapped. */
qk_status qk_file_map_open(const char *path, const char *what, qk_file_map *m);
void qk_file_map_close(qk_file_map *m);

#endif
