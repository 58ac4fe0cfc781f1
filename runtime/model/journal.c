#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_io.h"

static const char header_magic[8] = {'Q', 'K', 'J', 'O', 'U', 'R', 'N', '1'};
#define RECORD_TAG 0x524a4b51u /* "QKJR" */

static void make_header(unsigned char *b, uint64_t identity) {
    memcpy(b, header_magic, 8);
    qk_put_le64(b + 8, identity);
    qk_put_le64(b + 16, 0);
    qk_put_le64(b + 24, qk_fnv1a64(QK_FNV1A64_INIT, b, 24));
}

static void make_record(unsigned char *b, uint64_t index, uint64_t sum) {
    qk_put_le32(b, RECORD_TAG);
    qk_put_le32(b + 4, 0);
    qk_put_le64(b + 8, index);
    qk_put_le64(b + 16, sum);
    qk_put_le64(b + 24, qk_fnv1a64(QK_FNV1A64_INIT, b, 24));
}

static int read_all(int fd, unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

void qk_journal_read(const char *path, uint64_t identity, uint64_t *sums, size_t max, size_t *n, int *other_run) {
    *n = 0;
    *other_run = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    unsigned char h[QK_JOURNAL_HEADER], want[QK_JOURNAL_HEADER];
    make_header(want, identity);
    if (!read_all(fd, h, sizeof h) || memcmp(h, want, sizeof h) != 0) {
        *other_run = 1;
        close(fd);
        return;
    }
    unsigned char r[QK_JOURNAL_RECORD];
    while (*n < max && read_all(fd, r, sizeof r)) {
        if (qk_le32(r) != RECORD_TAG || qk_le64(r + 8) != *n || qk_le64(r + 24) != qk_fnv1a64(QK_FNV1A64_INIT, r, 24))
            break;
        sums[(*n)++] = qk_le64(r + 16);
    }
    close(fd);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return errno;
        if (k == 0) return EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int qk_journal_start(const char *path, uint64_t identity, const uint64_t *sums, size_t n) {
    size_t len = QK_JOURNAL_HEADER + n * QK_JOURNAL_RECORD;
    unsigned char *b = malloc(len);
    if (!b) {
        errno = ENOMEM;
        return -1;
    }
    make_header(b, identity);
    for (size_t i = 0; i < n; i++) make_record(b + QK_JOURNAL_HEADER + i * QK_JOURNAL_RECORD, i, sums[i]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    int e = fd < 0 ? errno : write_all(fd, b, len);
    if (!e && fdatasync(fd) != 0) e = errno;
    free(b);
    if (e) {
        if (fd >= 0) close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int qk_journal_append(int fd, uint64_t index, uint64_t sum) {
    unsigned char r[QK_JOURNAL_RECORD];
    make_record(r, index, sum);
    int e = write_all(fd, r, sizeof r);
    if (!e && fdatasync(fd) != 0) e = errno;
    return e;
}
