/*
 * match.c - pattern matching of expected JSON against responses; see match.h.
 *
 * Matching never allocates on the success path except for pointer text and
 * regex compilation; messages are only produced when m->msg is set, so the
 * $one_of / $not / $contains sub-matches run quietly and the outer matcher
 * reports one readable line.
 */
#include "match.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BRIEF_MAX 240

static const char *const type_names[] = {"string", "number", "integer", "boolean",
                                         "null",   "array",  "object"};

static const char *const matcher_names[] = {"$any",    "$absent",   "$type",  "$regex", "$var",
                                            "$len",    "$gt",       "$gte",   "$lt",    "$lte",
                                            "$one_of", "$contains", "$exact", "$not"};

const char *match_matcher_name(const cJSON *obj)
{
    const cJSON *c;

    if (!cJSON_IsObject(obj))
        return NULL;
    c = obj->child;
    if (!c || c->next || !c->string || c->string[0] != '$')
        return NULL;
    return c->string;
}

int json_equal(const cJSON *a, const cJSON *b)
{
    const cJSON *x;

    if (!a || !b)
        return a == b;
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if ((a->type & 0xff) != (b->type & 0xff))
        return 0;
    if (cJSON_IsArray(a)) {
        const cJSON *y = b->child;

        for (x = a->child; x; x = x->next, y = y->next)
            if (!y || !json_equal(x, y))
                return 0;
        return y == NULL;
    }
    if (cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return 0;
        cJSON_ArrayForEach(x, a)
        {
            if (!json_equal(x, cJSON_GetObjectItemCaseSensitive(b, x->string)))
                return 0;
        }
        return 1;
    }
    return 1; /* true, false, null: same type means same value */
}

const cJSON *json_pointer_get(const cJSON *doc, const char *ptr)
{
    const cJSON *cur = doc;
    struct buf tok;
    const char *p = ptr;

    if (*p == '\0')
        return doc;
    if (*p != '/')
        return NULL;
    buf_init(&tok, 64 * 1024);
    while (cur && *p == '/') {
        const char *end;

        p++;
        end = strchr(p, '/');
        if (!end)
            end = p + strlen(p);
        buf_reset(&tok);
        for (; p < end; p++) {
            char c = *p;

            if (c == '~' && p + 1 < end && (p[1] == '0' || p[1] == '1')) {
                c = p[1] == '0' ? '~' : '/';
                p++;
            }
            if (buf_appendc(&tok, c) != 0) {
                buf_cleanup(&tok);
                return NULL;
            }
        }
        if (cJSON_IsArray(cur)) {
            char *e;
            long idx;
            const char *t = tok.data ? tok.data : "";

            if (!*t || (t[0] == '0' && t[1]) || t[0] < '0' || t[0] > '9') {
                cur = NULL;
                break;
            }
            idx = strtol(t, &e, 10);
            cur = (*e || idx > 1000000) ? NULL : cJSON_GetArrayItem(cur, (int)idx);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok.data ? tok.data : "");
        } else {
            cur = NULL;
        }
    }
    buf_cleanup(&tok);
    return cur;
}

int json_pointer_push(struct buf *ptr, const char *token)
{
    int rc = buf_appendc(ptr, '/');

    for (; !rc && *token; token++) {
        if (*token == '~')
            rc = buf_appends(ptr, "~0");
        else if (*token == '/')
            rc = buf_appends(ptr, "~1");
        else
            rc = buf_appendc(ptr, *token);
    }
    return rc;
}

int json_brief(struct buf *out, const cJSON *v, size_t max)
{
    char *txt;
    int rc;

    if (!v)
        return buf_appends(out, "(missing)");
    txt = cJSON_PrintUnformatted(v);
    if (!txt)
        return buf_appends(out, "(unprintable)");
    rc = util_append_clean(out, txt, strlen(txt), max, 0);
    free(txt);
    return rc;
}

/* ------------------------------------------------------------------ matching */

static void mismatch(struct match_ctx *m, const char *ptr, const cJSON *expected,
                     const cJSON *actual, const char *why)
{
    int rc = 0;

    if (!m->msg)
        return;
    m->nmsg++;
    if (m->nmsg > MATCH_MAX_MESSAGES) {
        if (m->nmsg == MATCH_MAX_MESSAGES + 1)
            rc = buf_appends(m->msg, "    (further mismatches not shown)\n");
        (void)rc;
        return;
    }
    rc = buf_appendf(m->msg, "    %s: ", *ptr ? ptr : "(body)");
    if (!rc && why)
        rc = buf_appendf(m->msg, "%s; ", why);
    if (!rc)
        rc = buf_appends(m->msg, "expected ");
    if (!rc)
        rc = json_brief(m->msg, expected, BRIEF_MAX);
    if (!rc)
        rc = buf_appends(m->msg, ", got ");
    if (!rc)
        rc = json_brief(m->msg, actual, BRIEF_MAX);
    if (!rc)
        rc = buf_appendc(m->msg, '\n');
    (void)rc;
}

/*
 * Where do a and b (not equal) first differ?  Appends the pointer below ptr
 * (which holds the pointer of a and b) and sets *da / *db to the values
 * there (NULL = missing), so a $var mismatch names the member that differs
 * instead of quoting two long documents.  Returns 0 or a buf error.
 */
static int first_diff(const cJSON *a, const cJSON *b, struct buf *ptr, const cJSON **da,
                      const cJSON **db, int depth)
{
    const cJSON *c, *o;
    int i = 0, rc;

    *da = a;
    *db = b;
    if (depth > 64 || !a || !b)
        return 0;
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        cJSON_ArrayForEach(c, a)
        {
            o = cJSON_GetObjectItemCaseSensitive(b, c->string);
            if (o && json_equal(c, o))
                continue;
            rc = json_pointer_push(ptr, c->string);
            return rc ? rc : first_diff(c, o, ptr, da, db, depth + 1);
        }
        cJSON_ArrayForEach(c, b)
        {
            if (cJSON_GetObjectItemCaseSensitive(a, c->string))
                continue;
            *da = NULL;
            *db = c;
            return json_pointer_push(ptr, c->string);
        }
        return 0;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        for (c = a->child, o = b->child; c || o;
             c = c ? c->next : NULL, o = o ? o->next : NULL, i++) {
            if (c && o && json_equal(c, o))
                continue;
            rc = buf_appendf(ptr, "/%d", i);
            return rc ? rc : first_diff(c, o, ptr, da, db, depth + 1);
        }
    }
    return 0;
}

static int match_in(struct match_ctx *m, const cJSON *exp, const cJSON *act, const char *ptr,
                    int exact);

/* A quiet sub-match: used by $one_of, $contains and $not, which report as a whole. */
static int quiet(struct match_ctx *m, const cJSON *exp, const cJSON *act, const char *ptr,
                 int exact)
{
    struct match_ctx q = *m;

    q.msg = NULL;
    q.nmsg = 0;
    return match_in(&q, exp, act, ptr, exact);
}

/* The numeric value of actual for $gt & co; header strings are parsed when numeric. */
static int numeric(const struct match_ctx *m, const cJSON *act, double *out)
{
    if (cJSON_IsNumber(act)) {
        *out = act->valuedouble;
        return 1;
    }
    if (m->header_mode && cJSON_IsString(act) && act->valuestring[0]) {
        char *end;

        *out = strtod(act->valuestring, &end);
        return *end == '\0';
    }
    return 0;
}

static int type_is(const cJSON *act, const char *t)
{
    if (!strcmp(t, "string"))
        return cJSON_IsString(act);
    if (!strcmp(t, "number"))
        return cJSON_IsNumber(act);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(act) && util_is_integral(act->valuedouble);
    if (!strcmp(t, "boolean"))
        return cJSON_IsBool(act);
    if (!strcmp(t, "null"))
        return cJSON_IsNull(act);
    if (!strcmp(t, "array"))
        return cJSON_IsArray(act);
    if (!strcmp(t, "object"))
        return cJSON_IsObject(act);
    return 0;
}

static int regex_ok(struct match_ctx *m, const char *pattern, const char *s, const char *ptr,
                    const cJSON *exp, const cJSON *act)
{
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);

    if (rc != 0) {
        mismatch(m, ptr, exp, act, "invalid regular expression");
        return 0;
    }
    rc = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    return rc == 0;
}

static int match_matcher(struct match_ctx *m, const char *name, const cJSON *arg, const cJSON *exp,
                         const cJSON *act, const char *ptr, int exact)
{
    double x, a;
    int ok;
    const cJSON *c;

    if (!strcmp(name, "$absent")) {
        if (act)
            mismatch(m, ptr, exp, act, "must be absent");
        return act == NULL;
    }
    if (!strcmp(name, "$not")) {
        ok = !quiet(m, arg, act, ptr, exact);
        if (!ok)
            mismatch(m, ptr, exp, act, NULL);
        return ok;
    }
    if (!strcmp(name, "$one_of")) {
        cJSON_ArrayForEach(c, arg)
        {
            if (quiet(m, c, act, ptr, exact))
                return 1;
        }
        mismatch(m, ptr, exp, act, "no alternative matched");
        return 0;
    }
    if (!act) {
        mismatch(m, ptr, exp, act, NULL);
        return 0;
    }
    if (!strcmp(name, "$any"))
        return 1;
    if (!strcmp(name, "$type")) {
        ok = type_is(act, arg->valuestring);
        if (!ok)
            mismatch(m, ptr, exp, act, "wrong type");
        return ok;
    }
    if (!strcmp(name, "$regex")) {
        ok = cJSON_IsString(act) && regex_ok(m, arg->valuestring, act->valuestring, ptr, exp, act);
        if (!ok)
            mismatch(m, ptr, exp, act, cJSON_IsString(act) ? NULL : "not a string");
        return ok;
    }
    if (!strcmp(name, "$var")) {
        cJSON *val = vars_lookup(m->vars, arg->valuestring);

        if (!val) {
            mismatch(m, ptr, exp, act, "variable is not defined");
            return 0;
        }
        ok = json_equal(val, act);
        if (!ok) {
            const cJSON *dv, *da;
            struct buf where;

            buf_init(&where, 64 * 1024);
            if (buf_appends(&where, ptr) == 0 && first_diff(val, act, &where, &dv, &da, 0) == 0 &&
                (dv != val || da != act)) {
                struct buf why;

                buf_init(&why, 1024);
                util_note(&why, "differs from $var %s here", arg->valuestring);
                mismatch(m, where.data, dv, da, why.data);
                buf_cleanup(&why);
            } else {
                mismatch(m, ptr, val, act, "differs from the variable");
            }
            buf_cleanup(&where);
        }
        cJSON_Delete(val);
        return ok;
    }
    if (!strcmp(name, "$len")) {
        double len;

        if (cJSON_IsString(act))
            len = (double)strlen(act->valuestring);
        else if (cJSON_IsArray(act) || cJSON_IsObject(act))
            len = cJSON_GetArraySize(act);
        else {
            mismatch(m, ptr, exp, act, "has no length");
            return 0;
        }
        ok = cJSON_IsNumber(arg) && len == arg->valuedouble;
        if (!ok) {
            char why[64];

            snprintf(why, sizeof(why), "length is %.0f", len);
            mismatch(m, ptr, exp, act, why);
        }
        return ok;
    }
    if (!strcmp(name, "$gt") || !strcmp(name, "$gte") || !strcmp(name, "$lt") ||
        !strcmp(name, "$lte")) {
        if (!cJSON_IsNumber(arg) || !numeric(m, act, &a)) {
            mismatch(m, ptr, exp, act, "not a number");
            return 0;
        }
        x = arg->valuedouble;
        if (!strcmp(name, "$gt"))
            ok = a > x;
        else if (!strcmp(name, "$gte"))
            ok = a >= x;
        else if (!strcmp(name, "$lt"))
            ok = a < x;
        else
            ok = a <= x;
        if (!ok)
            mismatch(m, ptr, exp, act, NULL);
        return ok;
    }
    if (!strcmp(name, "$contains")) {
        if (cJSON_IsArray(act)) {
            cJSON_ArrayForEach(c, act)
            {
                if (quiet(m, arg, c, ptr, exact))
                    return 1;
            }
        }
        mismatch(m, ptr, exp, act, cJSON_IsArray(act) ? "no element matched" : "not an array");
        return 0;
    }
    if (!strcmp(name, "$exact"))
        return match_in(m, arg, act, ptr, 1);
    mismatch(m, ptr, exp, act, "unknown matcher");
    return 0;
}

static int match_in(struct match_ctx *m, const cJSON *exp, const cJSON *act, const char *ptr,
                    int exact)
{
    const char *name = match_matcher_name(exp);
    const cJSON *c;
    struct buf sub;
    int ok = 1;

    if (name)
        return match_matcher(m, name, exp->child, exp, act, ptr, exact);
    if (!act) {
        mismatch(m, ptr, exp, act, NULL);
        return 0;
    }
    if (cJSON_IsObject(exp)) {
        if (!cJSON_IsObject(act)) {
            mismatch(m, ptr, exp, act, "not an object");
            return 0;
        }
        buf_init(&sub, 64 * 1024);
        cJSON_ArrayForEach(c, exp)
        {
            buf_reset(&sub);
            if (buf_appends(&sub, ptr) != 0 || json_pointer_push(&sub, c->string) != 0) {
                ok = 0;
                break;
            }
            if (!match_in(m, c, cJSON_GetObjectItemCaseSensitive(act, c->string), sub.data, exact))
                ok = 0;
        }
        if (ok && exact) {
            cJSON_ArrayForEach(c, act)
            {
                if (!cJSON_GetObjectItemCaseSensitive(exp, c->string)) {
                    buf_reset(&sub);
                    if (buf_appends(&sub, ptr) == 0 && json_pointer_push(&sub, c->string) == 0)
                        mismatch(m, sub.data, NULL, c, "unexpected key under $exact");
                    ok = 0;
                }
            }
        }
        buf_cleanup(&sub);
        return ok;
    }
    if (cJSON_IsArray(exp)) {
        int n = cJSON_GetArraySize(exp), i = 0;

        if (!cJSON_IsArray(act)) {
            mismatch(m, ptr, exp, act, "not an array");
            return 0;
        }
        if (cJSON_GetArraySize(act) != n) {
            char why[80];

            snprintf(why, sizeof(why), "array length %d, expected %d", cJSON_GetArraySize(act), n);
            mismatch(m, ptr, exp, act, why);
            return 0;
        }
        buf_init(&sub, 64 * 1024);
        for (c = exp->child; c; c = c->next, i++) {
            buf_reset(&sub);
            if (buf_appendf(&sub, "%s/%d", ptr, i) != 0) {
                ok = 0;
                break;
            }
            if (!match_in(m, c, cJSON_GetArrayItem(act, i), sub.data, exact))
                ok = 0;
        }
        buf_cleanup(&sub);
        return ok;
    }
    ok = json_equal(exp, act);
    if (!ok)
        mismatch(m, ptr, exp, act, NULL);
    return ok;
}

int match_value(struct match_ctx *m, const cJSON *expected, const cJSON *actual, const char *ptr)
{
    return match_in(m, expected, actual, ptr, 0);
}

/* ------------------------------------------------------------------ checking */

static void problem(struct buf *err, const char *where, const char *fmt, ...) LS_PRINTF(3, 4);

static void problem(struct buf *err, const char *where, const char *fmt, ...)
{
    va_list ap;
    int rc = buf_appendf(err, "%s: ", *where ? where : "/");

    va_start(ap, fmt);
    if (!rc)
        rc = buf_vappendf(err, fmt, ap);
    va_end(ap);
    if (!rc)
        rc = buf_appendc(err, '\n');
    (void)rc;
}

/* A "{{name}}" placeholder is allowed wherever a number is. */
static int is_num_or_var(const cJSON *a)
{
    const char *n;
    size_t l;

    return cJSON_IsNumber(a) || (cJSON_IsString(a) && vars_whole(a->valuestring, &n, &l));
}

static int check_in(const cJSON *p, const char *where, struct buf *err, int depth);

static int check_matcher(const cJSON *p, const char *where, struct buf *err, int depth)
{
    const char *name = p->child->string;
    const cJSON *arg = p->child;
    size_t i;
    int known = 0, bad = 0;
    struct buf sub;

    for (i = 0; i < sizeof(matcher_names) / sizeof(matcher_names[0]); i++)
        if (!strcmp(name, matcher_names[i]))
            known = 1;
    if (!known) {
        problem(err, where, "unknown matcher %s", name);
        return LS_EPARSE;
    }
    if (!strcmp(name, "$any") || !strcmp(name, "$absent")) {
        bad = !cJSON_IsTrue(arg);
    } else if (!strcmp(name, "$type")) {
        bad = 1;
        for (i = 0; cJSON_IsString(arg) && i < sizeof(type_names) / sizeof(type_names[0]); i++)
            if (!strcmp(arg->valuestring, type_names[i]))
                bad = 0;
    } else if (!strcmp(name, "$regex")) {
        bad = !cJSON_IsString(arg);
        if (!bad && !strstr(arg->valuestring, "{{")) {
            regex_t re;

            if (regcomp(&re, arg->valuestring, REG_EXTENDED | REG_NOSUB) != 0) {
                problem(err, where, "$regex does not compile as a POSIX ERE: %s", arg->valuestring);
                return LS_EPARSE;
            }
            regfree(&re);
        }
    } else if (!strcmp(name, "$var")) {
        bad = !cJSON_IsString(arg) || !vars_is_name(arg->valuestring, strlen(arg->valuestring));
    } else if (!strcmp(name, "$len")) {
        bad =
            !is_num_or_var(arg) ||
            (cJSON_IsNumber(arg) && (arg->valuedouble < 0 || !util_is_integral(arg->valuedouble)));
    } else if (name[1] == 'g' || name[1] == 'l') { /* $gt $gte $lt $lte */
        bad = !is_num_or_var(arg);
    } else if (!strcmp(name, "$one_of")) {
        const cJSON *c;
        int rc = 0, k = 0;

        if (!cJSON_IsArray(arg) || cJSON_GetArraySize(arg) == 0) {
            problem(err, where, "%s needs a non-empty array", name);
            return LS_EPARSE;
        }
        buf_init(&sub, 64 * 1024);
        cJSON_ArrayForEach(c, arg)
        {
            buf_reset(&sub);
            if (buf_appendf(&sub, "%s/$one_of/%d", where, k++) == 0 &&
                check_in(c, sub.data, err, depth + 1) != 0)
                rc = LS_EPARSE;
        }
        buf_cleanup(&sub);
        return rc;
    } else { /* $contains $exact $not take a pattern */
        int rc;

        buf_init(&sub, 64 * 1024);
        rc = buf_appendf(&sub, "%s/%s", where, name);
        rc = rc ? rc : check_in(arg, sub.data, err, depth + 1);
        buf_cleanup(&sub);
        return rc ? LS_EPARSE : 0;
    }
    if (bad) {
        problem(err, where, "bad argument for %s", name);
        return LS_EPARSE;
    }
    return 0;
}

/* Patterns nest as deep as the JSON they describe; cap it so a hostile fixture cannot. */
#define MATCH_MAX_DEPTH 64

static int check_in(const cJSON *p, const char *where, struct buf *err, int depth)
{
    const cJSON *c;
    struct buf sub;
    int rc = 0, k = 0;

    if (depth > MATCH_MAX_DEPTH) {
        problem(err, where, "pattern nested deeper than %d levels", MATCH_MAX_DEPTH);
        return LS_EPARSE;
    }
    if (match_matcher_name(p))
        return check_matcher(p, where, err, depth);
    if (!cJSON_IsObject(p) && !cJSON_IsArray(p))
        return 0;
    buf_init(&sub, 64 * 1024);
    cJSON_ArrayForEach(c, p)
    {
        buf_reset(&sub);
        if (cJSON_IsObject(p)) {
            if (c->string[0] == '$') {
                problem(err, where, "matcher %s must be the only key of its object", c->string);
                rc = LS_EPARSE;
                continue;
            }
            if (buf_appends(&sub, where) != 0 || json_pointer_push(&sub, c->string) != 0)
                continue;
        } else if (buf_appendf(&sub, "%s/%d", where, k++) != 0) {
            continue;
        }
        if (check_in(c, sub.data, err, depth + 1) != 0)
            rc = LS_EPARSE;
    }
    buf_cleanup(&sub);
    return rc;
}

int match_check(const cJSON *pattern, const char *where, struct buf *err)
{
    return check_in(pattern, where, err, 0);
}
