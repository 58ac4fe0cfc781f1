#include "safe_output.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkern.h"

static const struct {
    int sig;
    const char *name;
} fatal[] = {{SIGINT, "SIGINT"}, {SIGTERM, "SIGTERM"}, {SIGHUP, "SIGHUP"}, {SIGQUIT, "SIGQUIT"}, {SIGPIPE, "SIGPIPE"}};
#define N_FATAL (sizeof fatal / sizeof fatal[0])

static struct sigaction saved[N_FATAL], saved_xfsz;
static sigset_t saved_mask;
static int installed;
static mode_t file_mode = 0644;

/* The CLI's own temporary (the report), for the handler: a name is set before the file exists
 * and cleared after it is renamed, so the handler may try a name that is gone, never a wrong one. */
static char own_tmp[4200];
static volatile sig_atomic_t own_tmp_set;

/* --resume: the library keeps the output's temporary and journal on a signal (it is not among the
 * partial outputs removed), and the handler says so. */
static volatile sig_atomic_t resumable;

void safe_output_resumable(void) { resumable = 1; }

static void put(const char *s) { (void)!write(STDERR_FILENO, s, strlen(s)); }

/* Async-signal-safe only: unlink, stat, sigaction, write, raise. The handler ends the process
 * by re-raising the signal with its default action rather than _exit(128 + sig): the parent
 * then sees death by that signal (WIFSIGNALED), which a shell reports as 128 + sig and which
 * also lets a calling script stop on Ctrl-C as it does for any other program. */
static void on_fatal_signal(int sig) {
    qk_remove_partial_outputs();
    if (own_tmp_set) unlink(own_tmp);
    static struct sigaction dfl, ign; /* zeroed: SIG_DFL, empty mask */
    ign.sa_handler = SIG_IGN;
    if (sig != SIGPIPE) sigaction(SIGPIPE, &ign, NULL); /* stderr may be a closed pipe too */
    const char *name = "a signal";
    for (size_t i = 0; i < N_FATAL; i++)
        if (fatal[i].sig == sig) name = fatal[i].name;
    put("qkern: stopped by ");
    put(name);
    put(resumable ? "; the temporary output and its journal are kept for --resume\n" : "; no partial output left\n");
    sigaction(sig, &dfl, NULL);
    raise(sig); /* blocked while we run (sa_mask): delivered, with the default action, on return */
}

void safe_output_install(void) {
    if (installed) return;
    mode_t mask = umask(0); /* the only way to read it; no other thread creates files yet */
    umask(mask);
    file_mode = 0666 & ~mask;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FATAL; i++) sigaddset(&sa.sa_mask, fatal[i].sig);
    for (size_t i = 0; i < N_FATAL; i++) {
        /* A signal ignored when we started stays ignored (`nohup qkern ...` survives SIGHUP),
         * except SIGINT and SIGQUIT: a non-interactive shell ignores those for every `cmd &`
         * on its own, and a script's `kill -INT` must still stop qkern cleanly. */
        sigaction(fatal[i].sig, NULL, &saved[i]);
        int by_shell = fatal[i].sig == SIGINT || fatal[i].sig == SIGQUIT;
        if (saved[i].sa_handler != SIG_IGN || by_shell) sigaction(fatal[i].sig, &sa, NULL);
    }
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ign, &saved_xfsz);
    pthread_sigmask(SIG_BLOCK, &sa.sa_mask, &saved_mask);
    installed = 1;
}

void safe_output_arm(void) {
    if (installed) pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
}

void safe_output_restore(void) {
    if (!installed) return;
    for (size_t i = 0; i < N_FATAL; i++) sigaction(fatal[i].sig, &saved[i], NULL);
    sigaction(SIGXFSZ, &saved_xfsz, NULL);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    installed = 0;
}

static void forget_own_tmp(void) {
    own_tmp_set = 0;
    own_tmp[0] = 0;
}

FILE *safe_output_open(const char *what, const char *path) {
    if ((size_t)snprintf(own_tmp, sizeof own_tmp, "%s.tmp.XXXXXX", path) >= sizeof own_tmp) {
        fprintf(stderr, "qkern: %s %s: the name is too long\n", what, path);
        forget_own_tmp();
        return NULL;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* a signal waits until the handler knows the name */
    int fd = mkostemp(own_tmp, O_CLOEXEC);
    own_tmp_set = fd >= 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    FILE *f = NULL;
    if (fd >= 0 && fchmod(fd, file_mode) == 0) f = fdopen(fd, "w"); /* mkstemp makes it 0600 */
    if (!f) {
        int e = errno;
        if (fd >= 0) close(fd), unlink(own_tmp);
        fprintf(stderr, "qkern: %s %s: %s\n", what, path, strerror(e));
        forget_own_tmp();
    }
    return f;
}

int safe_output_commit(FILE *f, const char *what, const char *path) {
    int ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(own_tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(own_tmp);
        fprintf(stderr, "qkern: %s %s: %s\n", what, path, e ? strerror(e) : "write error");
    }
    forget_own_tmp();
    return ok;
}

void safe_output_discard(FILE *f) {
    if (!f) return;
    fclose(f);
    unlink(own_tmp);
    forget_own_tmp();
}
