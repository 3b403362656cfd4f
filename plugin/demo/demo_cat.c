/* demo_cat: a module that prints files it can only reach through the
 * host's open() broker.
 *
 *   demo_cat [--direct PATH] PATH...
 *
 * It waits for the host's first message, "broker" with the broker socket,
 * then opens each PATH through the broker and prints it (or why it could
 * not). --direct also tries an ordinary open() of PATH, to show what the
 * sandbox does to it. Exits 0 once it has tried everything. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plugin/broker/broker_client.h"
#include "plugin/module/plugin_runtime.h"

/* The broker socket from the host's first message, or -1. */
static int receive_broker(void) {
  PluginMessage m;
  if (plugin_runtime_receive(&m, 10000) != PLUGIN_OK)
    return -1;
  int fd = -1;
  if (m.len == 6 && memcmp(m.data, "broker", 6) == 0 && m.num_fds == 1) {
    fd = m.fds[0];
    m.fds[0] = -1;
  }
  plugin_message_free(&m);
  return fd;
}

static void cat(const char* path) {
  int fd = broker_open(path, O_RDONLY);
  if (fd < 0) {
    printf("demo_cat: %s: %s\n", path, strerror(errno));
    return;
  }
  printf("demo_cat: %s:\n", path);
  char buf[4096];
  ssize_t n;
  char last = '\n';
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    printf("    %.*s", (int)n, buf);
    last = buf[n - 1];
  }
  if (last != '\n')
    printf("\n");
  close(fd);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  PluginRuntimeConfig config = {0};
  int r = plugin_runtime_init(&config);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "demo_cat: %s (start me with demo_host)\n",
            plugin_result_string(r));
    return 2;
  }
  int broker = receive_broker();
  if (broker < 0) {
    fprintf(stderr, "demo_cat: no broker socket from the host\n");
    return 2;
  }
  broker_set_default(broker);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--direct") == 0 && i + 1 < argc) {
      const char* path = argv[++i];
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        printf("demo_cat: open(\"%s\") without the broker: %s\n", path,
               strerror(errno));
      } else {
        printf(
            "demo_cat: open(\"%s\") without the broker: worked "
            "(no sandbox)\n",
            path);
        close(fd);
      }
      continue;
    }
    cat(argv[i]);
  }
  return 0;
}
