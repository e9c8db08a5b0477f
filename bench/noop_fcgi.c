/* bench/noop_fcgi.c — row 4's second floor: a FastCGI responder in C on libfcgi 2.4 (Debian's
 * libfcgi-dev, the library most C FastCGI applications are built on) that does no work.
 * Every request gets `200` and three bytes. bench/run builds it when libfcgi-dev is there
 * and puts two of them behind the same nginx as /bench-c.
 *
 *   noop_fcgi SOCKET_PATH THREADS
 *
 * libfcgi serves one connection per thread: a thread keeps the connection nginx kept alive
 * (FCGI_KEEP_CONN) until nginx closes it, so THREADS must exceed the connections nginx may
 * hold open to this process (its upstream `keepalive` per nginx worker plus the requests in
 * flight), or a request waits in the listen backlog for a free thread. No mutex around
 * FCGX_Accept_r: the library's example has one, but with kept-alive connections a thread
 * waiting in it for its next request would hold every other thread back. SIGTERM and SIGINT
 * are blocked in every thread and taken by main with sigwait: libfcgi installs its own SIGTERM
 * handler at the first request, which only sets a flag that threads blocked in read() never
 * see, so the process would outlive bench/run's cleanup. For benchmarks only: no limits, no
 * timeouts. */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int listen_fd;

static void *serve(void *unused) {
    FCGX_Request req;
    (void)unused;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0) return NULL;
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n", req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads, i, sig;
    pthread_t id;
    sigset_t stop;
    if (argc != 3 || (threads = atoi(argv[2])) < 1 || threads > 1024) {
        fprintf(stderr, "usage: noop_fcgi SOCKET_PATH THREADS (1-1024)\n");
        return 2;
    }
    if (FCGX_Init() != 0) return 1;
    umask(0); /* nginx, maybe another user, connects to the socket */
    listen_fd = FCGX_OpenSocket(argv[1], 1024);
    if (listen_fd < 0) {
        fprintf(stderr, "noop_fcgi: cannot listen on %s\n", argv[1]);
        return 1;
    }
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the threads inherit the mask */
    for (i = 0; i < threads; i++)
        if (pthread_create(&id, NULL, serve, NULL) != 0) return 1;
    sigwait(&stop, &sig);
    return 0;
}
