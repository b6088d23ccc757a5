/*
 * vars.c - variable table and {{name}} substitution; see vars.h.
 *
 * A linear table is enough: a case binds a handful of names, and lookups
 * happen once per string per request.
 */
#include "vars.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct var {
    char *name;
    cJSON *value;
};

struct vars {
    char *run;
    struct var *v;
    size_t n, cap;
};

struct vars *vars_new(const char *run_id)
{
    struct vars *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->run = strdup(run_id);
    if (!v->run) {
        free(v);
        return NULL;
    }
    return v;
}

void vars_free(struct vars *v)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; i < v->n; i++) {
        free(v->v[i].name);
        cJSON_Delete(v->v[i].value);
    }
    free(v->v);
    free(v->run);
    free(v);
}

static struct var *find(const struct vars *v, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < v->n; i++)
        if (strlen(v->v[i].name) == len && memcmp(v->v[i].name, name, len) == 0)
            return &v->v[i];
    return NULL;
}

int vars_set(struct vars *v, const char *name, const cJSON *value)
{
    struct var *slot = find(v, name, strlen(name));
    cJSON *copy = cJSON_Duplicate(value, 1);

    if (!copy)
        return -ENOMEM;
    if (slot) {
        cJSON_Delete(slot->value);
        slot->value = copy;
        return 0;
    }
    if (v->n >= VARS_MAX) {
        cJSON_Delete(copy);
        return LS_ETOOMANY;
    }
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 16;
        struct var *nv = realloc(v->v, ncap * sizeof(*nv));

        if (!nv) {
            cJSON_Delete(copy);
            return -ENOMEM;
        }
        v->v = nv;
        v->cap = ncap;
    }
    v->v[v->n].name = strdup(name);
    if (!v->v[v->n].name) {
        cJSON_Delete(copy);
        return -ENOMEM;
    }
    v->v[v->n].value = copy;
    v->n++;
    return 0;
}

int vars_set_string(struct vars *v, const char *name, const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    int rc;

    if (!j)
        return -ENOMEM;
    rc = vars_set(v, name, j);
    cJSON_Delete(j);
    return rc;
}

int vars_set_number(struct vars *v, const char *name, double d)
{
    cJSON *j = cJSON_CreateNumber(d);
    int rc;

    if (!j)
        return -ENOMEM;
    rc = vars_set(v, name, j);
    cJSON_Delete(j);
    return rc;
}

void vars_unset(struct vars *v, const char *name)
{
    struct var *slot = find(v, name, strlen(name));

    if (!slot)
        return;
    free(slot->name);
    cJSON_Delete(slot->value);
    *slot = v->v[--v->n];
}

static cJSON *lookup_n(const struct vars *v, const char *name, size_t len)
{
    struct var *slot;

    if (len > 7 && memcmp(name, "client.", 7) == 0) {
        struct buf b;
        cJSON *j = NULL;

        buf_init(&b, VARS_MAX_TEXT);
        if (buf_appendf(&b, "%s-%.*s", v->run, (int)(len - 7), name + 7) == 0)
            j = cJSON_CreateString(b.data);
        buf_cleanup(&b);
        return j;
    }
    if (len == 3 && memcmp(name, "run", 3) == 0)
        return cJSON_CreateString(v->run);
    slot = find(v, name, len);
    return slot ? cJSON_Duplicate(slot->value, 1) : NULL;
}

cJSON *vars_lookup(const struct vars *v, const char *name)
{
    return lookup_n(v, name, strlen(name));
}

int vars_is_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int vars_whole(const char *s, const char **name, size_t *len)
{
    size_t n = strlen(s);

    if (n < 5 || memcmp(s, "{{", 2) != 0 || memcmp(s + n - 2, "}}", 2) != 0)
        return 0;
    if (!vars_is_name(s + 2, n - 4))
        return 0;
    *name = s + 2;
    *len = n - 4;
    return 1;
}

/* Find the next reference at or after s: returns its "{{" or NULL; name and len receive the name.
 */
static const char *next_ref(const char *s, const char **name, size_t *len)
{
    const char *p = s;

    while ((p = strstr(p, "{{")) != NULL) {
        const char *q = p + 2;
        const char *end = strstr(q, "}}");

        if (end && vars_is_name(q, (size_t)(end - q))) {
            *name = q;
            *len = (size_t)(end - q);
            return p;
        }
        p++;
    }
    return NULL;
}

void vars_scan(const char *s, void (*cb)(void *ctx, const char *name, size_t len), void *ctx)
{
    const char *name;
    size_t len;
    const char *p = s;

    while ((p = next_ref(p, &name, &len)) != NULL) {
        cb(ctx, name, len);
        p = name + len + 2;
    }
}

int vars_value_text(const cJSON *val, struct buf *out)
{
    char *txt;
    int rc;

    if (cJSON_IsString(val))
        return buf_appends(out, val->valuestring);
    if (cJSON_IsNumber(val))
        return util_fmt_number(out, val->valuedouble);
    if (cJSON_IsTrue(val))
        return buf_appends(out, "true");
    if (cJSON_IsFalse(val))
        return buf_appends(out, "false");
    if (cJSON_IsNull(val))
        return buf_appends(out, "null");
    txt = cJSON_PrintUnformatted(val);
    if (!txt)
        return -ENOMEM;
    rc = buf_appends(out, txt);
    free(txt);
    return rc;
}

int vars_subst_text(const struct vars *v, const char *s, struct buf *out, struct buf *err)
{
    const char *p = s, *ref, *name;
    size_t len;
    int rc = 0;

    while (!rc && (ref = next_ref(p, &name, &len)) != NULL) {
        cJSON *val;

        rc = buf_append(out, p, (size_t)(ref - p));
        if (rc)
            break;
        val = lookup_n(v, name, len);
        if (!val) {
            if (err)
                util_note(err, "undefined variable {{%.*s}}", (int)len, name);
            return LS_ENOTFOUND;
        }
        rc = vars_value_text(val, out);
        cJSON_Delete(val);
        p = name + len + 2;
    }
    if (!rc)
        rc = buf_appends(out, p);
    return rc;
}

cJSON *vars_subst(const struct vars *v, const cJSON *src, struct buf *err)
{
    cJSON *copy, *child;

    if (cJSON_IsString(src)) {
        const char *name;
        size_t len;
        struct buf text;

        if (vars_whole(src->valuestring, &name, &len)) {
            copy = lookup_n(v, name, len);
            if (!copy && err)
                util_note(err, "undefined variable {{%.*s}}", (int)len, name);
            return copy;
        }
        if (!strstr(src->valuestring, "{{"))
            return cJSON_CreateString(src->valuestring);
        buf_init(&text, VARS_MAX_TEXT);
        if (vars_subst_text(v, src->valuestring, &text, err) != 0) {
            buf_cleanup(&text);
            return NULL;
        }
        copy = cJSON_CreateString(text.data ? text.data : "");
        buf_cleanup(&text);
        return copy;
    }
    if (!cJSON_IsArray(src) && !cJSON_IsObject(src))
        return cJSON_Duplicate(src, 0);
    copy = cJSON_IsArray(src) ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!copy)
        return NULL;
    cJSON_ArrayForEach(child, src)
    {
        cJSON *sub = vars_subst(v, child, err);

        if (!sub) {
            cJSON_Delete(copy);
            return NULL;
        }
        if (cJSON_IsArray(src))
            cJSON_AddItemToArray(copy, sub);
        else
            cJSON_AddItemToObject(copy, child->string, sub);
    }
    return copy;
}
