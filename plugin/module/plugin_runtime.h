/* plugin: the runtime a module links. It does not take over main(): the
 * module calls plugin_runtime_init once, early, with its SRPC methods and
 * (optionally) a message handler, and goes on with its own loop. The
 * runtime accepts the host's connections on the BoundSocket it was started
 * with, answers the start-up handshake, serves the module's methods on
 * every connection, and carries postMessage both ways.
 *
 * Every function may be called from any thread once init has returned.
 * docs/plugin.md is the module author's guide. */

#ifndef PLUGIN_MODULE_PLUGIN_RUNTIME_H_
#define PLUGIN_MODULE_PLUGIN_RUNTIME_H_

#include <stddef.h>

#include "plugin/common/plugin_message.h"
#include "plugin/objects/plugin_objects.h"
#include "srpc/srpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PluginRuntimeConfig {
  /* The module's methods, served to the host and to any module it is
   * connected to. Handlers run on the runtime's threads. */
  const SrpcMethod* methods;
  size_t num_methods;
  void* methods_user;
  /* Messages from the host: called on one runtime thread, in order (the
   * handler owns *msg as PluginSocketCallback's does), and once with msg
   * NULL when the message channel ends. NULL: messages wait for
   * plugin_runtime_receive. */
  void (*on_message)(PluginMessage* msg, void* user);
  void* message_user;
  /* When the host asks for shutdown, or goes away (its control channel
   * closes): the last chance to flush; the process then ends with
   * _exit(0), dropping messages not yet sent. May be NULL. */
  void (*on_shutdown)(void* user);
  void* shutdown_user;
  /* The bytes queued for the host passed the quota (see
   * plugin_runtime_set_quota); again only after they fell to half of it.
   * Called on the posting thread; it must not block. May be NULL. */
  void (*on_quota)(size_t queued_bytes, void* user);
  void* quota_user;
  /* Bound on one message, both ways, and on one SRPC message on the
   * service channels; 0: the defaults. */
  size_t max_message_bytes;
} PluginRuntimeConfig;

/* Starts the runtime on the BoundSocket named by PLUGIN_MODULE_FD (3).
 * Returns at once (the handshake happens on the runtime's threads):
 * PLUGIN_OK, PLUGIN_ERROR_INVALID_ARGUMENT (a second init, a bad method
 * table, or no BoundSocket at that descriptor: not started by a host),
 * _NO_MEMORY. */
PLUGIN_EXPORT int plugin_runtime_init(const PluginRuntimeConfig* config);

/* Waits until the host has started the module (timeout < 0: no limit).
 * Returns PLUGIN_OK or PLUGIN_ERROR_TIMED_OUT. */
PLUGIN_EXPORT int plugin_runtime_wait_started(int timeout_ms);

/* postMessage to the host: never blocks (before start-up it is queued
 * too); unlimited queue; descriptors duplicated. Returns a PluginResult. */
PLUGIN_EXPORT int plugin_runtime_post(const void* data,
                                      size_t len,
                                      const int* fds,
                                      size_t num_fds);
PLUGIN_EXPORT size_t plugin_runtime_queued_bytes(void);
PLUGIN_EXPORT void plugin_runtime_set_quota(size_t bytes);

/* Without on_message: the next message from the host, waiting up to
 * `timeout_ms` (< 0: no limit). Returns PLUGIN_OK, _TIMED_OUT, _CLOSED
 * (the host is gone), or _INVALID_ARGUMENT (a handler is set). */
PLUGIN_EXPORT int plugin_runtime_receive(PluginMessage* out, int timeout_ms);

/* The channel the host's methods are called on (the module's service
 * channel: the host serves its own methods there too); NULL before
 * start-up. Call srpc_channel_discover on it before calling by name. */
PLUGIN_EXPORT SrpcChannel* plugin_runtime_host_channel(void);

/* Asks the host for one more channel to it (served by a runtime thread,
 * the module's methods served on it too). NULL on failure. Channels live
 * until the process ends. */
PLUGIN_EXPORT SrpcChannel* plugin_runtime_open_channel(void);

/* The object channel to the host (plugin/objects), once the host has
 * opened it (plugin_module_objects); waits up to `timeout_ms` (< 0: no
 * limit). NULL on timeout. Lives until the process ends. */
PLUGIN_EXPORT PluginObjects* plugin_runtime_objects(int timeout_ms);

/* The object the host gets as this module's root (plugin_objects_root),
 * now or when the host opens the channel. A reference is taken. */
PLUGIN_EXPORT void plugin_runtime_set_root_object(PluginObject* root);

/* Sends a line to the host's log. Returns an SRPC result. */
PLUGIN_EXPORT int plugin_runtime_log(int level, const char* text);

/* Waits up to `timeout_ms` for the host to give this module a
 * SocketAddress named `name` (plugin_module_give_address) and returns a
 * descriptor for it (the caller's), or -1 (errno ETIMEDOUT; EINVAL
 * before init; EMFILE). */
PLUGIN_EXPORT int plugin_runtime_wait_address(const char* name, int timeout_ms);

/* Connects to another module's SocketAddress and returns a channel to its
 * service (the module's own methods served on it too), or NULL with errno
 * (imc_connect_ex's). Channels live until the process ends. */
PLUGIN_EXPORT SrpcChannel* plugin_runtime_connect(int address, int timeout_ms);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_MODULE_PLUGIN_RUNTIME_H_ */
