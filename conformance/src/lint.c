/*
 * lint.c - fixture lint: a small JSON Schema validator plus semantic checks;
 * see lint.h.
 *
 * The validator implements exactly the keywords our schema uses and refuses
 * (as a problem) any other assertion keyword, so a schema edit can never be
 * silently ignored.  Regular expressions in "pattern" are POSIX EREs, which
 * coincide with ECMA-262 for the simple patterns the schema contains.
 */
#include "lint.h"

#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fixture.h"
#include "lifecycle.h"
#include "match.h"
#include "util.h"
#include "vars.h"

#define SCHEMA_MAX_DEPTH 256

struct sv {
    const cJSON *root;
    const char *prefix;
};

static int sv_err(const struct sv *s, struct buf *err, const char *ptr, const char *fmt, ...)
    LS_PRINTF(4, 5);

static int sv_err(const struct sv *s, struct buf *err, const char *ptr, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (!err)
        return 1;
    rc = buf_appendf(err, "%s: %s: ", s->prefix, *ptr ? ptr : "/");
    va_start(ap, fmt);
    rc = rc ? rc : buf_vappendf(err, fmt, ap);
    va_end(ap);
    (void)(rc ? rc : buf_appendc(err, '\n'));
    return 1;
}

static int is_type(const cJSON *v, const char *t)
{
    if (!strcmp(t, "object"))
        return cJSON_IsObject(v);
    if (!strcmp(t, "array"))
        return cJSON_IsArray(v);
    if (!strcmp(t, "string"))
        return cJSON_IsString(v);
    if (!strcmp(t, "number"))
        return cJSON_IsNumber(v);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && util_is_integral(v->valuedouble);
    if (!strcmp(t, "boolean"))
        return cJSON_IsBool(v);
    if (!strcmp(t, "null"))
        return cJSON_IsNull(v);
    return 0;
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static int validate(const struct sv *s, const cJSON *sch, const cJSON *v, const char *ptr,
                    struct buf *err, int depth);

/* The length of the deepest JSON Pointer named in a block of "prefix: /ptr: msg" lines. */
static size_t deepest(const char *text, size_t prefix_len)
{
    size_t best = 0;
    const char *line = text;

    while (line && *line) {
        const char *p = line + prefix_len + 2, *nl = strchr(line, '\n'), *end;

        if ((!nl || p < nl) && strlen(line) > prefix_len + 2) {
            end = strstr(p, ": ");
            if (end && (!nl || end < nl) && (size_t)(end - p) > best)
                best = (size_t)(end - p);
        }
        line = nl ? nl + 1 : NULL;
    }
    return best;
}

/*
 * Validate against each alternative quietly; returns how many matched.  For
 * the message, *best gets the errors of the alternative that got furthest
 * into the instance (deepest pointer; then fewest errors), which is almost
 * always the one the author meant.
 */
static int alternatives(const struct sv *s, const cJSON *list, const cJSON *v, const char *ptr,
                        int depth, struct buf *best)
{
    const cJSON *alt;
    int matched = 0, fewest = -1;
    size_t far = 0;
    struct buf tmp;

    buf_init(&tmp, 1024 * 1024);
    cJSON_ArrayForEach(alt, list)
    {
        int n;
        size_t d;

        buf_reset(&tmp);
        n = validate(s, alt, v, ptr, &tmp, depth + 1);
        if (n == 0) {
            matched++;
            continue;
        }
        d = tmp.data ? deepest(tmp.data, strlen(s->prefix)) : 0;
        if (fewest < 0 || d > far || (d == far && n < fewest)) {
            fewest = n;
            far = d;
            buf_reset(best);
            util_note_n(best, tmp.data ? tmp.data : "", tmp.len);
        }
    }
    buf_cleanup(&tmp);
    return matched;
}

static int validate(const struct sv *s, const cJSON *sch, const cJSON *v, const char *ptr,
                    struct buf *err, int depth)
{
    static const char *const ignored[] = {"$schema",     "$id",      "$comment", "title",
                                          "description", "examples", "default",  "$defs",
                                          "deprecated",  "readOnly", NULL};
    const cJSON *k;
    struct buf sub;
    int n = 0;

    if (depth > SCHEMA_MAX_DEPTH)
        return sv_err(s, err, ptr, "schema recursion deeper than %d", SCHEMA_MAX_DEPTH);
    if (cJSON_IsTrue(sch))
        return 0;
    if (cJSON_IsFalse(sch))
        return sv_err(s, err, ptr, "not allowed here");
    if (!cJSON_IsObject(sch))
        return sv_err(s, err, ptr, "schema node is not an object");
    buf_init(&sub, 64 * 1024);
    cJSON_ArrayForEach(k, sch)
    {
        const char *kw = k->string;
        const cJSON *c;
        const char *const *ig;
        int skip = 0;

        for (ig = ignored; *ig; ig++)
            if (!strcmp(kw, *ig))
                skip = 1;
        if (skip)
            continue;
        if (!strcmp(kw, "$ref")) {
            const cJSON *target = NULL;

            if (cJSON_IsString(k) && k->valuestring[0] == '#')
                target = json_pointer_get(s->root, k->valuestring + 1);
            if (!target)
                n += sv_err(s, err, ptr, "schema $ref %s does not resolve",
                            cJSON_IsString(k) ? k->valuestring : "?");
            else
                n += validate(s, target, v, ptr, err, depth + 1);
        } else if (!strcmp(kw, "type")) {
            int ok = 0;

            if (cJSON_IsString(k))
                ok = is_type(v, k->valuestring);
            if (cJSON_IsArray(k)) {
                cJSON_ArrayForEach(c, k)
                {
                    if (cJSON_IsString(c) && is_type(v, c->valuestring))
                        ok = 1;
                }
            }
            if (!ok) {
                char *t = cJSON_PrintUnformatted(k);

                n += sv_err(s, err, ptr, "expected type %s", t ? t : "?");
                free(t);
            }
        } else if (!strcmp(kw, "enum")) {
            int ok = 0;

            cJSON_ArrayForEach(c, k)
            {
                if (json_equal(c, v))
                    ok = 1;
            }
            if (!ok) {
                buf_reset(&sub);
                (void)json_brief(&sub, v, 120);
                n += sv_err(s, err, ptr, "%s is not one of the allowed values",
                            sub.data ? sub.data : "");
            }
        } else if (!strcmp(kw, "const")) {
            if (!json_equal(k, v)) {
                buf_reset(&sub);
                (void)json_brief(&sub, k, 120);
                n += sv_err(s, err, ptr, "must be %s", sub.data ? sub.data : "");
            }
        } else if (!strcmp(kw, "properties")) {
            if (!cJSON_IsObject(v))
                continue;
            cJSON_ArrayForEach(c, k)
            {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, c->string);

                if (!m)
                    continue;
                buf_reset(&sub);
                if (buf_appends(&sub, ptr) == 0 && json_pointer_push(&sub, c->string) == 0)
                    n += validate(s, c, m, sub.data, err, depth + 1);
            }
        } else if (!strcmp(kw, "required")) {
            if (!cJSON_IsObject(v))
                continue;
            cJSON_ArrayForEach(c, k)
            {
                if (cJSON_IsString(c) && !cJSON_GetObjectItemCaseSensitive(v, c->valuestring))
                    n += sv_err(s, err, ptr, "missing required key \"%s\"", c->valuestring);
            }
        } else if (!strcmp(kw, "additionalProperties")) {
            const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");

            if (!cJSON_IsObject(v))
                continue;
            cJSON_ArrayForEach(c, v)
            {
                if (cJSON_GetObjectItemCaseSensitive(props, c->string))
                    continue;
                buf_reset(&sub);
                if (buf_appends(&sub, ptr) != 0 || json_pointer_push(&sub, c->string) != 0)
                    continue;
                if (cJSON_IsFalse(k))
                    n += sv_err(s, err, ptr, "unknown key \"%s\"", c->string);
                else
                    n += validate(s, k, c, sub.data, err, depth + 1);
            }
        } else if (!strcmp(kw, "propertyNames")) {
            if (!cJSON_IsObject(v))
                continue;
            cJSON_ArrayForEach(c, v)
            {
                cJSON *name = cJSON_CreateString(c->string);

                buf_reset(&sub);
                if (name && buf_appends(&sub, ptr) == 0 && json_pointer_push(&sub, c->string) == 0)
                    n += validate(s, k, name, sub.data, err, depth + 1);
                cJSON_Delete(name);
            }
        } else if (!strcmp(kw, "minProperties") || !strcmp(kw, "maxProperties") ||
                   !strcmp(kw, "minItems") || !strcmp(kw, "maxItems")) {
            int obj = kw[3] == 'P';
            double cnt;

            if (obj ? !cJSON_IsObject(v) : !cJSON_IsArray(v))
                continue;
            cnt = cJSON_GetArraySize(v);
            if (kw[1] == 'i' ? cnt < k->valuedouble : cnt > k->valuedouble)
                n += sv_err(s, err, ptr, "%s %s is %.15g, has %.15g", obj ? "object" : "array", kw,
                            k->valuedouble, cnt);
        } else if (!strcmp(kw, "items")) {
            int i = 0;

            if (!cJSON_IsArray(v))
                continue;
            cJSON_ArrayForEach(c, v)
            {
                buf_reset(&sub);
                if (buf_appendf(&sub, "%s/%d", ptr, i++) == 0)
                    n += validate(s, k, c, sub.data, err, depth + 1);
            }
        } else if (!strcmp(kw, "minLength") || !strcmp(kw, "maxLength")) {
            double len;

            if (!cJSON_IsString(v))
                continue;
            len = (double)utf8_len(v->valuestring);
            if (kw[1] == 'i' ? len < k->valuedouble : len > k->valuedouble)
                n += sv_err(s, err, ptr, "string %s is %.15g, has %.15g", kw, k->valuedouble, len);
        } else if (!strcmp(kw, "pattern")) {
            regex_t re;

            if (!cJSON_IsString(v))
                continue;
            if (!cJSON_IsString(k) || regcomp(&re, k->valuestring, REG_EXTENDED | REG_NOSUB)) {
                n += sv_err(s, err, ptr, "schema pattern does not compile");
                continue;
            }
            if (regexec(&re, v->valuestring, 0, NULL, 0) != 0)
                n += sv_err(s, err, ptr, "\"%.120s\" does not match %s", v->valuestring,
                            k->valuestring);
            regfree(&re);
        } else if (!strcmp(kw, "minimum") || !strcmp(kw, "maximum")) {
            if (!cJSON_IsNumber(v))
                continue;
            if (kw[1] == 'i' ? v->valuedouble < k->valuedouble : v->valuedouble > k->valuedouble)
                n += sv_err(s, err, ptr, "%.15g violates %s %.15g", v->valuedouble, kw,
                            k->valuedouble);
        } else if (!strcmp(kw, "oneOf") || !strcmp(kw, "anyOf")) {
            int one = kw[0] == 'o', m;

            buf_reset(&sub);
            m = alternatives(s, k, v, ptr, depth, &sub);
            if (one ? m != 1 : m < 1) {
                if (m > 1)
                    n += sv_err(s, err, ptr, "matches %d alternatives of oneOf, expected one", m);
                else {
                    n++;
                    if (err) {
                        (void)sv_err(s, err, ptr, "matches no alternative of %s; closest:", kw);
                        util_note_n(err, sub.data ? sub.data : "", sub.len);
                    }
                }
            }
        } else if (!strcmp(kw, "allOf")) {
            cJSON_ArrayForEach(c, k)
            {
                n += validate(s, c, v, ptr, err, depth + 1);
            }
        } else if (!strcmp(kw, "not")) {
            if (validate(s, k, v, ptr, NULL, depth + 1) == 0)
                n += sv_err(s, err, ptr, "matches a schema it must not match");
        } else {
            n +=
                sv_err(s, err, ptr, "schema keyword \"%s\" is not supported by this validator", kw);
        }
    }
    buf_cleanup(&sub);
    return n;
}

int schema_validate(const cJSON *root, const cJSON *schema, const cJSON *instance,
                    const char *prefix, struct buf *err)
{
    struct sv s = {root, prefix};

    return validate(&s, schema, instance, "", err, 0);
}

/* ------------------------------------------------------------------ semantics */

#define LINT_MAX_NAMES 4096

struct names {
    char *n[LINT_MAX_NAMES];
    size_t len;
};

static int names_has(const struct names *s, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < s->len; i++)
        if (strlen(s->n[i]) == len && !memcmp(s->n[i], name, len))
            return 1;
    return 0;
}

static void names_add(struct names *s, const char *name)
{
    if (s->len < LINT_MAX_NAMES && !names_has(s, name, strlen(name))) {
        s->n[s->len] = strdup(name);
        if (s->n[s->len])
            s->len++;
    }
}

static void names_free(struct names *s)
{
    while (s->len)
        free(s->n[--s->len]);
}

struct sem {
    const char *file;
    struct buf *out;
    int problems;
    struct names defined;
    int in_parallel;
    const char *where;
};

static void sem_err(struct sem *m, const char *fmt, ...) LS_PRINTF(2, 3);

static void sem_err(struct sem *m, const char *fmt, ...)
{
    va_list ap;
    int rc;

    util_note(m->out, "%s: %s: ", m->file, m->where);
    va_start(ap, fmt);
    rc = buf_vappendf(m->out, fmt, ap);
    va_end(ap);
    (void)rc;
    util_note(m->out, "%c", '\n');
    m->problems++;
}

static void ref_cb(void *ctx, const char *name, size_t len)
{
    struct sem *m = ctx;

    if (len > 7 && !memcmp(name, "client.", 7))
        return;
    if (len == 1 && name[0] == 'i') {
        if (!m->in_parallel)
            sem_err(m, "{{%.*s}} is only defined inside a parallel group", (int)len, name);
        return;
    }
    if (!names_has(&m->defined, name, len))
        sem_err(m, "{{%.*s}} is used before it is defined (vars, capture or built-in)", (int)len,
                name);
}

/* Every {{ref}} in string values and every $var name below j must be defined. */
static void refs(struct sem *m, const cJSON *j)
{
    const cJSON *c;

    if (cJSON_IsString(j)) {
        vars_scan(j->valuestring, ref_cb, m);
        return;
    }
    if (cJSON_IsObject(j) && j->child && !j->child->next && j->child->string &&
        !strcmp(j->child->string, "$var") && cJSON_IsString(j->child)) {
        const char *n = j->child->valuestring;

        if (!names_has(&m->defined, n, strlen(n)) && strcmp(n, "run"))
            sem_err(m, "$var \"%s\" is used before it is captured or defined", n);
        return;
    }
    cJSON_ArrayForEach(c, j)
    {
        refs(m, c);
    }
}

/* Does s mention {{run}} or a {{client.X}}, directly or through case vars? */
static int mentions_run(const cJSON *vars, const char *s, int depth)
{
    const char *p = s;

    if (depth > 16)
        return 0;
    while ((p = strstr(p, "{{")) != NULL) {
        const char *q = p + 2, *e = strstr(q, "}}");

        if (!e)
            break;
        if ((e - q == 3 && !memcmp(q, "run", 3)) || (e - q > 7 && !memcmp(q, "client.", 7)))
            return 1;
        {
            const cJSON *c;

            cJSON_ArrayForEach(c, vars)
            {
                if (strlen(c->string) == (size_t)(e - q) &&
                    !memcmp(c->string, q, (size_t)(e - q)) && cJSON_IsString(c) &&
                    mentions_run(vars, c->valuestring, depth + 1))
                    return 1;
            }
        }
        p = e + 2;
    }
    return 0;
}

static void check_idem(struct sem *m, const cJSON *vars, const cJSON *req)
{
    const cJSON *h;

    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(req, "headers"))
    {
        const char *s;

        if (strcasecmp(h->string, "Idempotency-Key") || !cJSON_IsString(h))
            continue;
        s = h->valuestring;
        if (strspn(s, " \t") == strlen(s))
            continue; /* an empty key tests missing_idempotency_key */
        if (!mentions_run(vars, s, 0))
            sem_err(m, "Idempotency-Key \"%s\" must contain {{run}} so reruns do not collide", s);
    }
}

static void sem_request_step(struct sem *m, const cJSON *vars, const cJSON *st)
{
    const cJSON *c;

    check_idem(m, vars, cJSON_GetObjectItemCaseSensitive(st, "request"));
    refs(m, cJSON_GetObjectItemCaseSensitive(st, "request"));
    refs(m, cJSON_GetObjectItemCaseSensitive(st, "expect"));
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(st, "capture"))
    {
        names_add(&m->defined, c->string);
    }
}

/*
 * Stream steps: {{refs}} in what they send and expect; the captures of each
 * expected event are defined for the events after it (and later steps).
 * Which streams are open where is checked by fixture_check.
 */
static void sem_stream_step(struct sem *m, const cJSON *st)
{
    const cJSON *o, *e, *c;

    if ((o = cJSON_GetObjectItemCaseSensitive(st, "sse_open")) != NULL) {
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "path"));
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "query"));
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "raw_query"));
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "headers"));
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "expect"));
    } else if ((o = cJSON_GetObjectItemCaseSensitive(st, "sse_expect")) != NULL) {
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "ignore"));
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "events"))
        {
            refs(m, cJSON_GetObjectItemCaseSensitive(e, "event"));
            refs(m, cJSON_GetObjectItemCaseSensitive(e, "id"));
            refs(m, cJSON_GetObjectItemCaseSensitive(e, "data"));
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "capture"))
            {
                names_add(&m->defined, c->string);
            }
        }
    } else if ((o = cJSON_GetObjectItemCaseSensitive(st, "sse_check")) != NULL) {
        refs(m, cJSON_GetObjectItemCaseSensitive(o, "retry"));
    }
}

static void semantics(struct sem *m, const cJSON *fx, const char *stem)
{
    const char *id = fixture_str(fx, "id");
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(fx, "vars"), *c, *st;
    struct buf where;
    int i = 0;

    buf_init(&where, 4096);
    m->where = "/id";
    if (id && strcmp(id, stem))
        sem_err(m, "id must equal the file name without .json (\"%s\")", stem);
    names_add(&m->defined, "run");
    names_add(&m->defined, "case");
    cJSON_ArrayForEach(c, vars)
    {
        buf_reset(&where);
        util_note(&where, "%s", "/vars");
        if (json_pointer_push(&where, c->string) != 0)
            continue;
        m->where = where.data;
        refs(m, c);
        names_add(&m->defined, c->string);
    }
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(fx, "steps"))
    {
        const cJSON *p, *r;

        buf_reset(&where);
        util_note(&where, "/steps/%d", i++);
        m->where = where.data;
        if (cJSON_GetObjectItemCaseSensitive(st, "request")) {
            sem_request_step(m, vars, st);
        } else if ((p = cJSON_GetObjectItemCaseSensitive(st, "parallel")) != NULL) {
            m->in_parallel = 1;
            check_idem(m, vars, cJSON_GetObjectItemCaseSensitive(p, "request"));
            cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(p, "requests"))
            {
                check_idem(m, vars, r);
            }
            refs(m, cJSON_GetObjectItemCaseSensitive(p, "request"));
            refs(m, cJSON_GetObjectItemCaseSensitive(p, "requests"));
            refs(m, cJSON_GetObjectItemCaseSensitive(p, "expect_each"));
            m->in_parallel = 0;
        } else if ((p = cJSON_GetObjectItemCaseSensitive(st, "repeat")) != NULL) {
            sem_request_step(m, vars, cJSON_GetObjectItemCaseSensitive(p, "step"));
        } else if (life_step_kind(st)) {
            refs(m, cJSON_GetObjectItemCaseSensitive(st, life_step_kind(st)));
        } else {
            sem_stream_step(m, st);
        }
    }
    names_free(&m->defined);
    buf_cleanup(&where);
}

static void check_requires(struct sem *m, const cJSON *fx, const cJSON *schema)
{
    const cJSON *known = json_pointer_get(schema, "/$defs/feature/enum"), *r;

    m->where = "/requires";
    if (!cJSON_IsArray(known)) {
        sem_err(m, "%s", "the schema has no $defs/feature enum");
        return;
    }
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(fx, "requires"))
    {
        const cJSON *k;
        int ok = 0;

        cJSON_ArrayForEach(k, known)
        {
            if (json_equal(k, r))
                ok = 1;
        }
        if (!ok && cJSON_IsString(r))
            sem_err(m, "unknown feature \"%s\" (see $defs/feature in the schema)", r->valuestring);
    }
}

int lint_run(const char *spec_dir, const char *schema_path)
{
    struct buf sp, out, stem;
    cJSON *schema = NULL;
    char **files = NULL;
    size_t nfiles = 0, i, j, problems = 0;
    char **ids = NULL;
    int selftest = fixture_is_selftest_dir(spec_dir), rc;

    buf_init(&sp, 8192);
    buf_init(&out, 64 * 1024 * 1024);
    buf_init(&stem, 8192);
    if (!schema_path) {
        util_note(&sp, "%s/schema/fixture.schema.json", spec_dir);
        schema_path = sp.data;
    }
    schema = fixture_parse_file(schema_path, &out);
    if (!schema) {
        problems++;
        goto done;
    }
    rc = fixture_list_files(spec_dir, &files, &nfiles);
    if (rc) {
        util_note(&out, "%s/cases: %s\n", spec_dir, ls_strerror(rc));
        problems++;
        goto done;
    }
    ids = calloc(nfiles ? nfiles : 1, sizeof(*ids));
    if (!ids) {
        problems++;
        goto done;
    }
    for (i = 0; i < nfiles; i++) {
        const char *base = strrchr(files[i], '/');
        cJSON *fx = fixture_parse_file(files[i], &out), *copy;
        struct sem m;
        size_t before = out.len;
        const char *id;

        if (!fx) {
            problems++;
            continue;
        }
        base = base ? base + 1 : files[i];
        buf_reset(&stem);
        util_note_n(&stem, base, strlen(base) - 5);
        /* 1. schema; a self-test directory may carry selftest_expect on top of it. */
        copy = cJSON_Duplicate(fx, 1);
        if (copy && selftest)
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "selftest_expect");
        if (copy)
            (void)schema_validate(schema, schema, copy, files[i], &out);
        cJSON_Delete(copy);
        /* 2. the runner's own structural checks. */
        (void)fixture_check(fx, files[i], selftest, &out);
        /* 3. semantics. */
        memset(&m, 0, sizeof(m));
        m.file = files[i];
        m.out = &out;
        semantics(&m, fx, stem.data ? stem.data : "");
        check_requires(&m, fx, schema);
        id = fixture_str(fx, "id");
        if (id) {
            for (j = 0; j < i; j++) {
                if (ids[j] && !strcmp(ids[j], id)) {
                    util_note(&out, "%s: /id: duplicate id \"%s\"\n", files[i], id);
                    break;
                }
            }
            ids[i] = strdup(id);
        }
        for (j = before; j < out.len; j++)
            if (out.data[j] == '\n')
                problems++;
        cJSON_Delete(fx);
    }
    /* The canon vectors, if present, must load too (the vectors step relies on them). */
    {
        struct buf vp;
        FILE *f;

        buf_init(&vp, 8192);
        util_note(&vp, "%s/vectors/canon.json", spec_dir);
        f = fopen(vp.data, "rb");
        if (f) {
            size_t before = out.len;
            cJSON *v;

            fclose(f);
            v = fixture_load_vectors(spec_dir, &out);
            cJSON_Delete(v);
            for (j = before; j < out.len; j++)
                if (out.data[j] == '\n')
                    problems++;
        }
        buf_cleanup(&vp);
    }
done:
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    fprintf(stderr, "lint: %zu fixture file(s), %zu problem(s)\n", nfiles, problems);
    for (i = 0; ids && i < nfiles; i++)
        free(ids[i]);
    free(ids);
    for (i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    cJSON_Delete(schema);
    buf_cleanup(&sp);
    buf_cleanup(&out);
    buf_cleanup(&stem);
    return problems ? 2 : 0;
}
