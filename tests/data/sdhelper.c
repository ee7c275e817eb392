/* A tiny static program for pods in tests: the sd_notify and socket-activation
 * sides of an app, without needing systemd or a libc in the image.
 *   sdhelper notify DELAY_MS MESSAGE  -- sleep, send MESSAGE to $NOTIFY_SOCKET, sleep 30 s
 *   sdhelper serve TEXT                -- accept one connection on fd 3 (LISTEN_FDS), send
 *                                         TEXT and $LISTEN_FDS/$LISTEN_FDNAMES, exit 0
 *   sdhelper daemon TEXT               -- a service: READY=1 to $NOTIFY_SOCKET once listening
 *                                         on fd 3, then answer each connection with TEXT and
 *                                         its number ("served N" on stdout, "conn N" on
 *                                         stderr); on SIGTERM say so on stderr and exit 0
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static int notify(const char *msg) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) return 0;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    int rc = (int)sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc;
}

static int daemon_mode(const char *text) {
    const char *n = getenv("LISTEN_FDS");
    if (!n || atoi(n) < 1) { fprintf(stderr, "no LISTEN_FDS\n"); return 2; }
    struct sigaction sa = { .sa_handler = on_term };  /* no SA_RESTART: accept returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (notify("READY=1\nSTATUS=serving") < 0) { perror("sendto"); return 3; }
    printf("listening\n");
    for (int count = 1; !stop; ) {
        int c = accept(3, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            perror("accept"); return 3;
        }
        dprintf(c, "%s %d\n", text, count);
        close(c);
        printf("served %d\n", count);
        fprintf(stderr, "conn %d\n", count++);
    }
    fprintf(stderr, "got SIGTERM, exiting\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "daemon") == 0)
        return daemon_mode(argv[2]);
    if (argc == 4 && strcmp(argv[1], "notify") == 0) {
        usleep(atoi(argv[2]) * 1000);
        const char *path = getenv("NOTIFY_SOCKET");
        if (!path) { fprintf(stderr, "no NOTIFY_SOCKET\n"); return 2; }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (sendto(fd, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("sendto"); return 3;
        }
        sleep(30);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "serve") == 0) {
        const char *n = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
        if (!n || atoi(n) < 1) { fprintf(stderr, "no LISTEN_FDS\n"); return 2; }
        int c = accept(3, NULL, NULL);
        if (c < 0) { perror("accept"); return 3; }
        dprintf(c, "%s fds=%s names=%s\n", argv[2], n, names ? names : "-");
        close(c);
        return 0;
    }
    fprintf(stderr, "usage: sdhelper notify DELAY_MS MESSAGE | serve TEXT | daemon TEXT\n");
    return 2;
}
