#include "file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static qk_status fail_closing(int fd, const char *path, const char *doing, int err) {
    close(fd);
    return qk_fail(NULL, QK_ERR_IO, "%s: %s%s%s", path, doing, err ? ": " : "", err ? strerror(err) : "");
}

qk_status qk_file_map_open(const char *path, const char *what, qk_file_map *m) {
    memset(m, 0, sizeof *m);
    m->data = (const unsigned char *)"";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(NULL, QK_ERR_IO, "%s: cannot open%s%s: %s", path, what ? " " : "", what ? what : "",
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) return fail_closing(fd, path, "cannot stat", errno);
    if (!S_ISREG(st.st_mode)) return fail_closing(fd, path, "is not a regular file", 0);
    if ((uint64_t)st.st_size > SIZE_MAX) return fail_closing(fd, path, "too large to map", 0);
    m->size = (size_t)st.st_size;
    if (m->size) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) return fail_closing(fd, path, "cannot map", errno);
        m->map = p;
        m->data = p;
    }
    close(fd); /* the mapping keeps the file */
    return QK_OK;
}

void qk_file_map_close(qk_file_map *m) {
    if (m && m->map) munmap(m->map, m->size);
    if (m) memset(m, 0, sizeof *m);
}
