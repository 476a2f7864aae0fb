/*
 * store_pg_notify.c — commit notifications between the workers on one PostgreSQL store
 * (ms_store_ops.watch, version 4).
 *
 * Every commit that writes change records sends, inside its transaction, NOTIFY
 * metasync_changes with the payload "<last seq> <tenant>" (store_pg_apply.c, W_SEQ_SET);
 * PostgreSQL delivers it at COMMIT, to every listening session, the committer's own included.
 * The listener is one thread per process with a connection of its own that LISTENs on the
 * channel, waits in poll() on the connection's socket and a stop pipe, and hands each
 * notification to the watcher's callback (the engine: long-polls, SSE streams and sink runners
 * wake up). When the connection breaks it reconnects (after 1 s) and reports (NULL, 0):
 * notifications sent in between are lost, so the waiters read the store again.
 *
 * A half-open link (the server's host gone without a FIN or RST) would leave poll() waiting
 * forever, so the connection has TCP keepalives (unless store.url sets its own) and, after
 * store.listen_check_ms without traffic, the listener sends "SELECT 1": no answer within as long
 * again (or a send that fails) counts as a broken connection.
 */
#include "store_pg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECONNECT_MS 1000

/* Opens the listener's connection and LISTENs; NULL (logged) on failure. */
static PGconn *listen_connect(pg_store *s)
{
    ms_error err;
    ms_error_clear(&err);
    static const char *const kw[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                     "keepalives_count", NULL};
    static const char *const val[] = {"1", "30", "10", "3", NULL};
    PGconn *c = pg_connect_with(s->url, kw, val, &err);
    if (c) {
        PGresult *r = PQexec(c, "LISTEN " PG_NOTIFY_CHANNEL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_fail(&err, c, r, "listen");
            PQfinish(c);
            c = NULL;
        }
        PQclear(r);
    }
    if (!c) ms_log_warn(s->log, "store: commit notifications: %s", err.detail);
    return c;
}

/* Hands every notification received on c to the callback. */
static void deliver(pg_store *s, PGconn *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
        char *sp = NULL;
        unsigned long long seq = strtoull(n->extra, &sp, 10);
        if (sp && *sp == ' ' && sp[1]) s->watch_cb(s->watch_ud, sp + 1, (uint64_t)seq);
        PQfreemem(n);
    }
}

/* Reads the answers of the pings that have arrived; false when one is still awaited. */
static bool ping_answered(PGconn *c)
{
    while (!PQisBusy(c)) {
        PGresult *r = PQgetResult(c);
        if (!r) return true;
        PQclear(r);
    }
    return false;
}

/* The listener thread: (re)connects, waits for notifications or the stop byte, and pings a
 * quiet connection (store.listen_check_ms) to notice a dead link. */
static void *listen_main(void *arg)
{
    pg_store *s = arg;
    PGconn *c = NULL;
    bool pinged = false; /* a "SELECT 1" is awaiting its answer */
    for (;;) {
        if (!c && (c = listen_connect(s)) != NULL) {
            pinged = false;
            s->watch_cb(s->watch_ud, NULL, 0); /* anything sent while not listening is lost */
        }
        struct pollfd fds[2] = {{.fd = s->watch_pipe[0], .events = POLLIN},
                                {.fd = c ? PQsocket(c) : -1, .events = POLLIN}};
        int rc =
            poll(fds, 2, c ? (s->listen_check_ms > 0 ? s->listen_check_ms : -1) : RECONNECT_MS);
        if (rc < 0 && errno != EINTR) break;
        if (fds[0].revents) break; /* stop */
        if (!c) continue;
        bool lost = false;
        if (rc == 0) { /* quiet for a while: a ping still unanswered means a dead link */
            lost = pinged || !PQsendQuery(c, "SELECT 1") || PQflush(c) < 0;
            pinged = true;
        } else if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            lost = !PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK;
            if (!lost && pinged) pinged = !ping_answered(c);
        } else {
            continue;
        }
        if (lost) {
            ms_log_warn(s->log, "store: commit notifications: connection lost; reconnecting");
            PQfinish(c);
            c = NULL;
            continue;
        }
        deliver(s, c);
    }
    if (c) PQfinish(c);
    return NULL;
}

/* Stops the listener thread, if any, and waits for it. @locks_required watch_mu */
static void watch_stop(pg_store *s)
{
    if (!s->watching) return;
    ssize_t w;
    do
        w = write(s->watch_pipe[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(s->watch_thread, NULL);
    close(s->watch_pipe[0]);
    close(s->watch_pipe[1]);
    s->watching = false;
    s->watch_cb = NULL;
    s->watch_ud = NULL;
}

ms_err pg_watch(void *ctx, pg_watch_cb cb, void *ud, ms_error *err)
{
    pg_store *s = ctx;
    ms_err rc = MS_OK;
    pthread_mutex_lock(&s->watch_mu);
    watch_stop(s);
    if (cb) {
        if (pipe2(s->watch_pipe, O_CLOEXEC) != 0) {
            rc = ms_error_set(err, MS_ERR_INTERNAL, "commit notifications: pipe: %s",
                              strerror(errno));
        } else {
            s->watch_cb = cb;
            s->watch_ud = ud;
            if (pthread_create(&s->watch_thread, NULL, listen_main, s) == 0) {
                s->watching = true;
            } else {
                close(s->watch_pipe[0]);
                close(s->watch_pipe[1]);
                rc = ms_error_set(err, MS_ERR_INTERNAL,
                                  "commit notifications: cannot start the listener thread");
            }
        }
    }
    pthread_mutex_unlock(&s->watch_mu);
    return rc;
}
