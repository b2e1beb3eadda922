/*
 * openloop: a fixed-rate (open-loop) HTTP/1.1 load client for the loopback interface.
 *
 *   openloop HOST PORT PATH RATE DURATION_S CONNECTIONS
 *
 * Each connection first carries one untimed request (warm-up). Then request i is due at
 * t0 + i/RATE, whatever the answers do. A timerfd armed on the absolute due time wakes the
 * loop, so the schedule is kept to microseconds; a due request goes out on the first idle
 * keep-alive connection, or waits for one. Its latency counts
 * from when it was *due*, not when it was written, so a server that stalls is charged for
 * every request it held up (no coordinated omission, as in wrk2).
 *
 * Why C and not the Trio client (load.py): on 2 cores the client shares the machine with
 * the server, and a Python client's own scheduling jitter (~1 ms at p50, several ms at p99)
 * is the same size as the figure being measured. The client's own lateness -- how late it
 * wrote each request after it was due -- is reported as "send_late_ms" so its floor is
 * visible beside every figure.
 *
 * Prints one JSON object with the fields of load.py's summary (requests, sent, duration_s,
 * rps, status, errors, latency_ms) plus target_rps and send_late_ms.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)
#define MAX_STATUS 600

typedef struct {
    int fd;
    int busy;
    uint64_t due_ns;
    size_t used;      /* bytes of the current response read so far */
    char *buf;
} conn_t;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return -1.0;
    double k = p / 100.0 * (double)n;
    size_t i = (size_t)k;
    if ((double)i < k) i++;   /* ceil */
    if (i > 0) i--;
    if (i >= n) i = n - 1;
    return (double)sorted[i] / 1e6;
}

static int open_conn(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Length of a complete response at the start of buf, 0 when more is needed, -1 when it is
 * not HTTP/1.1 we understand. Bodies are framed by Content-Length or chunked encoding. */
static long response_length(const char *buf, size_t used, int *status) {
    const char *end = memmem(buf, used, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    if (used < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    long clen = -1;
    int chunked = 0;
    for (const char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) clen = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && memmem(line, (size_t)(strstr(line, "\r\n") - line), "chunked", 7))
            chunked = 1;
    }
    if (chunked) {
        size_t pos = head;
        for (;;) {
            const char *eol = memmem(buf + pos, used - pos, "\r\n", 2);
            if (!eol) return 0;
            long size = strtol(buf + pos, NULL, 16);
            pos = (size_t)(eol - buf) + 2 + (size_t)size + 2;
            if (pos > used) return 0;
            if (size == 0) return (long)pos;
        }
    }
    if (clen < 0) clen = 0;
    return (size_t)head + (size_t)clen <= used ? (long)head + clen : 0;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE DURATION_S CONNECTIONS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), nconn = atoi(argv[6]);
    double rate = atof(argv[4]), duration = atof(argv[5]);
    if (strcmp(host, "127.0.0.1") != 0) {
        fprintf(stderr, "openloop: loopback (127.0.0.1) only\n");
        return 2;
    }
    if (rate <= 0 || duration <= 0 || nconn <= 0) {
        fprintf(stderr, "openloop: RATE, DURATION_S and CONNECTIONS must be above 0\n");
        return 2;
    }
    char req[2048];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);

    size_t total = (size_t)(rate * duration);
    uint64_t *lat = calloc(total, sizeof *lat), *late = calloc(total, sizeof *late);
    uint64_t *backlog = calloc(total, sizeof *backlog);   /* due times waiting for a connection */
    size_t bl_head = 0, bl_tail = 0;
    long status_count[MAX_STATUS] = {0};
    size_t done = 0, sent = 0, next = 0, errors = 0, nlate = 0;

    int ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = open_conn(host, port);
        if (conns[i].fd < 0) {
            fprintf(stderr, "openloop: connect to %s:%d: %s\n", host, port, strerror(errno));
            return 1;
        }
        conns[i].buf = malloc(BUF_SIZE);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    /* Warm-up, untimed: one request on each connection, so the schedule measures kept-alive
     * connections the server has already set up, not its first request on each of them. */
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &conns[i];
        int status = 0;
        long len = 0;
        if (write(c->fd, req, (size_t)req_len) != req_len) {
            fprintf(stderr, "openloop: warm-up write failed: %s\n", strerror(errno));
            return 1;
        }
        while (len == 0) {
            ssize_t r = read(c->fd, c->buf + c->used, BUF_SIZE - c->used);
            if (r <= 0) {
                fprintf(stderr, "openloop: warm-up read failed\n");
                return 1;
            }
            c->used += (size_t)r;
            len = response_length(c->buf, c->used, &status);
        }
        if (len < 0) {
            fprintf(stderr, "openloop: the warm-up answer is not HTTP/1.1\n");
            return 1;
        }
        c->used = 0;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    const uint64_t t0 = now_ns() + 50000000ull;   /* connections are open; start in 50 ms */
    const double step = 1e9 / rate;
    const uint64_t hard_stop = t0 + (uint64_t)((duration + 30.0) * 1e9);   /* a hung server cannot hold us */
    int idle_hint = 0;

#define DUE(i) (t0 + (uint64_t)((double)(i) * step))
    struct itimerspec its = {0};
    uint64_t d0 = DUE(0);
    its.it_value.tv_sec = (time_t)(d0 / 1000000000ull);
    its.it_value.tv_nsec = (long)(d0 % 1000000000ull);
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);

    struct epoll_event events[64];
    while (done + errors < total) {
        if (now_ns() > hard_stop) break;
        int n = epoll_wait(ep, events, 64, 1000);
        if (n < 0 && errno != EINTR) break;
        for (int e = 0; e < n; e++) {
            uint32_t id = events[e].data.u32;
            if (id == UINT32_MAX) {   /* the schedule: queue every request now due */
                uint64_t exp;
                while (read(tfd, &exp, sizeof exp) > 0) {}
                uint64_t t = now_ns();
                while (next < total && DUE(next) <= t) backlog[bl_tail++] = DUE(next++);
                if (next < total) {
                    uint64_t d = DUE(next);
                    its.it_value.tv_sec = (time_t)(d / 1000000000ull);
                    its.it_value.tv_nsec = (long)(d % 1000000000ull);
                    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
                }
                continue;
            }
            conn_t *c = &conns[id];
            ssize_t r = read(c->fd, c->buf + c->used, BUF_SIZE - c->used);
            if (r <= 0 || !c->busy) {   /* closed, failed, or bytes nobody asked for */
                errors += c->busy;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->busy = 0;
                c->used = 0;
                c->fd = open_conn(host, port);
                if (c->fd < 0) { fprintf(stderr, "openloop: reconnect failed\n"); goto out; }
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                continue;
            }
            c->used += (size_t)r;
            int status = 0;
            long len = response_length(c->buf, c->used, &status);
            if (len == 0 && c->used < BUF_SIZE) continue;
            if (len < 0 || len == 0) { errors++; c->busy = 0; c->used = 0; continue; }
            lat[done++] = now_ns() - c->due_ns;
            if (status > 0 && status < MAX_STATUS) status_count[status]++;
            memmove(c->buf, c->buf + len, c->used - (size_t)len);
            c->used -= (size_t)len;
            c->busy = 0;
        }
        /* Decide, then act: hand every waiting request to an idle connection. */
        for (int k = 0; k < nconn && bl_head < bl_tail; k++) {
            int i = (idle_hint + k) % nconn;
            if (conns[i].busy) continue;
            conn_t *c = &conns[i];
            uint64_t due = backlog[bl_head++];
            uint64_t t = now_ns();
            late[nlate++] = t > due ? t - due : 0;
            c->due_ns = due;
            c->busy = 1;
            if (write(c->fd, req, (size_t)req_len) != req_len) { errors++; c->busy = 0; }
            sent++;
            idle_hint = (i + 1) % nconn;
        }
    }
out:;
    double elapsed = (double)(now_ns() - t0) / 1e9;
    qsort(lat, done, sizeof *lat, cmp_u64);
    qsort(late, nlate, sizeof *late, cmp_u64);
    printf("{\"tool\":\"openloop\",\"requests\":%zu,\"sent\":%zu,\"duration_s\":%.3f,\"rps\":%.3f,\"target_rps\":%.3f,"
           "\"connections\":%d,\"errors\":%zu,\"status\":{",
           done, sent, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0, rate, nconn, errors);
    int first = 1;
    for (int s = 0; s < MAX_STATUS; s++)
        if (status_count[s]) { printf("%s\"%d\":%ld", first ? "" : ",", s, status_count[s]); first = 0; }
    printf("},\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f},",
           pct_ms(lat, done, 50), pct_ms(lat, done, 90), pct_ms(lat, done, 99), pct_ms(lat, done, 99.9),
           done ? (double)lat[done - 1] / 1e6 : -1.0);
    printf("\"send_late_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
           pct_ms(late, nlate, 50), pct_ms(late, nlate, 99), nlate ? (double)late[nlate - 1] / 1e6 : -1.0);
    return 0;
}
