/* The client-side limit of the round-trip benchmarks: the ZooKeeper wire
 * protocol spoken over one plain TCP socket with no client logic at all
 * (no threads, no watches, no retries, no decoding beyond the reply
 * header), so that what it measures is the server, the kernel and the
 * loopback, and what any client adds shows as the difference.
 *
 *     raw_rounds HOSTS
 *
 * connects to the first server of HOSTS (host:port[,...][/chroot]; the
 * chroot is ignored), completes the handshake (ConnectRequest: protocol
 * version 0, last zxid seen 0, a 30 s timeout, session id 0, 16 zero bytes
 * of password, not read-only; then the ConnectResponse) and prints
 *
 *     ready session_id=0x... timeout_ms=N
 *
 * Then for each line on stdin:
 *
 *     children PATH N          N synchronous getChildren round trips
 *     pipelined PATH N WINDOW  N getChildren requests in windows of WINDOW:
 *                              WINDOW requests written, then WINDOW replies
 *                              read, and so on
 *     quit                     (or end of input) closes the session
 *
 * Each command prints one line of figures:
 *
 *     count=N wall_s=S cpu_s=C children=K
 *
 * wall_s: the seconds the N round trips took (monotonic clock); cpu_s:
 * this process's user + system CPU seconds over them (getrusage
 * RUSAGE_SELF); children: the number of names in the last reply.  Errors
 * go to stderr with exit status 1.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rounds.h"

#define OP_GET_CHILDREN 8
#define OP_PING 11
#define OP_CLOSE_SESSION (-11)
#define XID_PING (-2)
#define SESSION_TIMEOUT_MS 30000
#define MAX_FRAME (4 * 1024 * 1024)
#define MAX_PATH 4000
#define MAX_WINDOW 100000

/* Reply header: xid (4), zxid (8), err (4). */
#define REPLY_HEADER 16

static int sock = -1;
static int32_t next_xid = 1;
static int32_t session_timeout_ms;
static double last_io;

/* Bytes received and not yet consumed: rbuf[rpos, rlen). */
static unsigned char rbuf[256 * 1024];
static size_t rpos, rlen;

/* One reply's body, once read whole. */
static unsigned char frame[MAX_FRAME];

static void die(const char *what)
{
    fprintf(stderr, "raw_rounds: %s\n", what);
    exit(1);
}

static void die_errno(const char *what)
{
    fprintf(stderr, "raw_rounds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned char *put32(unsigned char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = u >> 24;
    p[1] = u >> 16;
    p[2] = u >> 8;
    p[3] = u;
    return p + 4;
}

static unsigned char *put64(unsigned char *p, int64_t v)
{
    p = put32(p, (int32_t)((uint64_t)v >> 32));
    return put32(p, (int32_t)(uint64_t)v);
}

static int32_t get32(const unsigned char *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16)
                     | ((uint32_t)p[2] << 8) | p[3]);
}

static int64_t get64(const unsigned char *p)
{
    return (int64_t)(((uint64_t)(uint32_t)get32(p) << 32)
                     | (uint32_t)get32(p + 4));
}

static void write_all(const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(sock, p, n, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die_errno("send");
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Copy n bytes out of the socket into dst, receiving as much as is there
 * (several replies at once when pipelined) into the read buffer. */
static void read_exact(unsigned char *dst, size_t n)
{
    while (n > 0) {
        size_t have = rlen - rpos;
        if (have == 0) {
            ssize_t r = recv(sock, rbuf, sizeof rbuf, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                die_errno("recv");
            }
            if (r == 0)
                die("the server closed the connection");
            rpos = 0;
            rlen = (size_t)r;
            continue;
        }
        if (have > n)
            have = n;
        memcpy(dst, rbuf + rpos, have);
        rpos += have;
        dst += have;
        n -= have;
    }
}

/* Read one length-prefixed frame into `frame`; returns its length. */
static size_t read_frame(void)
{
    unsigned char len[4];
    int32_t n;

    read_exact(len, 4);
    n = get32(len);
    if (n < 0 || n > MAX_FRAME)
        die("bad frame length");
    read_exact(frame, (size_t)n);
    return (size_t)n;
}

/* Read one reply; check its xid and error code; return the number of
 * names of a getChildren reply (-1 for other replies). */
static int32_t read_reply(int32_t xid)
{
    size_t n = read_frame();
    int32_t err;

    if (n < REPLY_HEADER)
        die("short reply");
    if (get32(frame) != xid) {
        fprintf(stderr, "raw_rounds: reply xid %d, expected %d\n",
                get32(frame), xid);
        exit(1);
    }
    err = get32(frame + 12);
    if (err != 0) {
        fprintf(stderr, "raw_rounds: error code %d\n", err);
        exit(1);
    }
    return n >= REPLY_HEADER + 4 ? get32(frame + REPLY_HEADER) : -1;
}

/* A getChildren request (watch=false) for `path` at p; returns its end. */
static unsigned char *put_get_children(unsigned char *p, const char *path,
                                       size_t path_len, int32_t xid)
{
    p = put32(p, (int32_t)(4 + 4 + 4 + path_len + 1));
    p = put32(p, xid);
    p = put32(p, OP_GET_CHILDREN);
    p = put32(p, (int32_t)path_len);
    memcpy(p, path, path_len);
    p += path_len;
    *p++ = 0;
    return p;
}

static int connect_first(const char *hosts)
{
    char host[256], *colon, *name = host;
    const char *port = "2181";
    struct addrinfo hints, *res, *ai;
    int fd = -1, one = 1, rc;
    size_t n = strcspn(hosts, ",/");

    if (n == 0 || n >= sizeof host)
        die("bad HOSTS");
    memcpy(host, hosts, n);
    host[n] = '\0';
    if (host[0] == '[') {  /* [v6 address]:port */
        char *close_bracket = strchr(host, ']');
        if (close_bracket == NULL)
            die("bad HOSTS");
        *close_bracket = '\0';
        name = host + 1;
        if (close_bracket[1] == ':')
            port = close_bracket + 2;
    } else if ((colon = strrchr(host, ':')) != NULL) {
        *colon = '\0';
        port = colon + 1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(name, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "raw_rounds: %s: %s\n", hosts, gai_strerror(rc));
        exit(1);
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        die_errno("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int64_t handshake(void)
{
    unsigned char req[4 + 45], *p = req;
    size_t n;

    p = put32(p, 45);
    p = put32(p, 0);                   /* protocolVersion */
    p = put64(p, 0);                   /* lastZxidSeen */
    p = put32(p, SESSION_TIMEOUT_MS);  /* timeOut */
    p = put64(p, 0);                   /* sessionId */
    p = put32(p, 16);                  /* passwd: 16 zero bytes */
    memset(p, 0, 16);
    p += 16;
    *p++ = 0;                          /* readOnly */
    write_all(req, (size_t)(p - req));
    /* ConnectResponse: protocolVersion, timeOut, sessionId, passwd
     * (and, from servers that know it, readOnly). */
    n = read_frame();
    if (n < 20)
        die("short ConnectResponse");
    session_timeout_ms = get32(frame + 4);
    if (session_timeout_ms <= 0)
        die("session expired at once (negotiated timeout 0)");
    last_io = now();
    return get64(frame + 8);
}

/* Keep the session alive across long pauses between commands (outside
 * any timed part). */
static void ping_if_idle(void)
{
    unsigned char req[12], *p = req;

    if ((now() - last_io) * 1000.0 < session_timeout_ms / 3.0)
        return;
    p = put32(p, 8);
    p = put32(p, XID_PING);
    p = put32(p, OP_PING);
    write_all(req, (size_t)(p - req));
    read_reply(XID_PING);
}

static void close_session(void)
{
    unsigned char req[12], *p = req;
    int32_t xid = next_xid++;

    p = put32(p, 8);
    p = put32(p, xid);
    p = put32(p, OP_CLOSE_SESSION);
    write_all(req, (size_t)(p - req));
    read_reply(xid);
}

static int32_t sync_rounds(const char *path, size_t path_len, long n)
{
    unsigned char req[4 + 8 + 4 + MAX_PATH + 1];
    int32_t children = -1;
    long k;

    for (k = 0; k < n; k++) {
        int32_t xid = next_xid++;
        unsigned char *end = put_get_children(req, path, path_len, xid);
        write_all(req, (size_t)(end - req));
        children = read_reply(xid);
    }
    return children;
}

static int32_t pipelined_rounds(const char *path, size_t path_len, long n,
                                long window)
{
    size_t one = 4 + 8 + 4 + path_len + 1;
    unsigned char *batch = malloc(one * (size_t)window), *p;
    int32_t children = -1;
    long done = 0, k;

    if (batch == NULL)
        die("out of memory");
    while (done < n) {
        long w = n - done < window ? n - done : window;
        int32_t first = next_xid;
        p = batch;
        for (k = 0; k < w; k++)
            p = put_get_children(p, path, path_len, next_xid++);
        write_all(batch, (size_t)(p - batch));
        for (k = 0; k < w; k++)
            children = read_reply(first + (int32_t)k);
        done += w;
    }
    free(batch);
    return children;
}

int main(int argc, char **argv)
{
    char line[4096], op[16], path[MAX_PATH];
    int64_t session_id;

    if (argc != 2) {
        fprintf(stderr, "usage: %s HOSTS\n", argv[0]);
        return 2;
    }
    sock = connect_first(argv[1]);
    session_id = handshake();
    printf("ready session_id=0x%llx timeout_ms=%d\n",
           (unsigned long long)session_id, session_timeout_ms);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        long n, window = 0;
        double start, cpu;
        int32_t children;
        size_t path_len;
        int got;

        if (strncmp(line, "quit", 4) == 0)
            break;
        got = sscanf(line, "%15s %3999s %ld %ld", op, path, &n, &window);
        if (got < 3 || n < 1 || (strcmp(op, "children") != 0
                                 && strcmp(op, "pipelined") != 0)
            || (strcmp(op, "pipelined") == 0
                && (got != 4 || window < 1 || window > MAX_WINDOW))) {
            fprintf(stderr, "raw_rounds: bad command: %s", line);
            return 1;
        }
        path_len = strlen(path);
        ping_if_idle();
        cpu = cpu_seconds();
        start = now();
        if (op[0] == 'c')
            children = sync_rounds(path, path_len, n);
        else
            children = pipelined_rounds(path, path_len, n, window);
        last_io = now();
        print_figures(n, last_io - start, cpu_seconds() - cpu);
        printf(" children=%d", children);
        end_figures();
    }
    close_session();
    close(sock);
    return 0;
}
