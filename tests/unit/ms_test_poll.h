/*
 * ms_test_poll.h — the pause between two checks of a bounded wait in the unit tests.
 *
 * Tests wait for a condition, never for a fixed time: each caller loops on its condition with
 * an upper bound on the number of checks, and calls ms_test_poll_pause between two checks.
 * Header-only; any thread.
 */
#ifndef MS_TEST_POLL_H
#define MS_TEST_POLL_H

#include <time.h>

/* Pauses the calling thread for ms milliseconds (0..999): the interval of a bounded poll. */
static inline void ms_test_poll_pause(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL); /* the poll interval of a bounded wait */
}

#endif
