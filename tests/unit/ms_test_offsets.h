/*
 * ms_test_offsets.h — one check of a store's source positions (ms_store_ops.apply_at and
 * offsets_get), shared by the SQLite and PostgreSQL store tests so that both stores answer the
 * same: positions written with the batch, held back by a rejected event, never lowered,
 * written by a batch without events, kept per group, topic and partition.
 * Include after cmocka.h, ms_store.h and ms_types.h.
 */
#ifndef MS_TEST_OFFSETS_H
#define MS_TEST_OFFSETS_H

#include <stdlib.h>
#include <string.h>

/* Applies jsons[0..n) for tenant with positions pos[0..npos); ev i names position src[i] (1-based,
 * 0 none) at offset off[i]. Fills res. */
static void offsets_apply(const ms_store_ops *ops, void *ctx, ms_types *types, const char *tenant,
                          const char *const *jsons, const size_t *src, const int64_t *off, size_t n,
                          const ms_srcpos *pos, size_t npos, ms_apply_result *res)
{
    ms_event *evs[8] = {0};
    ms_error err;
    for (size_t i = 0; i < n; i++) {
        ms_decode_opts o = {.tenant = tenant, .types = types};
        ms_error_clear(&err);
        assert_int_equal(ms_event_decode(jsons[i], strlen(jsons[i]), &o, &evs[i], &err), MS_OK);
        evs[i]->src_pos = src[i];
        evs[i]->src_offset = off[i];
    }
    ms_error_clear(&err);
    ms_err rc = ops->apply_at(ctx, evs, n, "2026-11-24T00:00:00.000Z", pos, npos, res, &err);
    if (rc != MS_OK) print_error("%s apply_at: %s\n", ops->name, err.detail);
    assert_int_equal(rc, MS_OK);
    for (size_t i = 0; i < n; i++)
        ms_event_free(evs[i]);
}

/* The stored next offsets of partitions 0, 1, 2 of (group, topic) into next[3]. */
static void offsets_read(const ms_store_ops *ops, void *ctx, const char *group, const char *topic,
                         int64_t *next)
{
    const int32_t parts[3] = {0, 1, 2};
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ops->offsets_get(ctx, group, topic, parts, 3, next, &err), MS_OK);
}

/* The whole check on one store; group must be new to the store (tests share databases). */
static void check_source_offsets(const ms_store_ops *ops, void *ctx, ms_types *types,
                                 const char *tenant, const char *group)
{
    assert_true(ops->version >= 5);
    int64_t next[3];
    offsets_read(ops, ctx, group, "t", next);
    assert_int_equal(next[0], -1);
    assert_int_equal(next[1], -1);

    /* Partition 0: offsets 10..12 applied (13 a dead letter delivered before: next 14);
     * partition 1: offset 5 rejected by the store (its dead letter comes later: held at 5). */
    const char *j[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"o1\"}",
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"o2\"}",
        "{\"op\":\"patch\",\"qualified_name\":\"missing\",\"attributes\":{\"x\":1}}",
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"o1\"}",
    };
    const size_t src[] = {1, 1, 2, 1};
    const int64_t off[] = {10, 11, 5, 12};
    ms_srcpos pos[] = {{group, "t", 0, 14}, {group, "t", 1, 7}};
    ms_apply_result res[4];
    offsets_apply(ops, ctx, types, tenant, j, src, off, 4, pos, 2, res);
    assert_int_equal(res[2].status, MS_APPLY_REJECTED);
    assert_int_equal(res[3].status, MS_APPLY_UNCHANGED); /* processed: counts */
    offsets_read(ops, ctx, group, "t", next);
    assert_int_equal(next[0], 14);
    assert_int_equal(next[1], 5);
    assert_int_equal(next[2], -1);

    /* Never lowered (a late batch of an earlier owner); a batch without events moves it. */
    ms_srcpos later[] = {{group, "t", 0, 3}, {group, "t", 1, 9}};
    offsets_apply(ops, ctx, types, tenant, NULL, NULL, NULL, 0, later, 2, res);
    offsets_read(ops, ctx, group, "t", next);
    assert_int_equal(next[0], 14);
    assert_int_equal(next[1], 9);

    /* Kept per group and per topic. */
    offsets_read(ops, ctx, group, "other-topic", next);
    assert_int_equal(next[0], -1);
    char g2[128];
    snprintf(g2, sizeof g2, "%s-2", group);
    offsets_read(ops, ctx, g2, "t", next);
    assert_int_equal(next[0], -1);
}

#endif
