/* demo_host: launches a module under a file-access policy, serves its
 * opens through the broker, and shows every decision.
 *
 *   demo_host [--allow-read PATH]... [--allow-write PATH]... [--sandbox]
 *             -- PROGRAM [ARGS...]
 *
 * --allow-read PATH   PATH (a directory: everything beneath it) may be read
 * --allow-write PATH  ... and written; in a directory, files may be created
 * --sandbox           run the module in the sandbox: no open() of its own
 * PROGRAM             the module; a bare name is looked up beside demo_host
 *
 * The module gets the broker socket in its first message, "broker".
 * demo_host exits with the module's exit code (128 + signal if killed). */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plugin/broker/broker.h"
#include "plugin/host/plugin_host.h"

typedef struct Demo {
  PluginHost* host;
  const char* name;
  int status;
  bool exited;
  unsigned allowed;
  unsigned denied;
} Demo;

static const char* access_words(const BrokerDecision* d) {
  if (d->op == BROKER_DECISION_STAT)
    return "stat";
  if (d->op == BROKER_DECISION_ACCESS)
    return "access";
  if (d->op != BROKER_DECISION_OPEN)
    return "request";
  int acc = (int)d->flags & O_ACCMODE;
  if (d->flags & O_CREAT)
    return "open to create";
  return acc == O_RDONLY   ? "open for reading"
         : acc == O_WRONLY ? "open for writing"
                           : "open for reading and writing";
}

static void on_decision(const BrokerDecision* d, void* user) {
  Demo* demo = user;
  if (d->result >= 0) {
    demo->allowed++;
    printf("demo_host: broker: %s %s: allowed\n", access_words(d), d->path);
  } else {
    demo->denied++;
    printf("demo_host: broker: %s %s: DENIED (%s): %s\n", access_words(d),
           d->path, d->reason, strerror(-d->result));
  }
}

static void on_exit_cb(PluginModule* m, int status, void* user) {
  (void)m;
  Demo* demo = user;
  demo->exited = true;
  demo->status = status;
  plugin_host_quit(demo->host);
}

static void on_log(PluginModule* m, int level, const char* text, void* user) {
  (void)m;
  (void)level;
  printf("%s (log): %s\n", ((Demo*)user)->name, text);
}

static int usage(void) {
  fprintf(stderr,
          "usage: demo_host [--allow-read PATH]... [--allow-write PATH]... "
          "[--sandbox] -- PROGRAM [ARGS...]\n");
  return 2;
}

/* PROGRAM as given if it has a '/', else beside this executable. */
static void program_path(const char* program, char* out, size_t cap) {
  if (strchr(program, '/') != NULL) {
    snprintf(out, cap, "%s", program);
    return;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  char* slash = strrchr(self, '/');
  if (slash != NULL)
    slash[1] = '\0';
  snprintf(out, cap, "%s%s", self, program);
}

static int add_rule(BrokerPolicy* policy, const char* path, bool write) {
  struct stat st;
  bool dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  unsigned perms = BROKER_ALLOW_READ;
  if (write)
    perms |= BROKER_ALLOW_WRITE | BROKER_ALLOW_CREATE;
  if (dir)
    perms |= BROKER_RECURSIVE;
  int error = broker_policy_allow(policy, path, perms);
  if (error != 0) {
    fprintf(stderr, "demo_host: cannot allow %s: %s%s\n", path, strerror(error),
            error == EINVAL ? " (give an absolute path with no \".\" or "
                              "\"..\" and no trailing \"/\")"
                            : "");
    return -1;
  }
  printf("demo_host: policy: %s %s%s\n",
         write ? "read, write and create" : "read", path,
         dir ? " and everything beneath it" : "");
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  BrokerPolicy* policy = broker_policy_new();
  bool sandbox = false;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (strcmp(argv[i], "--sandbox") == 0) {
      sandbox = true;
    } else if ((strcmp(argv[i], "--allow-read") == 0 ||
                strcmp(argv[i], "--allow-write") == 0) &&
               i + 1 < argc) {
      bool write = argv[i][8] == 'w';
      if (add_rule(policy, argv[++i], write) != 0)
        return 2;
    } else {
      return usage();
    }
  }
  if (i >= argc)
    return usage();

  char path[PATH_MAX];
  program_path(argv[i], path, sizeof(path));
  const char* name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  Demo demo = {0};
  demo.name = name;
  demo.host = plugin_host_new(NULL);
  if (demo.host == NULL) {
    perror("demo_host");
    return 1;
  }
  BrokerServer* server = NULL;
  int broker = broker_serve(demo.host, policy, on_decision, &demo, &server);
  if (broker < 0) {
    perror("demo_host: broker");
    return 1;
  }
  PluginLaunchOptions o = {0};
  o.path = path;
  o.argv = (const char* const*)(argv + i);
  o.sandbox = sandbox;
  o.callbacks.on_exit = on_exit_cb;
  o.callbacks.on_log = on_log;
  o.callbacks.user = &demo;
  PluginModule* module = NULL;
  int r = plugin_module_launch(demo.host, &o, &module);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "demo_host: cannot start %s: %s%s%s\n", path,
            plugin_result_string(r), r == PLUGIN_ERROR_SPAWN ? ": " : "",
            r == PLUGIN_ERROR_SPAWN ? strerror(errno) : "");
    if (r == PLUGIN_ERROR_HANDSHAKE && sandbox)
      fprintf(stderr,
              "demo_host: (a sandboxed module must be statically linked)\n");
    return 1;
  }
  printf("demo_host: started %s%s, pid %d\n", name,
         sandbox ? " in the sandbox" : "", (int)plugin_module_pid(module));
  /* Seed 000's plan: the broker socket goes to the module at start-up. */
  r = plugin_module_post(module, "broker", 6, &broker, 1);
  close(broker);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "demo_host: %s\n", plugin_result_string(r));
    return 1;
  }
  plugin_host_run(demo.host);
  int code = WIFEXITED(demo.status)     ? WEXITSTATUS(demo.status)
             : WIFSIGNALED(demo.status) ? 128 + WTERMSIG(demo.status)
                                        : 1;
  printf("demo_host: %s exited with status %d; broker: %u allowed, %u denied\n",
         name, code, demo.allowed, demo.denied);
  plugin_module_free(module);
  broker_server_free(server);
  plugin_host_run_until_idle(demo.host);
  plugin_host_free(demo.host);
  broker_policy_free(policy);
  return code;
}
