/*
 * store_pool.h — a fixed pool of database connections shared by the SQL stores: each connection
 * is used by one thread at a time, borrowed with ms_pool_acquire and given back with
 * ms_pool_release. The pool does not know what a connection is (a sqlite3 *, a PGconn *): the
 * store opens them into conn[] after ms_pool_init and closes them before ms_pool_destroy.
 *
 * Thread rules: acquire and release from any thread; the pool's mutex is held only inside them.
 * Ownership: the store owns the connections; a borrower must release what it acquired.
 */
#ifndef STORE_POOL_H
#define STORE_POOL_H

#include <pthread.h>
#include <stdbool.h>

#define MS_POOL_MAX 8

typedef struct ms_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;                   /* connections in use: conn[0..n) */
    void *conn[MS_POOL_MAX]; /* opened and closed by the store */
    bool busy[MS_POOL_MAX];
} ms_pool;

/* Prepares an empty pool of n (1..MS_POOL_MAX) slots; conn[] is all NULL. */
void ms_pool_init(ms_pool *p, int n);
/* Frees the pool's mutex and condition; its connections must be closed already. */
void ms_pool_destroy(ms_pool *p);
/* Borrows a free connection, waiting while all are in use. */
void *ms_pool_acquire(ms_pool *p);
/* Gives back a connection borrowed from p and wakes one waiting borrower. */
void ms_pool_release(ms_pool *p, void *conn);

#endif
