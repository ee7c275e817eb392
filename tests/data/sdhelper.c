/* A tiny static program for pods in tests: the sd_notify and socket-activation
 * sides of an app, without needing systemd or a libc in the image.
 *   sdhelper notify DELAY_MS MESSAGE  -- sleep, send MESSAGE to $NOTIFY_SOCKET, sleep 30 s
 *   sdhelper serve TEXT                -- accept one connection on fd 3 (LISTEN_FDS), send
 *                                         TEXT and $LISTEN_FDS/$LISTEN_FDNAMES, exit 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
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
    fprintf(stderr, "usage: sdhelper notify DELAY_MS MESSAGE | serve TEXT\n");
    return 2;
}
