/* The least an HTTP server can do: accept, read the request once, write a fixed JSON
 * answer, close. scripts/http-floor.py times it next to argus and Prometheus to show how
 * much of a sub-millisecond query's time is the client's and the kernel's.
 * Usage: http_floor PORT (binds 127.0.0.1 only). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) {
        perror("bind/listen");
        return 1;
    }
    const char *body = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    char buf[16384];
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        if (read(c, buf, sizeof buf) > 0 && write(c, resp, (size_t)n) != n)
            perror("write");
        shutdown(c, SHUT_WR);
        close(c);
    }
}
