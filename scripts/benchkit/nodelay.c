/* ncat-nodelay (scripts/bench --vs ncat-nodelay): loaded into ncat with LD_PRELOAD, it sets
 * TCP_NODELAY on every connection ncat accepts. ncat --chat leaves Nagle's algorithm on, so at
 * a steady rate its small writes wait for the receivers' ACKs and the kernel sends them later,
 * in other processes' time (docs/performance.md, "What ncat does that a relay must not"); this
 * is the same C relay sending each line when it has it, as lanchat does. Built by
 * scripts/benchkit/servers.py (build_nodelay_shim) with the system's C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int nodelay(int fd) {
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* not TCP: harmless */
    return fd;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    return nodelay(real(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return nodelay(real(fd, addr, len, flags));
}
