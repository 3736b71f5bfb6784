/*
 * reqloop: a deterministic HTTP/1.1 client for instruction counting.
 *
 * usage: reqloop PORT PATH N [close]
 *   Sends N GET requests to 127.0.0.1:PORT PATH, over one keep-alive
 *   connection, or (with "close") one connection per request with
 *   "Connection: close".  Reads each answer completely (headers plus
 *   Content-Length bytes).  Exits 0 if every answer was 200, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror("connect");
    exit(1);
  }
  return fd;
}

/* Read one answer; returns its status code, or -1. */
static int read_answer(int fd, char *buf, size_t cap) {
  size_t len = 0;
  char *end = NULL;
  while (!end) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = 0;
    end = strstr(buf, "\r\n\r\n");
    if (!end && len >= cap - 1) return -1;
  }
  size_t hdr = (size_t)(end + 4 - buf);
  long clen = 0;
  for (char *p = buf; p && p < end; p = strstr(p, "\r\n")) {
    if (*p == '\r') p += 2;
    if (!strncasecmp(p, "Content-Length:", 15)) clen = atol(p + 15);
  }
  size_t have = len - hdr;
  while (have < (size_t)clen) {
    char tmp[4096];
    size_t want = (size_t)clen - have;
    ssize_t n = read(fd, tmp, want < sizeof tmp ? want : sizeof tmp);
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  return atoi(buf + 9);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: reqloop PORT PATH N [close]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  const char *path = argv[2];
  long n = atol(argv[3]);
  int close_each = argc > 4 && !strcmp(argv[4], "close");
  char req[512], *buf = malloc(1 << 20);
  int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path,
                    close_each ? "Connection: close\r\n" : "");
  int fd = -1, bad = 0;
  for (long i = 0; i < n; i++) {
    if (fd < 0) fd = dial(port);
    if (write(fd, req, (size_t)rl) != rl) return 1;
    int code = read_answer(fd, buf, 1 << 20);
    if (code != 200) bad++;
    if (code < 0) {
      fprintf(stderr, "reqloop: bad answer\n");
      return 1;
    }
    if (close_each) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  if (bad) fprintf(stderr, "reqloop: %d answers were not 200\n", bad);
  return bad ? 1 : 0;
}
