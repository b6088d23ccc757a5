/*
 * main.c - labelsync-check: command line, case selection, the /health probe,
 * the run loop, console output and exit codes.
 *
 * Exit codes (contract §8): 0 every selected case passed (XFAIL allowed);
 * 1 a failure or an unexpected pass of an --expect-fail case; 2 usage or
 * fixture error, always detected before any request is sent; 3 the server
 * is unreachable or /health is unusable (with --server: the server did not
 * start).
 *
 * With --server CMD the runner starts the servers itself (lifecycle.h): one
 * shared server on a scratch copy of <spec>/workspace for the ordinary
 * cases, and a fresh workspace, port and server per lifecycle case.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "http.h"
#include "lifecycle.h"
#include "lint.h"
#include "report.h"
#include "run.h"
#include "server.h"
#include "util.h"
#include "vars.h"

#define EXIT_PASS        0
#define EXIT_FAIL        1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3

#define MAX_URL_LEN       4096
#define HEALTH_TIMEOUT_MS 10000

struct opts {
    const char *url;
    const char *server; /* --server command template, or NULL */
    const char *spec;
    const char *schema;
    struct globlist filters;
    int list;
    int level; /* 0 MUST only, 1 MUST+SHOULD, 2 all */
    const char *report_json;
    const char *report_junit;
    double scale;
    const char *expect_fail;
    const char *origin;
    const char *features; /* --features override, or NULL */
    int verbose;
    int lint;
};

static void usage(FILE *f)
{
    fputs("usage: labelsync-check --url URL [options]\n"
          "       labelsync-check --server 'CMD {workspace} {port} {args}' [options]\n"
          "       labelsync-check --list | --lint [--spec DIR]\n"
          "\n"
          "  --url URL            base URL of the server under test (http://127.0.0.1:PORT)\n"
          "  --server CMD         start the server with /bin/sh -c CMD on a scratch copy of\n"
          "                       DIR/workspace: {workspace} and {port} are replaced (do\n"
          "                       not quote them), {args} by a step's args; enables the\n"
          "                       lifecycle cases (restart, kill -9, prepared workspaces)\n"
          "  --spec DIR           spec directory holding cases/ and vectors/ (default: spec)\n"
          "  --filter GLOB        run only cases whose id matches (fnmatch; repeatable)\n"
          "  --list               print id, level, spec sections, requires, title; no server\n"
          "  --level L            MUST: only MUST cases; SHOULD: MUST+SHOULD; MAY: all (default)\n"
          "  --report-json FILE   write a JSON report\n"
          "  --report-junit FILE  write a JUnit XML report\n"
          "  --timeout-scale X    multiply every timeout, interval and sleep by X (default 1)\n"
          "  --expect-fail FILE   id globs (one per line, # comments) of known failures:\n"
          "                       failing = XFAIL (not a failure), passing = XPASS (a failure)\n"
          "  --origin ORIGIN      add 'Origin: ORIGIN' to every request\n"
          "  --features LIST      use these comma-separated features instead of /health's\n"
          "                       (\"all\" = assume every feature; for servers without a list)\n"
          "  -v, --verbose        print a wire trace of every request and response\n"
          "  --lint               validate every fixture against spec/schema and exit 0/2\n"
          "  --schema FILE        schema for --lint (default: DIR/schema/fixture.schema.json)\n"
          "  --help, --version\n"
          "\n"
          "exit: 0 passed, 1 failures, 2 usage or fixture error, 3 server unreachable\n",
          f);
}

static int need_arg(int argc, char **argv, int i)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "labelsync-check: %s needs a value\n", argv[i]);
        return 0;
    }
    return 1;
}

/* Returns -1 to continue, or an exit code. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return EXIT_PASS;
        } else if (!strcmp(a, "--version")) {
            printf("labelsync-check %s\n", LSC_VERSION);
            return EXIT_PASS;
        } else if (!strcmp(a, "--list")) {
            o->list = 1;
        } else if (!strcmp(a, "--lint")) {
            o->lint = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--url") || !strcmp(a, "--server") || !strcmp(a, "--spec") ||
                   !strcmp(a, "--filter") || !strcmp(a, "--level") || !strcmp(a, "--report-json") ||
                   !strcmp(a, "--report-junit") || !strcmp(a, "--timeout-scale") ||
                   !strcmp(a, "--expect-fail") || !strcmp(a, "--origin") ||
                   !strcmp(a, "--schema") || !strcmp(a, "--features")) {
            const char *v;

            if (!need_arg(argc, argv, i))
                return EXIT_USAGE;
            v = argv[++i];
            if (!strcmp(a, "--url")) {
                o->url = v;
            } else if (!strcmp(a, "--server")) {
                o->server = v;
            } else if (!strcmp(a, "--spec")) {
                o->spec = v;
            } else if (!strcmp(a, "--schema")) {
                o->schema = v;
            } else if (!strcmp(a, "--filter")) {
                if (globlist_add(&o->filters, v) != 0) {
                    fprintf(stderr, "labelsync-check: too many --filter options\n");
                    return EXIT_USAGE;
                }
            } else if (!strcmp(a, "--level")) {
                if (!strcmp(v, "MUST"))
                    o->level = 0;
                else if (!strcmp(v, "SHOULD"))
                    o->level = 1;
                else if (!strcmp(v, "MAY"))
                    o->level = 2;
                else {
                    fprintf(stderr, "labelsync-check: --level must be MUST, SHOULD or MAY\n");
                    return EXIT_USAGE;
                }
            } else if (!strcmp(a, "--report-json")) {
                o->report_json = v;
            } else if (!strcmp(a, "--report-junit")) {
                o->report_junit = v;
            } else if (!strcmp(a, "--timeout-scale")) {
                char *end;

                errno = 0;
                o->scale = strtod(v, &end);
                if (errno || *end || !(o->scale > 0) || o->scale > 1000) {
                    fprintf(stderr, "labelsync-check: --timeout-scale must be a number in "
                                    "(0, 1000]\n");
                    return EXIT_USAGE;
                }
            } else if (!strcmp(a, "--features")) {
                o->features = v;
            } else if (!strcmp(a, "--expect-fail")) {
                o->expect_fail = v;
            } else if (!strcmp(a, "--origin")) {
                if (!*v || strpbrk(v, "\r\n")) {
                    fprintf(stderr, "labelsync-check: bad --origin value\n");
                    return EXIT_USAGE;
                }
                o->origin = v;
            }
        } else {
            fprintf(stderr, "labelsync-check: unknown argument '%s'\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!o->list && !o->lint) {
        const char *why;

        if (o->url && o->server) {
            fprintf(stderr, "labelsync-check: --url and --server are mutually exclusive\n");
            return EXIT_USAGE;
        }
        if (o->server) {
            if ((why = server_cmd_check(o->server)) != NULL) {
                fprintf(stderr, "labelsync-check: %s\n", why);
                return EXIT_USAGE;
            }
            return -1;
        }
        if (!o->url) {
            fprintf(stderr, "labelsync-check: --url is required (or --server)\n");
            usage(stderr);
            return EXIT_USAGE;
        }
        if ((strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) ||
            strlen(o->url) > MAX_URL_LEN || strpbrk(o->url, " \r\n?#")) {
            fprintf(stderr, "labelsync-check: --url must be an http:// or https:// base URL "
                            "without query\n");
            return EXIT_USAGE;
        }
    }
    return -1;
}

static int level_rank(const char *l)
{
    if (l && !strcmp(l, "MUST"))
        return 0;
    if (l && !strcmp(l, "SHOULD"))
        return 1;
    return 2;
}

static void print_list(const struct fixture_set *fs, int level)
{
    size_t i;
    struct buf spec;

    buf_init(&spec, 4096);
    for (i = 0; i < fs->n; i++) {
        const cJSON *fx = fs->f[i].json, *r;
        const char *dis = fixture_str(fx, "disabled");
        int first = 1;

        if (level_rank(fixture_str(fx, "level")) > level)
            continue;
        buf_reset(&spec);
        if (fixture_spec_text(fx, &spec) != 0)
            buf_reset(&spec);
        printf("%s\t%s\t%s\t", fs->f[i].id, fixture_str(fx, "level"), spec.data ? spec.data : "");
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(fx, "requires"))
        {
            printf("%s%s", first ? "" : ",", r->valuestring);
            first = 0;
        }
        printf("%s\t%s", first ? "-" : "", fixture_str(fx, "title"));
        if (dis)
            printf(" [disabled: %s]", dis);
        putchar('\n');
    }
    buf_cleanup(&spec);
}

/* A {{run}} value unique across runs: time, pid and random bits, in hex. */
static void make_run_id(char *out, size_t n)
{
    struct timespec ts;
    unsigned long r = 0;
    FILE *f = fopen("/dev/urandom", "rb");

    clock_gettime(CLOCK_REALTIME, &ts);
    if (!f || fread(&r, sizeof(r), 1, f) != 1)
        r = (unsigned long)ts.tv_nsec * 2654435761UL;
    if (f)
        fclose(f);
    snprintf(out, n, "r%lx%04lx%06lx", (unsigned long)ts.tv_sec, (unsigned long)getpid() & 0xffff,
             r & 0xffffff);
}

/*
 * GET /health.  Returns 0 with *features (caller frees) or EXIT_UNREACHABLE
 * after printing why.
 */
static int probe_health(const struct opts *o, cJSON **features)
{
    struct http_client *c = http_client_new("health");
    struct http_req req;
    struct http_resp resp;
    struct buf url;
    cJSON *j = NULL;
    int rc = EXIT_UNREACHABLE;

    *features = NULL;
    http_req_init(&req);
    http_resp_init(&resp);
    buf_init(&url, MAX_URL_LEN + 64);
    if (!c || buf_appendf(&url, "%s/health", o->url) != 0) {
        fprintf(stderr, "labelsync-check: out of memory\n");
        goto out;
    }
    req.method = strdup("GET");
    req.url = buf_take(&url, NULL);
    req.timeout_ms = (long)(HEALTH_TIMEOUT_MS * o->scale);
    if (!req.method || !req.url || (o->origin && http_req_set_header(&req, "Origin", o->origin)) ||
        http_perform(c, &req, &resp, o->verbose) != 0) {
        fprintf(stderr, "labelsync-check: cannot set up the /health request\n");
        goto out;
    }
    if (o->verbose && resp.trace.len)
        fwrite(resp.trace.data, 1, resp.trace.len, stdout);
    if (resp.curl_code) {
        fprintf(stderr, "labelsync-check: server unreachable: GET %s: %s\n", req.url, resp.error);
        goto out;
    }
    if (resp.status != 200) {
        fprintf(stderr, "labelsync-check: GET %s answered %ld, expected 200\n", req.url,
                resp.status);
        goto out;
    }
    j = run_parse_json(resp.body.data, resp.body.len);
    if (!cJSON_IsObject(j)) {
        fprintf(stderr, "labelsync-check: GET %s did not return a JSON object\n", req.url);
        goto out;
    }
    {
        cJSON *f = cJSON_DetachItemFromObjectCaseSensitive(j, "features");

        *features = cJSON_IsArray(f) ? f : cJSON_CreateArray();
        if (!cJSON_IsArray(f))
            cJSON_Delete(f);
    }
    rc = *features ? 0 : EXIT_UNREACHABLE;
out:
    cJSON_Delete(j);
    http_req_cleanup(&req);
    http_resp_cleanup(&resp);
    buf_cleanup(&url);
    http_client_free(c);
    return rc;
}

/*
 * Replace the server's features with the --features list ("a,b,c").  "all"
 * becomes ["*"], which satisfies every `requires`.  Returns 0 or -ENOMEM.
 */
static int override_features(const char *list, cJSON **features)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = list;

    if (!arr)
        return -ENOMEM;
    if (!strcmp(list, "all")) {
        cJSON_AddItemToArray(arr, cJSON_CreateString("*"));
        p = "";
    }
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *name = strndup(p, n);

        if (!name) {
            cJSON_Delete(arr);
            return -ENOMEM;
        }
        if (n)
            cJSON_AddItemToArray(arr, cJSON_CreateString(name));
        free(name);
        p += n + (e ? 1 : 0);
    }
    cJSON_Delete(*features);
    *features = arr;
    return 0;
}

/*
 * The first `requires` name missing from features, or NULL.  "lifecycle"
 * is never a server's feature: only --server mode (server_mode) provides it,
 * whatever --features says.
 */
static const char *missing_feature(const cJSON *fx, const cJSON *features, int server_mode)
{
    const cJSON *r, *f;
    int all = cJSON_GetArraySize(features) == 1 && cJSON_IsString(features->child) &&
              !strcmp(features->child->valuestring, "*");

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(fx, "requires"))
    {
        int have = all;

        if (!strcmp(r->valuestring, FIXTURE_LIFECYCLE)) {
            if (!server_mode)
                return r->valuestring;
            continue;
        }
        cJSON_ArrayForEach(f, features)
        {
            if (cJSON_IsString(f) && !strcmp(f->valuestring, r->valuestring))
                have = 1;
        }
        if (!have)
            return r->valuestring;
    }
    return NULL;
}

static char *msg_dup(const char *fmt, ...) LS_PRINTF(1, 2);

static char *msg_dup(const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    int rc;

    buf_init(&b, 64 * 1024);
    va_start(ap, fmt);
    rc = buf_vappendf(&b, fmt, ap);
    va_end(ap);
    if (rc != 0) {
        buf_cleanup(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* ------------------------------------------------------------------ --server */

extern char **environ;

/* The run's scratch directory, for the signal handler (which must not allocate). */
static char rundir_path[PATH_MAX];

/*
 * SIGINT/SIGTERM/SIGHUP/SIGPIPE during a --server run: kill every server group,
 * remove the scratch directory (fork + exec rm: async-signal-safe), then die
 * of the same signal.
 */
static void on_fatal_signal(int sig)
{
    static char rm[] = "/bin/rm", rf[] = "-rf", dd[] = "--";
    char *argv[5];
    pid_t pid;

    server_emergency_kill();
    if (rundir_path[0]) {
        argv[0] = rm;
        argv[1] = rf;
        argv[2] = dd;
        argv[3] = rundir_path;
        argv[4] = NULL;
        pid = fork();
        if (pid == 0) {
            execve(rm, argv, environ);
            _exit(127);
        }
        if (pid > 0)
            (void)waitpid(pid, NULL, 0);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_fatal_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* `labelsync-check ... | head` must not leave servers behind either.  libcurl never
     * raises SIGPIPE itself (MSG_NOSIGNAL), so this is a closed stdout or stderr. */
    sigaction(SIGPIPE, &sa, NULL);
}

/* The run's scratch directory under $TMPDIR (or /tmp).  0 or -errno. */
static int make_rundir(void)
{
    const char *t = getenv("TMPDIR");
    int n;

    if (!t || !*t || strlen(t) > PATH_MAX - 64)
        t = "/tmp";
    n = snprintf(rundir_path, sizeof(rundir_path), "%s/lsc-run.XXXXXX", t);
    if (n < 0 || (size_t)n >= sizeof(rundir_path))
        return -ENAMETOOLONG;
    if (!mkdtemp(rundir_path)) {
        int e = -errno;

        rundir_path[0] = '\0';
        return e;
    }
    return 0;
}

/* Print why a server could not start, with the end of its stderr, to stderr. */
static void print_server_problem(struct life *l, const char *what, const struct buf *why)
{
    struct buf d;

    buf_init(&d, 64 * 1024);
    life_describe(l, &d);
    fprintf(stderr, "labelsync-check: %s:\n%s%s", what, why->data ? why->data : "",
            d.data ? d.data : "");
    buf_cleanup(&d);
}

static int has_dir(const char *spec, const char *sub)
{
    struct buf p;
    struct stat st;
    int yes;

    buf_init(&p, PATH_MAX);
    yes = buf_appendf(&p, "%s/%s", spec, sub) == 0 && stat(p.data, &st) == 0 && S_ISDIR(st.st_mode);
    buf_cleanup(&p);
    return yes;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct fixture_set fs;
    struct globlist xf;
    struct buf err;
    struct report_entry *ent = NULL;
    struct report_meta meta;
    struct run_opts ro;
    struct life_cfg lcfg;
    struct life *shared = NULL, *lcase = NULL;
    cJSON *features = NULL, *vectors = NULL;
    char run_id[64], *url = NULL;
    size_t i, n = 0;
    double t0;
    int rc, code = EXIT_USAGE, need_vectors = 0, need_shared = 0;

    memset(&o, 0, sizeof(o));
    memset(&lcfg, 0, sizeof(lcfg));
    globlist_init(&o.filters);
    globlist_init(&xf);
    fixture_set_init(&fs);
    buf_init(&err, 16 * 1024 * 1024);
    o.spec = "spec";
    o.level = 2;
    o.scale = 1.0;
    rc = parse_args(argc, argv, &o);
    if (rc >= 0) {
        code = rc;
        goto out;
    }
    if (o.lint) {
        code = lint_run(o.spec, o.schema);
        goto out;
    }
    /* 1. Load and check every selected fixture before anything is sent. */
    rc = fixture_load(o.spec, &o.filters, &fs, &err);
    if (rc) {
        fputs(err.data ? err.data : "", stderr);
        fprintf(stderr, "labelsync-check: fixture errors; nothing was run\n");
        goto out;
    }
    if (fs.n == 0) {
        /* A mistyped --filter must not look like a clean run. */
        fprintf(stderr, "labelsync-check: no case in %s/cases matches the filters\n", o.spec);
        goto out;
    }
    if (o.list) {
        print_list(&fs, o.level);
        code = EXIT_PASS;
        goto out;
    }
    if (o.expect_fail && (rc = globlist_load(&xf, o.expect_fail)) != 0) {
        fprintf(stderr, "labelsync-check: %s: %s\n", o.expect_fail, ls_strerror(rc));
        goto out;
    }
    for (i = 0; i < fs.n; i++) {
        const cJSON *fx = fs.f[i].json;

        if (level_rank(fixture_str(fx, "level")) > o.level)
            continue;
        if (fixture_uses_vectors(fx))
            need_vectors = 1;
        if (!fixture_is_lifecycle(fx) && !fixture_str(fx, "disabled"))
            need_shared = 1;
    }
    if (need_vectors) {
        vectors = fixture_load_vectors(o.spec, &err);
        if (!vectors) {
            fputs(err.data ? err.data : "", stderr);
            fprintf(stderr, "labelsync-check: cannot load the canon vectors; nothing was run\n");
            goto out;
        }
    }
    if (o.server && !has_dir(o.spec, "workspace")) {
        fprintf(stderr, "labelsync-check: --server needs the workspace %s/workspace\n", o.spec);
        goto out;
    }
    if (http_global_init() != 0) {
        fprintf(stderr, "labelsync-check: initialisation failed\n");
        goto out;
    }
    /* 2. With --server: a scratch directory and the shared server. */
    if (o.server) {
        struct buf why;

        rc = make_rundir();
        if (rc) {
            fprintf(stderr, "labelsync-check: cannot create a scratch directory: %s\n",
                    ls_strerror(rc));
            goto out_curl;
        }
        catch_fatal_signals();
        server_global_init();
        lcfg.cmd = o.server;
        lcfg.spec = o.spec;
        lcfg.rundir = rundir_path;
        lcfg.scale = o.scale;
        lcfg.verbose = o.verbose;
        buf_init(&why, 64 * 1024);
        shared = life_new(&lcfg, "shared", &why);
        if (!shared || life_prepare(shared, &why) != 0) {
            fprintf(stderr, "labelsync-check: %s\n", why.data ? why.data : "out of memory");
            buf_cleanup(&why);
            goto out_curl;
        }
        if (life_start(shared, "", LIFE_READY_MS, &why) != 0) {
            print_server_problem(shared, "the server did not start", &why);
            buf_cleanup(&why);
            code = EXIT_UNREACHABLE;
            goto out_curl;
        }
        buf_cleanup(&why);
        o.url = life_url(shared);
    }
    /* 3. The server must answer /health; its features decide which cases apply. */
    url = strdup(o.url);
    if (!url) {
        fprintf(stderr, "labelsync-check: out of memory\n");
        goto out_curl;
    }
    while (strlen(url) > 8 && url[strlen(url) - 1] == '/')
        url[strlen(url) - 1] = '\0';
    o.url = url;
    make_run_id(run_id, sizeof(run_id));
    code = probe_health(&o, &features);
    if (code != 0)
        goto out_curl;
    if (o.features && override_features(o.features, &features) != 0) {
        fprintf(stderr, "labelsync-check: out of memory\n");
        code = EXIT_USAGE;
        goto out_curl;
    }
    if (o.server)
        cJSON_AddItemToArray(features, cJSON_CreateString(FIXTURE_LIFECYCLE));
    {
        char *ftxt = cJSON_PrintUnformatted(features);

        printf("labelsync-check %s: %s%s, run %s, features %s\n", LSC_VERSION,
               o.server ? "--server, shared server " : "", o.url, run_id, ftxt ? ftxt : "[]");
        free(ftxt);
    }
    if (shared && !need_shared) {
        /* Only lifecycle cases: the shared server was needed for /health alone. */
        struct buf why;

        buf_init(&why, 64 * 1024);
        if (life_finish(shared, &why))
            print_server_problem(shared, "warning: the shared server did not stop cleanly", &why);
        buf_cleanup(&why);
    }
    /* 4. Run. */
    memset(&ro, 0, sizeof(ro));
    ro.origin = o.origin;
    ro.run_id = run_id;
    ro.scale = o.scale;
    ro.verbose = o.verbose;
    ro.vectors = vectors;
    memset(&meta, 0, sizeof(meta));
    ent = calloc(fs.n ? fs.n : 1, sizeof(*ent));
    if (!ent) {
        code = EXIT_USAGE;
        goto out_curl;
    }
    t0 = util_now_ms();
    for (i = 0; i < fs.n; i++) {
        const cJSON *fx = fs.f[i].json;
        struct report_entry *e = &ent[n];
        const char *dis = fixture_str(fx, "disabled"), *miss;
        int listed = globlist_match(&xf, fs.f[i].id) >= 0, life = fixture_is_lifecycle(fx);

        if (level_rank(fixture_str(fx, "level")) > o.level)
            continue;
        n++;
        e->f = &fs.f[i];
        miss = missing_feature(fx, features, o.server != NULL);
        ro.url = o.url;
        ro.life = NULL;
        if (dis) {
            e->r.status = CASE_SKIP;
            e->r.message = msg_dup("disabled: %s", dis);
        } else if (miss && !strcmp(miss, FIXTURE_LIFECYCLE)) {
            e->r.status = CASE_SKIP;
            e->r.message = msg_dup("%s", "lifecycle cases need --server");
        } else if (miss) {
            e->r.status = CASE_SKIP;
            e->r.message = msg_dup("server lacks feature '%s'", miss);
        } else if (life) {
            /* A fresh workspace, port and server state for every lifecycle case. */
            struct buf why;

            buf_init(&why, 64 * 1024);
            if (!lcase)
                lcase = life_new(&lcfg, "case", &why);
            if (!lcase || life_prepare(lcase, &why) != 0) {
                e->r.status = CASE_FAIL;
                e->r.message = msg_dup("  cannot prepare the case: %s\n",
                                       why.data ? why.data : "out of memory");
            } else {
                ro.url = life_url(lcase);
                ro.life = lcase;
                if (run_case(&ro, fx, &e->r) != 0) {
                    e->r.status = CASE_FAIL;
                    if (!e->r.message)
                        e->r.message = msg_dup("%s", "  the runner ran out of memory");
                }
            }
            buf_cleanup(&why);
        } else if (run_case(&ro, fx, &e->r) != 0) {
            e->r.status = CASE_FAIL;
            if (!e->r.message)
                e->r.message = msg_dup("%s", "  the runner ran out of memory");
        }
        if (listed && e->r.status == CASE_FAIL)
            e->r.status = CASE_XFAIL;
        else if (listed && e->r.status == CASE_PASS)
            e->r.status = CASE_XPASS;
        switch (e->r.status) {
        case CASE_PASS:
            meta.passed++;
            printf("PASS %s\n", fs.f[i].id);
            break;
        case CASE_SKIP:
            meta.skipped++;
            printf("SKIP %s (%s)\n", fs.f[i].id, e->r.message ? e->r.message : "");
            break;
        case CASE_XFAIL:
            meta.xfail++;
            printf("XFAIL %s\n", fs.f[i].id);
            if (o.verbose && e->r.message)
                fputs(e->r.message, stdout);
            break;
        case CASE_XPASS:
            meta.xpass++;
            meta.failed++;
            printf("XPASS %s (listed in %s but passed: remove it from the list)\n", fs.f[i].id,
                   o.expect_fail);
            break;
        default:
            meta.failed++;
            printf("FAIL %s\n", fs.f[i].id);
            if (e->r.message)
                fputs(e->r.message, stdout);
            break;
        }
        fflush(stdout);
        if (shared && !life && !dis && !miss && !life_alive(shared)) {
            /* The shared server died during this case: say so, and start it again. */
            struct buf why;

            buf_init(&why, 64 * 1024);
            util_note(&why, "    it exited during %s; starting it again\n", fs.f[i].id);
            print_server_problem(shared, "the server exited", &why);
            buf_reset(&why);
            if (life_start(shared, "", LIFE_READY_MS, &why) != 0) {
                print_server_problem(shared, "the server did not start again", &why);
                buf_cleanup(&why);
                code = EXIT_UNREACHABLE;
                goto out_curl;
            }
            buf_cleanup(&why);
        }
    }
    if (shared && need_shared) {
        struct buf why;

        buf_init(&why, 64 * 1024);
        if (life_finish(shared, &why))
            print_server_problem(shared, "warning: the shared server did not stop cleanly", &why);
        buf_cleanup(&why);
    }
    /* A pattern that matches no selected case is probably stale or misspelt. */
    for (i = 0; i < xf.n; i++) {
        size_t k;
        int used = 0;

        for (k = 0; k < n && !used; k++)
            used = fnmatch(xf.pat[i], ent[k].f->id, 0) == 0;
        if (!used)
            fprintf(stderr, "labelsync-check: warning: expect-fail entry '%s' matches no case\n",
                    xf.pat[i]);
    }
    meta.duration_ms = util_now_ms() - t0;
    meta.url = o.url;
    meta.run_id = run_id;
    meta.features = features;
    if (meta.xfail)
        printf("%zu expected failures (XFAIL)\n", meta.xfail);
    printf("%zu passed, %zu failed, %zu skipped\n", meta.passed, meta.failed, meta.skipped);
    code = meta.failed ? EXIT_FAIL : EXIT_PASS;
    if (o.report_json && (rc = report_write_json(o.report_json, &meta, ent, n)) != 0) {
        fprintf(stderr, "labelsync-check: %s: %s\n", o.report_json, ls_strerror(rc));
        code = EXIT_USAGE;
    }
    if (o.report_junit && (rc = report_write_junit(o.report_junit, &meta, ent, n)) != 0) {
        fprintf(stderr, "labelsync-check: %s: %s\n", o.report_junit, ls_strerror(rc));
        code = EXIT_USAGE;
    }
out_curl:
    life_free(lcase);
    life_free(shared);
    if (rundir_path[0]) {
        rc = tree_remove(rundir_path);
        if (rc)
            fprintf(stderr, "labelsync-check: warning: cannot remove %s: %s\n", rundir_path,
                    ls_strerror(rc));
        rundir_path[0] = '\0';
    }
    http_global_cleanup();
out:
    for (i = 0; ent && i < n; i++)
        free(ent[i].r.message);
    free(ent);
    free(url);
    cJSON_Delete(features);
    cJSON_Delete(vectors);
    fixture_set_cleanup(&fs);
    globlist_cleanup(&o.filters);
    globlist_cleanup(&xf);
    buf_cleanup(&err);
    return code;
}
