#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

unsigned qk_version(void) { return QK_VERSION_NUMBER; }

const char *qk_version_string(void) { return QK_VERSION_STRING; }

const char *qk_status_string(qk_status s) {
    switch (s) {
    case QK_OK: return "ok";
    case QK_ERR_INVALID_ARG: return "invalid argument";
    case QK_ERR_TYPE: return "unknown or unsupported type";
    case QK_ERR_SHAPE: return "bad shape";
    case QK_ERR_VALUE: return "bad value in the input";
    case QK_ERR_BUFFER: return "buffer too small";
    case QK_ERR_NEEDS_IMATRIX: return "this type needs an importance matrix";
    case QK_ERR_OUT_OF_MEMORY: return "out of memory";
    case QK_ERR_NO_DEVICE: return "no such device";
    case QK_ERR_UNSUPPORTED: return "not supported on this device";
    case QK_ERR_BACKEND: return "backend error";
    case QK_ERR_IO: return "I/O error";
    case QK_ERR_FORMAT: return "malformed file";
    case QK_STATUS_COUNT: break;
    }
    return "unknown status";
}

static _Thread_local char orphan_error[QK_ERROR_LEN];

qk_status qk_fail(qk_context *ctx, qk_status status, const char *fmt, ...) {
    char *dst = ctx ? ctx->error : orphan_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, QK_ERROR_LEN, fmt, ap);
    va_end(ap);
    return status;
}

const char *qk_last_error(const qk_context *ctx) { return ctx ? ctx->error : orphan_error; }
