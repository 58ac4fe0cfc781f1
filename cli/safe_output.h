/* What a signal, a full disk or a second writer leaves behind: nothing. The library's GGUF writer
 * holds each output under PATH.tmp.qkern until it is complete; this adds the command line's
 * half: signal handlers that remove those temporaries (and the report's) and end the process by
 * the same signal, and the report file's own temporary. */
#ifndef QK_CLI_SAFE_OUTPUT_H
#define QK_CLI_SAFE_OUTPUT_H

#include <stdio.h>

/* From here on SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE remove every partial output and
 * end the process by that signal (a shell sees 128 + its number); SIGXFSZ is ignored, so a
 * write beyond `ulimit -f` fails with EFBIG like a full disk. SIGHUP, SIGTERM or SIGPIPE
 * ignored when the process started (nohup's SIGHUP) stays ignored. safe_output_restore puts the
 * previous dispositions back. */
void safe_output_install(void);
void safe_output_restore(void);
/* install leaves those signals blocked on the calling thread, so that threads started before
 * arm (the backends', in qk_context_create) inherit them blocked and the handler runs on this
 * thread, the one that creates the files; arm unblocks them here. */
void safe_output_arm(void);
/* The run keeps its temporary output for --resume: a stopping signal's message says so. */
void safe_output_resumable(void);

/* A text output written beside `path` (PATH.tmp.XXXXXX, with the permissions the umask gives)
 * and renamed into place by safe_output_commit, which also closes it. One at a time; the signal
 * handlers remove it too. Both print one line naming `what` and `path` and return NULL / 0 on
 * an error, leaving nothing behind. */
FILE *safe_output_open(const char *what, const char *path);
int safe_output_commit(FILE *f, const char *what, const char *path);
/* Closes and removes such a file instead (NULL is ignored). */
void safe_output_discard(FILE *f);

#endif
