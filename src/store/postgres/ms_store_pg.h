/*
 * ms_store_pg.h — what the PostgreSQL store offers beyond ms_store_ops: running its schema
 * migrations on their own (`metasync migrate`). Any thread; opens its own connection.
 */
#ifndef MS_STORE_PG_H
#define MS_STORE_PG_H

#include "ms_buf.h"
#include "ms_error.h"

/*
 * Connects to url (a libpq URI, postgres:// or postgresql://), applies every pending migration
 * under pg_advisory_lock, and grants app_role (may be NULL) the rights the store needs (run this
 * as the owner of the schema). Appends the versions applied now, comma-separated, to applied;
 * *current is the schema version afterwards.
 */
ms_err ms_store_pg_migrate(const char *url, const char *app_role, ms_buf *applied, int *current,
                           ms_error *err);

#endif
