/*
 * store_pool.c — the connection pool of the SQL stores (see store_pool.h).
 */
#include "store_pool.h"

#include <string.h>

void ms_pool_init(ms_pool *p, int n)
{
    memset(p, 0, sizeof *p);
    p->n = n < 1 ? 1 : n > MS_POOL_MAX ? MS_POOL_MAX : n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

void ms_pool_destroy(ms_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

void *ms_pool_acquire(ms_pool *p)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < p->n; i++)
            if (!p->busy[i]) {
                p->busy[i] = true;
                pthread_mutex_unlock(&p->mu);
                return p->conn[i];
            }
        pthread_cond_wait(&p->cv, &p->mu);
    }
}

void ms_pool_release(ms_pool *p, void *conn)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->conn[i] == conn) p->busy[i] = false;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
