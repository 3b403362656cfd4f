/* demo_write: a module that writes a file it can only reach through the
 * host's open() broker.
 *
 *   demo_write PATH TEXT
 *
 * Creates (or truncates) PATH through the broker and writes TEXT and a
 * newline into it. Exits 0 if it worked, 1 if the broker refused. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plugin/broker/broker_client.h"
#include "plugin/module/plugin_runtime.h"

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 3) {
    fprintf(stderr, "usage: demo_write PATH TEXT\n");
    return 2;
  }
  PluginRuntimeConfig config = {0};
  if (plugin_runtime_init(&config) != PLUGIN_OK) {
    fprintf(stderr, "demo_write: start me with demo_host\n");
    return 2;
  }
  PluginMessage m;
  if (plugin_runtime_receive(&m, 10000) != PLUGIN_OK || m.num_fds != 1) {
    fprintf(stderr, "demo_write: no broker socket from the host\n");
    return 2;
  }
  broker_set_default(m.fds[0]);
  m.fds[0] = -1;
  plugin_message_free(&m);
  int fd = broker_open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    printf("demo_write: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  size_t len = strlen(argv[2]);
  int ok = write(fd, argv[2], len) == (ssize_t)len && write(fd, "\n", 1) == 1;
  close(fd);
  printf("demo_write: %s: %s\n", argv[1], ok ? "written" : strerror(errno));
  return ok ? 0 : 1;
}
