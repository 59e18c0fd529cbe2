/* Timed rounds of synchronous reads with ZooKeeper's own C client
 * (libzookeeper_mt), the reference the benchmark table compares against.
 *
 *     zkc_rounds HOSTS
 *
 * prints "ready" once connected, then for each line on stdin
 * "children PATH N" or "get PATH N" makes N synchronous zoo_get_children()
 * or zoo_get() calls and prints one line of figures,
 *
 *     count=N wall_s=S cpu_s=C
 *
 * the seconds they took (monotonic clock) and this process's user + system
 * CPU seconds over them, all its threads (getrusage RUSAGE_SELF); "quit"
 * (or end of input) closes the session.  Errors go to stderr with exit
 * status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "rounds.h"

static int children(zhandle_t *zh, const char *path)
{
    struct String_vector names;
    int rc = zoo_get_children(zh, path, 0, &names);
    if (rc == ZOK)
        deallocate_String_vector(&names);
    return rc;
}

static int get(zhandle_t *zh, const char *path)
{
    char buf[4096];
    int len = sizeof buf;
    struct Stat stat;
    return zoo_get(zh, path, 0, buf, &len, &stat);
}

int main(int argc, char **argv)
{
    char line[4096], op[16], path[4000];
    long n;
    zhandle_t *zh;
    int i;

    if (argc != 2) {
        fprintf(stderr, "usage: %s HOSTS\n", argv[0]);
        return 2;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh = zookeeper_init(argv[1], NULL, 10000, NULL, NULL, 0);
    if (zh == NULL) {
        perror("zookeeper_init");
        return 1;
    }
    for (i = 0; i < 3000 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
        usleep(10000);
    if (zoo_state(zh) != ZOO_CONNECTED_STATE) {
        fprintf(stderr, "no session with %s within 30 s\n", argv[1]);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        int (*call)(zhandle_t *, const char *);
        double start, cpu;
        long k;

        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "%15s %3999s %ld", op, path, &n) != 3 || n < 1) {
            fprintf(stderr, "bad command: %s", line);
            return 1;
        }
        call = strcmp(op, "get") == 0 ? get : children;
        cpu = cpu_seconds();
        start = now();
        for (k = 0; k < n; k++) {
            int rc = call(zh, path);
            if (rc != ZOK) {
                fprintf(stderr, "%s %s: %s\n", op, path, zerror(rc));
                return 1;
            }
        }
        print_figures(n, now() - start, cpu_seconds() - cpu);
        end_figures();
    }
    zookeeper_close(zh);
    return 0;
}
