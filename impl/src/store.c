/*
 * store.c - item records and the one commit path; see store.h.
 *
 * Layout: one array of items sorted bytewise by canonical path, fixed after
 * loading, so lookups are a binary search and a folder's children are one
 * contiguous range.  One mutex guards the mutable parts of the records:
 * readers copy under it, and store_write holds it for the check-apply-prepare
 * sequence, which is what makes "exactly one of N concurrent writers with the
 * same base version wins" hold.  When a commit has to wait (for the log to
 * reach the disk), the lock is released and the item is marked pending, so
 * writes to other items proceed and share one sync (group commit) while
 * later writes to the same item wait their turn.
 */
#include "store.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "canon.h"
#include "trace.h"

#define STORE_MAX_DEPTH CANON_MAX_SEGMENTS

struct store_item {
    char *path;
    size_t pathlen;
    struct labels labels;
    unsigned long long version;
    long long updated_at_us;
    char *updated_by;
    bool pending; /* a write is between prepare and finish */
};

struct store {
    pthread_mutex_t lock;
    pthread_cond_t settled; /* signalled when a pending write finishes */
    struct store_item *items;
    size_t nitems, cap;
    bool sorted;
    unsigned long long seq;
    struct store_commit_ops ops;
    void *ops_ctx;
};

struct store *store_new(void)
{
    struct store *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->settled, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    s->sorted = true;
    return s;
}

static void store_item_cleanup(struct store_item *it)
{
    free(it->path);
    labels_cleanup(&it->labels);
    free(it->updated_by);
}

void store_free(struct store *s)
{
    size_t i;

    if (!s)
        return;
    for (i = 0; i < s->nitems; i++)
        store_item_cleanup(&s->items[i]);
    free(s->items);
    pthread_cond_destroy(&s->settled);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int store_item_cmp(const void *a, const void *b)
{
    const struct store_item *x = a, *y = b;

    return strcmp(x->path, y->path);
}

/* Sort and drop duplicates; called once loading is over (and lazily). */
static void store_seal(struct store *s)
{
    size_t i, j;

    if (s->sorted)
        return;
    qsort(s->items, s->nitems, sizeof(*s->items), store_item_cmp);
    for (i = 0, j = 0; i < s->nitems; i++) {
        if (j > 0 && strcmp(s->items[j - 1].path, s->items[i].path) == 0) {
            TRACE_W("store", "duplicate item %s ignored", s->items[i].path);
            store_item_cleanup(&s->items[i]);
            continue;
        }
        s->items[j++] = s->items[i];
    }
    s->nitems = j;
    s->sorted = true;
}

int store_add_item(struct store *s, const char *path)
{
    size_t len = strlen(path);
    struct store_item *it;

    if (!canon_is_canonical(path, len) || strcmp(path, "/") == 0)
        return LS_EPATH;
    if (s->nitems >= STORE_MAX_ITEMS)
        return LS_ETOOMANY;
    if (s->nitems == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct store_item *p = realloc(s->items, ncap * sizeof(*p));

        if (!p)
            return -ENOMEM;
        s->items = p;
        s->cap = ncap;
    }
    it = &s->items[s->nitems];
    memset(it, 0, sizeof(*it));
    it->path = strdup(path);
    if (!it->path)
        return -ENOMEM;
    it->pathlen = len;
    labels_init(&it->labels);
    it->version = 1;
    s->nitems++;
    s->sorted = false;
    return 0;
}

static bool store_is_image_name(const char *name)
{
    static const char *const exts[] = {".png", ".jpg", ".jpeg", ".webp"};
    size_t n = strlen(name), i;

    for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcasecmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

/*
 * Walk dir (the file system path fs, whose canonical item path is rel) and
 * add every image below it.  Depth and length are capped so a hostile tree
 * cannot exhaust the stack or the path buffers.
 */
static int store_scan(struct store *s, const char *fs, const char *rel, int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (depth > STORE_MAX_DEPTH) {
        TRACE_W("store", "%s: deeper than %d levels, skipped", fs, STORE_MAX_DEPTH);
        return 0;
    }
    d = opendir(fs);
    if (!d)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        char fpath[4096 + 256], rpath[CANON_MAX_PATH + 1];
        struct stat st;
        int n1, n2;

        if (de->d_name[0] == '.')
            continue; /* ".", "..", and hidden entries such as .lenslet/ */
        n1 = snprintf(fpath, sizeof(fpath), "%s/%s", fs, de->d_name);
        n2 = snprintf(rpath, sizeof(rpath), "%s/%s", strcmp(rel, "/") == 0 ? "" : rel, de->d_name);
        if (n1 < 0 || (size_t)n1 >= sizeof(fpath) || n2 < 0 || (size_t)n2 >= sizeof(rpath)) {
            TRACE_W("store", "%s/%s: path too long, skipped", fs, de->d_name);
            continue;
        }
        if (lstat(fpath, &st) != 0) {
            TRACE_W("store", "%s: %s, skipped", fpath, strerror(errno));
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            TRACE_W("store", "%s: symlink, skipped", fpath);
            continue;
        }
        if (!canon_is_canonical(rpath, (size_t)n2)) {
            TRACE_W("store", "%s: name is not a canonical path, skipped", fpath);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = store_scan(s, fpath, rpath, depth + 1);
            if (rc && rc != -EACCES)
                break;
            rc = 0;
        } else if (S_ISREG(st.st_mode) && store_is_image_name(de->d_name)) {
            rc = store_add_item(s, rpath);
            if (rc)
                break;
        }
    }
    closedir(d);
    return rc;
}

int store_load_tree(struct store *s, const char *root, size_t *nitems)
{
    int rc = store_scan(s, root, "/", 0);

    store_seal(s);
    if (nitems)
        *nitems = s->nitems;
    return rc;
}

size_t store_count(const struct store *s)
{
    return s->nitems;
}

unsigned long long store_seq(struct store *s)
{
    unsigned long long v;

    pthread_mutex_lock(&s->lock);
    v = s->seq;
    pthread_mutex_unlock(&s->lock);
    return v;
}

void store_set_commit_ops(struct store *s, const struct store_commit_ops *ops, void *ctx)
{
    if (ops)
        s->ops = *ops;
    else
        memset(&s->ops, 0, sizeof(s->ops));
    s->ops_ctx = ctx;
}

/* Index of path, or -1.  Caller holds the lock (or is single-threaded). */
static long store_find(const struct store *s, const char *path)
{
    size_t lo = 0, hi = s->nitems;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid].path, path);

        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* First index whose path is >= key. */
static size_t store_lower_bound(const struct store *s, const char *key)
{
    size_t lo = 0, hi = s->nitems;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(s->items[mid].path, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void store_ensure_sealed(struct store *s)
{
    if (s->sorted)
        return;
    pthread_mutex_lock(&s->lock);
    store_seal(s);
    pthread_mutex_unlock(&s->lock);
}

static int store_copy_item(const struct store_item *it, struct store_record *out)
{
    memset(out, 0, sizeof(*out));
    out->path = strdup(it->path);
    if (!out->path)
        goto fail;
    if (labels_copy(&out->labels, &it->labels) != 0)
        goto fail;
    out->version = it->version;
    out->updated_at_us = it->updated_at_us;
    if (it->updated_by) {
        out->updated_by = strdup(it->updated_by);
        if (!out->updated_by)
            goto fail;
    }
    return 0;
fail:
    store_record_cleanup(out);
    return -ENOMEM;
}

bool store_has_item(struct store *s, const char *path)
{
    bool found;

    store_ensure_sealed(s);
    pthread_mutex_lock(&s->lock);
    found = store_find(s, path) >= 0;
    pthread_mutex_unlock(&s->lock);
    return found;
}

bool store_is_folder(struct store *s, const char *path)
{
    char prefix[CANON_MAX_PATH + 2];
    size_t n = strlen(path), i;
    bool found;

    if (strcmp(path, "/") == 0)
        return true;
    if (n > CANON_MAX_PATH)
        return false;
    memcpy(prefix, path, n);
    prefix[n] = '/';
    prefix[n + 1] = '\0';
    store_ensure_sealed(s);
    pthread_mutex_lock(&s->lock);
    i = store_lower_bound(s, prefix);
    found = i < s->nitems && strncmp(s->items[i].path, prefix, n + 1) == 0;
    pthread_mutex_unlock(&s->lock);
    return found;
}

int store_get(struct store *s, const char *path, struct store_record *out)
{
    long idx;
    int rc;

    memset(out, 0, sizeof(*out));
    store_ensure_sealed(s);
    pthread_mutex_lock(&s->lock);
    idx = store_find(s, path);
    rc = idx < 0 ? LS_ENOTFOUND : store_copy_item(&s->items[idx], out);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_write(struct store *s, const struct store_write *w, struct store_result *res)
{
    struct labels next;
    struct patch_error perr;
    struct store_item *it;
    struct store_record nrec;
    char *actor = NULL;
    unsigned long long seq;
    unsigned changed = 0;
    void *ticket = NULL;
    long idx;
    int rc;

    memset(res, 0, sizeof(*res));
    store_ensure_sealed(s);
    labels_init(&next);
    pthread_mutex_lock(&s->lock);
    idx = store_find(s, w->path);
    if (idx < 0) {
        res->outcome = STORE_NOT_FOUND;
        rc = 0;
        goto out;
    }
    it = &s->items[idx];
    /* One write per item in flight: the next one decides against the
     * outcome of this one, exactly as if they had been serialized. */
    while (it->pending)
        pthread_cond_wait(&s->settled, &s->lock);
    if (w->has_expected && w->expected != it->version) {
        res->outcome = STORE_CONFLICT;
        rc = store_copy_item(it, &res->rec);
        goto out;
    }
    rc = patch_apply(w->patch, &it->labels, &next, &changed, &perr);
    if (rc == LS_ETOOMANY) {
        res->outcome = STORE_TOO_MANY_TAGS;
        rc = store_copy_item(it, &res->rec);
        goto out;
    }
    if (rc)
        goto out;
    if (changed == 0) {
        res->outcome = STORE_NOOP;
        rc = store_copy_item(it, &res->rec);
        goto out;
    }
    if (it->version >= PATCH_MAX_VERSION) {
        rc = -ERANGE; /* 2^53-1 writes to one item: refuse rather than wrap */
        goto out;
    }
    actor = strdup(w->actor ? w->actor : "anonymous");
    if (!actor) {
        rc = -ENOMEM;
        goto out;
    }
    /* The record as it will be; the hooks see it before anyone else can. */
    nrec.path = it->path;
    nrec.labels = next;
    nrec.version = it->version + 1;
    nrec.updated_at_us = w->now_us;
    nrec.updated_by = actor;
    seq = s->seq + 1;
    if (s->ops.prepare) {
        rc = s->ops.prepare(s->ops_ctx, w, &nrec, changed, &seq, &ticket);
        if (rc)
            goto out;
    }
    if (s->ops.wait) {
        it->pending = true;
        pthread_mutex_unlock(&s->lock);
        rc = s->ops.wait(s->ops_ctx, ticket);
        pthread_mutex_lock(&s->lock);
        it->pending = false;
        pthread_cond_broadcast(&s->settled);
        if (rc) {
            if (s->ops.finish)
                s->ops.finish(s->ops_ctx, ticket, &nrec, false);
            goto out;
        }
    }
    labels_cleanup(&it->labels);
    it->labels = next;
    labels_init(&next);
    free(it->updated_by);
    it->updated_by = actor;
    actor = NULL;
    it->version = nrec.version;
    it->updated_at_us = nrec.updated_at_us;
    if (seq > s->seq)
        s->seq = seq;
    res->outcome = STORE_APPLIED;
    res->changed = changed;
    res->seq = seq;
    rc = store_copy_item(it, &res->rec);
    if (s->ops.finish) {
        struct store_record now = {it->path, it->labels, it->version, it->updated_at_us,
                                   it->updated_by};

        s->ops.finish(s->ops_ctx, ticket, &now, true);
    }
out:
    pthread_mutex_unlock(&s->lock);
    labels_cleanup(&next);
    free(actor);
    if (rc) {
        store_record_cleanup(&res->rec);
        memset(res, 0, sizeof(*res));
    }
    return rc;
}

int store_restore(struct store *s, const char *path, const struct labels *labels,
                  unsigned long long version, long long updated_at_us, const char *updated_by,
                  unsigned long long seq)
{
    struct store_item *it;
    struct labels copy;
    char *by = NULL;
    long idx;

    store_ensure_sealed(s);
    if (seq > s->seq)
        s->seq = seq;
    idx = store_find(s, path);
    if (idx < 0)
        return LS_ENOTFOUND;
    it = &s->items[idx];
    if (version <= it->version)
        return 0; /* replay is idempotent: only newer versions apply */
    if (labels_copy(&copy, labels) != 0 || (updated_by && !(by = strdup(updated_by)))) {
        labels_cleanup(&copy);
        return -ENOMEM;
    }
    labels_cleanup(&it->labels);
    it->labels = copy;
    free(it->updated_by);
    it->updated_by = by;
    it->version = version;
    it->updated_at_us = updated_at_us;
    return 0;
}

static int store_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_list_folder(struct store *s, const char *path, struct store_folder *out)
{
    char prefix[CANON_MAX_PATH + 2];
    size_t plen, i, start, nfold = 0, nit = 0;
    bool root = strcmp(path, "/") == 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    plen = strlen(path);
    if (plen > CANON_MAX_PATH)
        return LS_ENOTFOUND;
    if (root) {
        prefix[0] = '/';
        prefix[1] = '\0';
        plen = 1;
    } else {
        memcpy(prefix, path, plen);
        prefix[plen++] = '/';
        prefix[plen] = '\0';
    }
    store_ensure_sealed(s);
    pthread_mutex_lock(&s->lock);
    start = store_lower_bound(s, prefix);
    /* Count first so each list is one allocation. */
    for (i = start; i < s->nitems && strncmp(s->items[i].path, prefix, plen) == 0; i++) {
        if (strchr(s->items[i].path + plen, '/'))
            nfold++; /* an upper bound: one per item below a sub-folder */
        else
            nit++;
    }
    if (i == start && !root) {
        rc = LS_ENOTFOUND;
        goto out;
    }
    out->folders = calloc(nfold ? nfold : 1, sizeof(char *));
    out->items = calloc(nit ? nit : 1, sizeof(struct store_record));
    if (!out->folders || !out->items) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = start; i < s->nitems && strncmp(s->items[i].path, prefix, plen) == 0; i++) {
        const char *rest = s->items[i].path + plen;
        const char *slash = strchr(rest, '/');

        if (slash) {
            size_t flen = (size_t)(slash - s->items[i].path);
            const char *last = out->nfolders ? out->folders[out->nfolders - 1] : NULL;

            /* All items below one sub-folder share a prefix, so they are
             * contiguous in sorted order: comparing with the last one added
             * is enough to list each sub-folder once. */
            if (last && strlen(last) == flen && strncmp(last, s->items[i].path, flen) == 0)
                continue;
            out->folders[out->nfolders] = strndup(s->items[i].path, flen);
            if (!out->folders[out->nfolders]) {
                rc = -ENOMEM;
                goto out;
            }
            out->nfolders++;
        } else {
            rc = store_copy_item(&s->items[i], &out->items[out->nitems]);
            if (rc)
                goto out;
            out->nitems++;
        }
    }
out:
    pthread_mutex_unlock(&s->lock);
    if (rc) {
        store_folder_cleanup(out);
        return rc;
    }
    qsort(out->folders, out->nfolders, sizeof(char *), store_cmp_str);
    return 0;
}

void store_folder_cleanup(struct store_folder *f)
{
    size_t i;

    if (!f)
        return;
    for (i = 0; f->folders && i < f->nfolders; i++)
        free(f->folders[i]);
    for (i = 0; f->items && i < f->nitems; i++)
        store_record_cleanup(&f->items[i]);
    free(f->folders);
    free(f->items);
    memset(f, 0, sizeof(*f));
}

void store_record_cleanup(struct store_record *r)
{
    if (!r)
        return;
    free(r->path);
    labels_cleanup(&r->labels);
    free(r->updated_by);
    memset(r, 0, sizeof(*r));
}

void store_result_cleanup(struct store_result *r)
{
    if (!r)
        return;
    store_record_cleanup(&r->rec);
}

void store_format_time(long long us, char *out, size_t outcap)
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    snprintf(out, outcap, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

cJSON *store_record_to_json(const struct store_record *r)
{
    cJSON *o = cJSON_CreateObject();
    char ts[40];

    if (!o)
        return NULL;
    /* Versions go out as raw text: cJSON prints doubles above 2^31 with 15
     * significant digits, which would corrupt versions near 2^53. */
    snprintf(ts, sizeof(ts), "%llu", r->version);
    if (!cJSON_AddStringToObject(o, "path", r->path) ||
        labels_to_json_ex(&r->labels, o, LABELS_JSON_EXACT) != 0 ||
        !cJSON_AddRawToObject(o, "version", ts))
        goto fail;
    if (r->updated_at_us) {
        store_format_time(r->updated_at_us, ts, sizeof(ts));
        if (!cJSON_AddStringToObject(o, "updated_at", ts))
            goto fail;
    } else if (!cJSON_AddNullToObject(o, "updated_at")) {
        goto fail;
    }
    if (r->updated_by ? !cJSON_AddStringToObject(o, "updated_by", r->updated_by)
                      : !cJSON_AddNullToObject(o, "updated_by"))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
