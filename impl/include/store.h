/*
 * store.h - the item records of one workspace: labels, version, updated_at/by.
 *
 * The set of items is fixed when the store is loaded (a scan of the gallery
 * tree); records change only through store_write(), the single commit path of
 * the server.  Every accepted change gets the next value of one server-wide
 * commit sequence (the future SSE event id and log record id).  A commit hook,
 * when set, runs under the store lock after the new record is built and before
 * it becomes visible: if the hook fails, nothing changes.  That is where the
 * durability work appends to the write-ahead log before acknowledging.
 *
 * Thread-safety: every function may be called concurrently, except
 * store_new/store_free/store_add_item/store_load_tree/store_set_commit_ops/
 * store_restore,
 * which belong to start-up and shut-down.  Writes are serialized; reads copy.
 * No HTTP in here.
 */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "err.h"
#include "patch.h"

#define STORE_MAX_ITEMS (1u << 20)
#define STORE_MAX_ACTOR 128

struct store;

/* One item, copied out of the store; the caller owns every pointer. */
struct store_record {
    char *path; /* canonical path */
    struct labels labels;
    unsigned long long version; /* >= 1 */
    long long updated_at_us;    /* microseconds since the epoch; 0 = never written */
    char *updated_by;           /* NULL = never written */
};

/* A write request: PATCH or PUT after parsing and validation. Borrowed pointers. */
struct store_write {
    const char *path; /* canonical */
    const struct patch *patch;
    bool has_expected;            /* precondition present */
    unsigned long long expected;  /* expected current version */
    const char *actor;            /* becomes updated_by on change */
    long long now_us;             /* becomes updated_at on change */
    const char *mutation_id;      /* the Idempotency-Key or NULL; for the hooks */
    const char *idem_scope;       /* with mutation_id: the key's scope (client id) */
    const unsigned char *idem_fp; /* with mutation_id: the request fingerprint (32 bytes) */
};

/* What store_write() did. */
enum store_outcome {
    STORE_APPLIED = 0,   /* changed; version bumped; seq assigned */
    STORE_NOOP,          /* nothing changed; record untouched */
    STORE_CONFLICT,      /* expected != current version; rec = current */
    STORE_TOO_MANY_TAGS, /* the result would exceed PATCH_MAX_TAGS_ITEM */
    STORE_NOT_FOUND,     /* no such item */
};

struct store_result {
    enum store_outcome outcome;
    unsigned changed;        /* PATCH_CHANGED_* bits for STORE_APPLIED */
    unsigned long long seq;  /* commit sequence for STORE_APPLIED, else 0 */
    struct store_record rec; /* the record after the write (or current); owned */
};

/*
 * The commit path's three hooks, for whoever must see a change before it is
 * visible (the event hub; the write-ahead log).  All are optional.
 *
 * prepare - with the store lock held, once the new record is built: take the
 *           commit sequence number (*seq, preset to the store's own next
 *           number), queue what must become durable, and return an opaque
 *           ticket.  Non-zero refuses the write: nothing changes and
 *           store_write returns that error.
 * wait    - without the lock: block until the change may become visible
 *           (its log record is on disk).  Non-zero abandons the write.
 * finish  - with the lock held again, right after the record was swapped in
 *           (ok) or abandoned (!ok): publish or cancel, free the ticket.
 *
 * While one write to an item is between prepare and finish, later writes to
 * the same item wait; writes to other items go ahead, so one log sync can
 * cover many of them (group commit).  Readers see the old record until the
 * new one is durable.
 */
struct store_commit_ops {
    int (*prepare)(void *ctx, const struct store_write *w, const struct store_record *next,
                   unsigned changed, unsigned long long *seq, void **ticket);
    int (*wait)(void *ctx, void *ticket);
    void (*finish)(void *ctx, void *ticket, const struct store_record *rec, bool ok);
};

/* store_new - an empty store. NULL on allocation failure. */
struct store *store_new(void);

/* store_free - free the store and every record. NULL-safe. */
void store_free(struct store *s);

/*
 * store_add_item - register one item (a canonical path, copied).  Start-up
 * only.  Returns 0, LS_EDUP if it exists, LS_EPATH if the path is not
 * canonical, LS_ETOOMANY past STORE_MAX_ITEMS, -ENOMEM.
 */
LS_MUST_CHECK int store_add_item(struct store *s, const char *path);

/*
 * store_load_tree - scan root recursively and add every item (contract §1.3:
 * .png .jpg .jpeg .webp, case-insensitive; dot names, symlinks and
 * non-canonical names skipped with a warning).  *nitems gets the count.
 * Returns 0 or a negative error (-errno of opendir on root, LS_ETOOMANY ...).
 */
LS_MUST_CHECK int store_load_tree(struct store *s, const char *root, size_t *nitems);

/* store_count - number of items. */
size_t store_count(const struct store *s);

/* store_seq - the last commit sequence number handed out (0 before any write). */
unsigned long long store_seq(struct store *s);

/* store_set_commit_ops - install the hooks (NULL to remove). Start-up only; copied. */
void store_set_commit_ops(struct store *s, const struct store_commit_ops *ops, void *ctx);

/*
 * store_restore - start-up only: set a record from the durable state (log
 * replay) if its version is greater than the current one; the commit
 * sequence moves up to seq.  Returns 0, LS_ENOTFOUND (not an item of this
 * gallery), or -ENOMEM.
 */
LS_MUST_CHECK int store_restore(struct store *s, const char *path, const struct labels *labels,
                                unsigned long long version, long long updated_at_us,
                                const char *updated_by, unsigned long long seq);

/*
 * store_get - copy the record of path into *out.  Returns 0, LS_ENOTFOUND, or
 * -ENOMEM.  On failure *out is zeroed (safe to clean up).
 */
LS_MUST_CHECK int store_get(struct store *s, const char *path, struct store_record *out);

/* store_has_item - whether path names an item. */
bool store_has_item(struct store *s, const char *path);

/* store_is_folder - whether path (canonical) names a folder: "/" or a prefix of an item. */
bool store_is_folder(struct store *s, const char *path);

/*
 * store_write - the one commit path.  Under the store lock: look the item up,
 * check the precondition, apply the patch to a copy, and if anything changed
 * bump the version, stamp updated_at/updated_by, take the next commit
 * sequence, call the commit hook, and swap the record in.  *res is filled for
 * every outcome (res->rec is the new record, or the current one for a no-op or
 * a conflict; empty for not-found).  Returns 0 when *res->outcome says what
 * happened, or a negative error (-ENOMEM, or the hook's error) with nothing
 * changed and *res empty.  Free res with store_result_cleanup.
 */
LS_MUST_CHECK int store_write(struct store *s, const struct store_write *w,
                              struct store_result *res);

/*
 * store_list_folder - the direct children of a folder: sub-folder paths and
 * item records, both sorted bytewise.  Returns 0, LS_ENOTFOUND if path is not
 * a folder, -ENOMEM.  Free with store_folder_cleanup.
 */
struct store_folder {
    char **folders;
    size_t nfolders;
    struct store_record *items;
    size_t nitems;
};
LS_MUST_CHECK int store_list_folder(struct store *s, const char *path, struct store_folder *out);
void store_folder_cleanup(struct store_folder *f);

/* store_record_cleanup / store_result_cleanup - free the owned parts. NULL-safe. */
void store_record_cleanup(struct store_record *r);
void store_result_cleanup(struct store_result *r);

/*
 * store_record_to_json - the wire form of a record (contract §2, keys in
 * order: path tags notes star metrics version updated_at updated_by).
 * Returns a new object (cJSON_Delete it) or NULL on allocation failure.
 */
cJSON *store_record_to_json(const struct store_record *r);

/*
 * store_format_time - RFC 3339 UTC with microseconds, "YYYY-MM-DDTHH:MM:SS.ffffffZ".
 * out must hold at least 28 bytes.
 */
void store_format_time(long long us, char *out, size_t outcap);

#endif
