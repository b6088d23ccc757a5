/*
 * err.c - names and messages for the error space declared in err.h.
 */
#include "err.h"

#include <string.h>

const char *ls_strerror(int err)
{
    switch (err) {
    case LS_OK:
        return "success";
#define LS_ERR_MSG(name, value, msg) \
    case LS_##name:                  \
        return msg;
        LS_ERR_MAP(LS_ERR_MSG)
#undef LS_ERR_MSG
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc returns a static string for known values */
    return "unknown error";
}

const char *ls_err_name(int err)
{
    switch (err) {
    case LS_OK:
        return "OK";
#define LS_ERR_NAME(name, value, msg) \
    case LS_##name:                   \
        return "LS_" #name;
        LS_ERR_MAP(LS_ERR_NAME)
#undef LS_ERR_NAME
    case -ENOMEM:
        return "ENOMEM";
    case -EINVAL:
        return "EINVAL";
    case -EIO:
        return "EIO";
    case -ENOSPC:
        return "ENOSPC";
    case -ENOENT:
        return "ENOENT";
    case -EEXIST:
        return "EEXIST";
    case -EAGAIN:
        return "EAGAIN";
    case -ERANGE:
        return "ERANGE";
    default:
        return "UNKNOWN";
    }
}
