/*
 * Descriptor hygiene: the library's descriptors never take 0, 1 or 2.
 *
 * A daemon or a supervisor may start the process with stdio closed; the
 * next pipe(), socket() or open() then returns 0, 1 or 2, and the
 * application's next printf (or the library's default log sink) writes
 * into the library's pipe or socket.  Every descriptor the library makes
 * goes through health__fd_hoist(); calls that make descriptors inside
 * another library (MHD_start_daemon) run between health__stdio_plug()
 * and health__stdio_unplug().  Descriptors such a library makes later
 * (connections libmicrohttpd accepts, libpq's sockets) cannot be moved
 * from here: docs/guide.md, "Log sink, stdio and signals".
 */
#include "health_int.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int health__fd_hoist(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

int health__pipe2(int fds[2], int flags) {
  if (pipe2(fds, flags) != 0) return -1;
  fds[0] = health__fd_hoist(fds[0]);
  fds[1] = health__fd_hoist(fds[1]);
  if (fds[0] >= 0 && fds[1] >= 0) return 0;
  int saved = errno;
  if (fds[0] >= 0) close(fds[0]);
  if (fds[1] >= 0) close(fds[1]);
  fds[0] = fds[1] = -1;
  errno = saved;
  return -1;
}

void health__stdio_plug(int plugged[3]) {
  for (int fd = 0; fd < 3; fd++) {
    plugged[fd] = -1;
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    /* open() returns the lowest free number: fd itself, as 0..fd-1 are
     * open by now. */
    int n = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (n == fd) plugged[fd] = n;
    else if (n >= 0) close(n);
  }
}

void health__stdio_unplug(const int plugged[3]) {
  for (int fd = 0; fd < 3; fd++)
    if (plugged[fd] >= 0) close(plugged[fd]);
}
