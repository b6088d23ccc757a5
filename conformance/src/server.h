/*
 * server.h - the server processes of --server mode: the command template,
 * free ports, process groups, readiness, stopping, and the scratch
 * workspaces (copied directory trees) the servers run on.
 *
 * A server is `/bin/sh -c CMD` started in its own process group, with stdin
 * from /dev/null and stdout/stderr appended to log files.  Every signal goes
 * to the whole group, and the runner is a child subreaper (Linux), so a
 * server that sh started as its child is reaped by the runner and its own
 * exit status is seen.  Nothing here waits without a bound.  The runner is
 * single-threaded; these functions are not thread-safe.
 */
#ifndef LSC_SERVER_H
#define LSC_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

#ifndef SERVER_MAX_CMD
#define SERVER_MAX_CMD (64 * 1024) /* bytes of one expanded command */
#endif
#ifndef SERVER_KILL_WAIT_MS
#define SERVER_KILL_WAIT_MS 5000 /* wait for a group to vanish after SIGKILL */
#endif
#ifndef SERVER_TREE_DEPTH
#define SERVER_TREE_DEPTH 64 /* directory depth copied or removed */
#endif
#ifndef SERVER_MAX_TREE_FILE
#define SERVER_MAX_TREE_FILE (64 * 1024 * 1024) /* one file of a copied tree */
#endif

/* One server slot: at most one process group at a time. */
struct server {
    char name[32]; /* "main", "second": messages and log file names */
    pid_t pid;     /* the sh process (= the process group id) while started, else 0 */
    int port;      /* the port of the current or last start */
    char *log_out; /* owned paths of the stdout and stderr logs */
    char *log_err;
    long long err_from; /* stderr log size when the current start began */
    double started_ms;  /* util_now_ms() of the current start */
    int main_status;    /* wait status of pid, valid when main_reaped */
    int main_reaped;
    int other_status; /* first abnormal status of another group member */
    int other_bad;
    int sent; /* the signal sent by server_stop, 0 if none */
};

/* server_init - an idle slot whose logs are dir/NAME.out and dir/NAME.err.  -ENOMEM or 0. */
LS_MUST_CHECK int server_init(struct server *s, const char *dir, const char *name);

/* server_cleanup - kill a running group (SIGKILL, bounded) and free the slot.  NULL-safe. */
void server_cleanup(struct server *s);

/* server_global_init - become a child subreaper where supported.  Call once. */
void server_global_init(void);

/* server_free_port - a currently free TCP port on 127.0.0.1 (bind to 0, read it, close). */
LS_MUST_CHECK int server_free_port(int *port);

/*
 * server_cmd_check - NULL when tmpl is a usable --server template
 * (non-empty, containing {port} and {workspace}), else a static reason.
 */
const char *server_cmd_check(const char *tmpl);

/*
 * server_build_cmd - expand tmpl into out: {workspace} becomes the
 * shell-quoted ws, {port} the number, {args} the args text (appended after a
 * space when tmpl has no {args}).  Returns 0 or a buf error.
 */
LS_MUST_CHECK int server_build_cmd(const char *tmpl, const char *ws, int port, const char *args,
                                   struct buf *out);

/*
 * server_spawn - start cmd in a new process group on port (recorded for
 * messages).  The stderr log is kept (err_from marks where this start
 * begins).  Returns 0 or -errno; on failure nothing runs.
 */
LS_MUST_CHECK int server_spawn(struct server *s, const char *cmd, int port);

enum server_wait { SERVER_READY, SERVER_EXITED, SERVER_TIMEOUT };

/*
 * server_wait_ready - poll until GET http://127.0.0.1:PORT/health answers
 * 200 (SERVER_READY), the sh process exits (SERVER_EXITED; main_status set),
 * or within_ms pass (SERVER_TIMEOUT).  The process keeps running on TIMEOUT.
 */
enum server_wait server_wait_ready(struct server *s, long within_ms);

/* server_running - 1 while the group has a member that has not been reaped. */
int server_running(struct server *s);

/*
 * server_stop - send sig (SIGTERM or SIGKILL) to the group and wait until it
 * is gone.  A TERM that is not obeyed within within_ms is followed by
 * SIGKILL.  Returns 0 when the group was running and went away cleanly (for
 * TERM: every reaped exit status 0 or death by SIGTERM); otherwise 1 with
 * the reason in why (already exited, needed SIGKILL, exit status).  The slot
 * is idle afterwards in every case.
 */
int server_stop(struct server *s, int sig, long within_ms, struct buf *why);

/* server_kill - SIGKILL the group if any and reap it (bounded); quiet. */
void server_kill(struct server *s);

/* server_status_text - append "exit status N" / "killed by signal N (NAME)". */
void server_status_text(int status, struct buf *out);

/*
 * server_stderr - the stderr text of the current (or last) start, at most
 * max bytes from its end, into out (reset first).  Returns 0 or -errno.
 */
int server_stderr(const struct server *s, size_t max, struct buf *out);

/*
 * server_emergency_kill - SIGKILL every process group started and not yet
 * reaped.  Async-signal-safe: for the runner's SIGINT/SIGTERM handler.
 */
void server_emergency_kill(void);

/*
 * tree_copy - copy the directory tree src to dst (created; must not exist):
 * directories, regular files (mode kept) and symlinks (as symlinks).
 * Returns 0, -errno, or LS_ETOOBIG (depth or file size caps).
 */
LS_MUST_CHECK int tree_copy(const char *src, const char *dst);

/* tree_remove - remove path and everything below it, never following symlinks.  0 or -errno. */
int tree_remove(const char *path);

#endif
