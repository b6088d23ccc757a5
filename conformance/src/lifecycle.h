/*
 * lifecycle.h - --server mode: the server slots the runner starts itself and
 * the lifecycle steps of fixtures (server_start, server_start_second,
 * server_stop, server_restart, workspace_files, workspace_expect).
 *
 * A slot owns a scratch workspace (a fresh copy of <spec>/workspace), a port
 * on 127.0.0.1 and two server processes: "main", which the case's requests
 * go to, and "second", started only to prove that a second server on the
 * same workspace is refused.  Logs and the workspace live in
 * <rundir>/<slot>/.  Not thread-safe (the runner is single-threaded).
 */
#ifndef LSC_LIFECYCLE_H
#define LSC_LIFECYCLE_H

#include <cJSON.h>

#include "buf.h"
#include "server.h"
#include "vars.h"

#ifndef LIFE_READY_MS
#define LIFE_READY_MS 10000 /* default within_ms of server_start(_second), before scaling */
#endif
#ifndef LIFE_STOP_MS
#define LIFE_STOP_MS 10000 /* default within_ms of server_stop: SIGTERM to exit */
#endif
#ifndef LIFE_MAX_FILES
#define LIFE_MAX_FILES 64 /* entries of one workspace_files step */
#endif
#ifndef LIFE_MAX_PATH
#define LIFE_MAX_PATH 1024 /* bytes of a workspace-relative path */
#endif
#ifndef LIFE_MAX_ARGS
#define LIFE_MAX_ARGS 1024 /* bytes of a step's args */
#endif
#ifndef LIFE_MAX_READ
#define LIFE_MAX_READ (16 * 1024 * 1024) /* bytes of a file read by workspace_expect */
#endif
#ifndef LIFE_STDERR_MATCH
#define LIFE_STDERR_MATCH (64 * 1024) /* stderr bytes (the end) a stderr pattern sees */
#endif
#ifndef LIFE_STDERR_TAIL
#define LIFE_STDERR_TAIL 2048 /* stderr bytes quoted in a failure message */
#endif

/* Settings shared by every slot; strings borrowed. */
struct life_cfg {
    const char *cmd;    /* the --server template */
    const char *spec;   /* the spec directory: workspace/ and workspaces/ */
    const char *rundir; /* scratch directory of this run (exists) */
    double scale;       /* --timeout-scale */
    int verbose;
};

struct life {
    const struct life_cfg *cfg;
    char *dir;        /* <rundir>/<slot> */
    char *ws;         /* <dir>/ws, the workspace of the current case */
    int port;         /* of the main server, fixed per case */
    char url[64];     /* http://127.0.0.1:PORT */
    int want_running; /* the main server should be running (after the last step) */
    struct server main;
    struct server second;
};

/* life_new - a slot named slot; creates <rundir>/<slot>.  NULL with the reason in err. */
struct life *life_new(const struct life_cfg *cfg, const char *slot, struct buf *err);

/* life_free - kill its servers, remove <rundir>/<slot>, free.  NULL-safe. */
void life_free(struct life *l);

/*
 * life_prepare - for a new case: kill leftovers, replace the workspace by a
 * fresh copy of <spec>/workspace, empty the logs, pick a free port (the URL
 * is then life_url).  The main server is not started.  Returns 0 or fails
 * with the reason in err.
 */
LS_MUST_CHECK int life_prepare(struct life *l, struct buf *err);

/* life_url - "http://127.0.0.1:PORT" of the main server. */
const char *life_url(const struct life *l);

/*
 * life_start - start the main server with args and wait (within_ms, before
 * scaling) until /health answers 200.  Returns 0, or 1 with the reason
 * (and nothing left running) in why.
 */
int life_start(struct life *l, const char *args, long within_ms, struct buf *why);

/* life_alive - 1 when the main server runs. */
int life_alive(struct life *l);

/*
 * life_step_kind - the lifecycle step kind of a step object ("server_start",
 * ..., "workspace_expect"), or NULL for other steps.
 */
const char *life_step_kind(const cJSON *step);

/*
 * life_step - run one lifecycle step (already checked by fixture_check);
 * string values take {{vars}}.  Returns 1 when it passed, else 0 with the
 * details in msg.  With cfg->verbose a trace line is printed.
 */
int life_step(struct life *l, const struct vars *v, const cJSON *step, struct buf *msg);

/*
 * life_describe - append the main server's state and the end of its stderr
 * (this start) to msg, for failure messages.
 */
void life_describe(struct life *l, struct buf *msg);

/*
 * life_finish - end a case: stop the main server with SIGTERM (when it
 * should be running) and kill a second one.  Returns 0, or 1 with the
 * problem in why (it had exited on its own, did not stop, ended with an
 * error status).
 */
int life_finish(struct life *l, struct buf *why);

/*
 * life_path_ok - 1 when p is a workspace-relative path: non-empty, at most
 * LIFE_MAX_PATH bytes, not absolute, no "", "." or ".." component, no
 * backslash or control byte; with glob 0 also no * ? [ characters.
 */
int life_path_ok(const char *p, int glob);

/* life_args_ok - 1 when a step's args are at most LIFE_MAX_ARGS bytes of [A-Za-z0-9 ._=/:,+-]. */
int life_args_ok(const char *a);

#endif
