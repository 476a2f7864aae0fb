/*
 * blob_dir.c — the embedded blob store: objects are files under a directory (URL file://PATH or
 * a plain path). put() writes a temporary file, fsyncs it, renames it over the key and fsyncs
 * the directory, so an object is whole or absent even across a crash.
 */
#include "ms_blob.h"
#include "ms_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct blob_dir {
    char *root;
    const ms_log *log;
} blob_dir;

static ms_err dir_open(const char *url, const ms_config *cfg, const ms_log *log, void **ctx,
                       ms_error *err)
{
    (void)cfg;
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
    if (!*path) return ms_error_set(err, MS_ERR_CONFIG, "snapshots.url: empty directory path");
    blob_dir *d = ms_xcalloc(1, sizeof *d);
    d->root = ms_xstrdup(path);
    d->log = log;
    *ctx = d;
    return MS_OK;
}

/* mkdir -p of the directory part of path. */
static int mkdirs(char *path)
{
    for (char *q = path + 1; *q; q++) {
        if (*q != '/') continue;
        *q = '\0';
        int rc = mkdir(path, 0755);
        *q = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static ms_err dir_put(void *ctx, const char *key, const void *data, size_t len, ms_error *err)
{
    blob_dir *d = ctx;
    if (strstr(key, "..") || key[0] == '/')
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "blob key '%s' is not a relative path",
                            key);
    ms_buf path = MS_BUF_INIT, tmp = MS_BUF_INIT;
    ms_buf_printf(&path, "%s/%s", d->root, key);
    ms_buf_printf(&tmp, "%s.tmp.%d", path.data, (int)getpid());
    ms_err rc = MS_OK;
    int fd = -1;
    if (mkdirs(path.data) != 0 ||
        (fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = ms_error_set(err, MS_ERR_IO, "cannot create %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            rc = ms_error_set(err, MS_ERR_IO, "cannot write %s: %s", tmp.data, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    int synced = fsync(fd), closed = close(fd);
    if (synced != 0 || closed != 0) {
        fd = -1;
        rc = ms_error_set(err, MS_ERR_IO, "cannot sync %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, path.data) != 0) {
        rc = ms_error_set(err, MS_ERR_IO, "cannot rename to %s: %s", path.data, strerror(errno));
        goto out;
    }
    char *slash = strrchr(path.data, '/');
    *slash = '\0';
    int dfd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0) close(fd);
    if (rc != MS_OK) unlink(tmp.data);
    ms_buf_free(&path);
    ms_buf_free(&tmp);
    return rc;
}

static void dir_close(void *ctx)
{
    blob_dir *d = ctx;
    if (!d) return;
    free(d->root);
    free(d);
}

const ms_blob_ops ms_blob_dir = {
    .version = MS_BLOB_OPS_VERSION,
    .name = "dir",
    .scheme = "file",
    .open = dir_open,
    .put = dir_put,
    .close = dir_close,
};
