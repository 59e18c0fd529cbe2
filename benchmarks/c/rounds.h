/* What the C helpers of the benchmarks (raw_rounds.c, zkc_rounds.c) share:
 * the clocks a round of requests is timed with, and the line of figures
 * each round ends with,
 *
 *     count=N wall_s=S cpu_s=C[ key=value...]
 *
 * wall_s from the monotonic clock; cpu_s this process's user + system CPU
 * seconds, all its threads (getrusage RUSAGE_SELF).  Included by both,
 * compiled as one file each (the header sits beside them).
 */
#ifndef FASTZK_BENCH_ROUNDS_H
#define FASTZK_BENCH_ROUNDS_H

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
        + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Starts a round's line of figures; the caller may add " key=value"
 * items, then ends it with end_figures(). */
static void print_figures(long count, double wall_s, double cpu_s)
{
    printf("count=%ld wall_s=%.9f cpu_s=%.9f", count, wall_s, cpu_s);
}

/* Ends the line of figures and sends it at once (stdout is a pipe). */
static void end_figures(void)
{
    printf("\n");
    fflush(stdout);
}

#endif
