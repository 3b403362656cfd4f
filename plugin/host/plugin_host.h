/* plugin: the host side. An embedder (any program with a main thread and an
 * event loop) launches modules, exchanges messages and descriptors with
 * them, calls their SRPC methods and serves its own.
 *
 * Threads: the host's "main thread" is the thread that created it. Every
 * callback of this header runs on the main thread, one at a time; the
 * callbacks of one stream (one module's messages, one socket's messages)
 * come in order, but different streams are not ordered with each other (a
 * module's on_exit may come before its last messages). Functions say from
 * which threads they may be called. docs/plugin.md is the guide. */

#ifndef PLUGIN_HOST_PLUGIN_HOST_H_
#define PLUGIN_HOST_PLUGIN_HOST_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plugin/common/plugin_message.h"
#include "plugin/objects/plugin_objects.h"
#include "srpc/srpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PluginHost PluginHost;
typedef void (*PluginTask)(void* arg);

typedef struct PluginHostOptions {
  /* To fit an existing event loop: called (from any thread, possibly with
   * the host's locks held: it must only post) when tasks are waiting; the
   * embedder then calls plugin_host_run_pending on its main thread soon.
   * NULL: the built-in loop (plugin_host_run) is used. */
  void (*post_hook)(void* hook_user);
  void* hook_user;
  /* The host's own SRPC methods, offered to every module on its service
   * channel and on extra channels (may be empty). Handlers run on the
   * channel's thread, not the main thread; they may complete later (a
   * handler can post a task and complete from it). */
  const SrpcMethod* methods;
  size_t num_methods;
  void* methods_user;
} PluginHostOptions;

/* Makes a host whose main thread is the calling thread. `options` may be
 * NULL. Returns NULL (errno set) on failure, or if a method table is
 * invalid (EINVAL). */
PLUGIN_EXPORT PluginHost* plugin_host_new(const PluginHostOptions* options);

/* Main thread. Every module and socket must have been freed. Tasks still
 * queued run first (their callbacks included). */
PLUGIN_EXPORT void plugin_host_free(PluginHost* host);

/* ---- Main-thread calls ---------------------------------------------- */

/* Queues fn(arg) to run on the main thread, after every task queued
 * before it (FIFO across all threads). Any thread. Returns PLUGIN_OK or
 * PLUGIN_ERROR_NO_MEMORY. */
PLUGIN_EXPORT int plugin_call_on_main_thread(PluginHost* host,
                                             PluginTask fn,
                                             void* arg);

/* Main thread: runs the tasks queued now (not those they queue) and
 * returns how many ran. What an embedder's loop calls after the hook. */
PLUGIN_EXPORT size_t plugin_host_run_pending(PluginHost* host);

/* The built-in loop (main thread). plugin_host_run runs tasks and watched
 * descriptors until plugin_host_quit (any thread; a quit before run makes
 * the next run return at once). plugin_host_run_until_idle runs until no
 * task is queued and returns how many ran. */
PLUGIN_EXPORT int plugin_host_run(PluginHost* host);
PLUGIN_EXPORT void plugin_host_quit(PluginHost* host);
PLUGIN_EXPORT size_t plugin_host_run_until_idle(PluginHost* host);

/* Built-in loop only (main thread): calls cb(fd, epoll events, user) on the
 * main thread whenever `fd` is ready for `events` (EPOLLIN, EPOLLOUT...).
 * Returns PLUGIN_OK or PLUGIN_ERROR_SYSTEM (errno from epoll_ctl). */
typedef void (*PluginFdCallback)(int fd, uint32_t events, void* user);
PLUGIN_EXPORT int plugin_host_watch_fd(PluginHost* host,
                                       int fd,
                                       uint32_t events,
                                       PluginFdCallback cb,
                                       void* user);
PLUGIN_EXPORT int plugin_host_unwatch_fd(PluginHost* host, int fd);

/* ---- Cancelling synchronous waits (the renderer's "stop script") ------ */

/* Any thread: raises the host's cancel flag, which ends promptly every
 * synchronous wait of the layer in progress, on any thread
 * (plugin_module_wait_message, plugin_module_call, the start-up of
 * plugin_module_launch, plugin_module_give_address), with
 * PLUGIN_ERROR_CANCELLED / SRPC_RESULT_CANCELLED. The flag stays raised,
 * failing those waits at once (a message already queued is still
 * returned by plugin_module_wait_message), until plugin_host_reset_cancel
 * lowers it. */
PLUGIN_EXPORT void plugin_host_cancel_waits(PluginHost* host);
PLUGIN_EXPORT void plugin_host_reset_cancel(PluginHost* host);

/* ---- make_socket (seed 000) ------------------------------------------- */

typedef struct PluginSocket PluginSocket;

/* Main thread. `msg` is one received message (owned by the callback: take
 * descriptors by setting them to -1; the rest is freed after it returns).
 * Once, at the end: msg NULL and `error` 0 if the peer closed, else the
 * errno that ended the socket (EMSGSIZE: a datagram over
 * IMC_MAX_DATA_BYTES; EMFILE: no descriptor for what it carried). */
typedef void (*PluginSocketCallback)(PluginSocket* socket,
                                     PluginMessage* msg,
                                     int error,
                                     void* user);

/* Any thread. Makes a socket pair; keeps one end, listened to by a thread
 * that delivers each message it receives to `callback` on the main thread,
 * in order, with its descriptors; returns the other end, for the module
 * (close-on-exec; the caller owns it and typically sends it). One IMC
 * datagram is one message. Returns the descriptor, or -1 with errno.
 * *out_socket (may be NULL) gets the host's handle. */
PLUGIN_EXPORT int plugin_make_socket(PluginHost* host,
                                     PluginSocketCallback callback,
                                     void* user,
                                     PluginSocket** out_socket);

/* Any thread. Sends one message (one datagram: at most IMC_MAX_DATA_BYTES,
 * at least one byte or descriptor) to the other end; never blocks (it is
 * queued while the socket is full). Descriptors are duplicated. Returns a
 * PluginResult. */
PLUGIN_EXPORT int plugin_socket_send(PluginSocket* socket,
                                     const void* data,
                                     size_t len,
                                     const int* fds,
                                     size_t num_fds);

/* Bytes queued for sending. Any thread. */
PLUGIN_EXPORT size_t plugin_socket_queued_bytes(PluginSocket* socket);

/* Main thread. Closes the host's end; no callback runs after it returns. */
PLUGIN_EXPORT void plugin_socket_close(PluginSocket* socket);

/* ---- Modules ------------------------------------------------------------ */

typedef struct PluginModule PluginModule;

typedef struct PluginModuleCallbacks {
  /* A postMessage from the module (owned as for PluginSocketCallback), or,
   * once, msg NULL when the message channel ends (error as there). */
  void (*on_message)(PluginModule* module,
                     PluginMessage* msg,
                     int error,
                     void* user);
  /* Once: the process ended; `wait_status` as waitpid gives it, or -1 if
   * it could not be collected (the embedder reaped the child itself, or
   * SIGCHLD is ignored). */
  void (*on_exit)(PluginModule* module, int wait_status, void* user);
  /* The module's log lines (text NUL-terminated, at most
   * PLUGIN_MAX_LOG_BYTES). */
  void (*on_log)(PluginModule* module, int level, const char* text, void* user);
  /* The bytes queued for the module passed the quota; again only after
   * they have fallen to half the quota or below. */
  void (*on_quota)(PluginModule* module, size_t queued_bytes, void* user);
  void* user;
} PluginModuleCallbacks;

typedef struct PluginLaunchOptions {
  const char* path;         /* the program, executed as is (no PATH) */
  const char* const* argv;  /* NULL-terminated; NULL: { path } */
  const char* const* envp;  /* NULL: the host's environment */
  int start_timeout_ms;     /* the whole start-up; <= 0: 10000 */
  size_t max_message_bytes; /* 0: PLUGIN_DEFAULT_MAX_MESSAGE_BYTES */
  /* Nonzero: the module runs in the sandbox (docs/broker.md): from its
   * first instruction, opening a file by name, changing the file system
   * by name, creating sockets and the other calls listed there fail with
   * EACCES (clone3 and calls newer than the filter with ENOSYS); files
   * come through the open() broker (plugin/broker). The filter is in force
   * before the program's dynamic loader runs, so a sandboxed module must
   * be statically linked. Launch fails with PLUGIN_ERROR_SPAWN (errno
   * ENOSYS) where no filter exists for the architecture. */
  int sandbox;
  /* Called in the child after its descriptors are set up and before exec
   * (for a sandbox); only async-signal-safe work. Returns 0 to go on, or
   * an errno to fail the launch with. May be NULL. */
  int (*before_exec)(void* user);
  void* before_exec_user;
  PluginModuleCallbacks callbacks;
} PluginLaunchOptions;

/* Main thread. Starts the program with a BoundSocket at descriptor
 * PLUGIN_MODULE_BOUND_FD (3; named by the environment variable
 * PLUGIN_MODULE_FD) and descriptors 0, 1, 2 inherited, nothing else; then
 * connects twice (the control channel, then the module's service), starts
 * the module and discovers its methods. Blocks for the start-up only.
 * Returns PLUGIN_OK and *out, or: PLUGIN_ERROR_SPAWN (errno: why exec
 * failed), _START_TIMEOUT (the module did not accept in time: it is
 * killed), _HANDSHAKE (it answered start-up wrongly or died during it),
 * _INVALID_ARGUMENT, _NO_MEMORY, _NO_DESCRIPTORS, _CANCELLED,
 * _WRONG_THREAD, _SYSTEM (errno). PLUGIN_ERROR_SPAWN's errno may also come
 * from fork or from before_exec. On failure no process, thread or
 * descriptor is left. */
PLUGIN_EXPORT int plugin_module_launch(PluginHost* host,
                                       const PluginLaunchOptions* options,
                                       PluginModule** out);

PLUGIN_EXPORT pid_t plugin_module_pid(const PluginModule* module);

/* Any thread. postMessage to the module: never blocks; unlimited queue.
 * Descriptors are duplicated. Returns a PluginResult (_CLOSED once the
 * module can no longer receive). */
PLUGIN_EXPORT int plugin_module_post(PluginModule* module,
                                     const void* data,
                                     size_t len,
                                     const int* fds,
                                     size_t num_fds);

/* Bytes and messages queued for the module and not yet taken by its
 * socket. Any thread. */
PLUGIN_EXPORT size_t plugin_module_queued_bytes(PluginModule* module);
PLUGIN_EXPORT size_t plugin_module_queued_messages(PluginModule* module);

/* Sets the soft quota for on_quota (0: none). Never a drop, never a
 * block. Any thread. */
PLUGIN_EXPORT void plugin_module_set_quota(PluginModule* module, size_t bytes);

/* Main thread: waits up to `timeout_ms` (< 0: no limit) for the module's
 * next message and returns it in *out instead of to on_message (which
 * still gets every later one, in order). Returns PLUGIN_OK,
 * _TIMED_OUT, _CANCELLED (plugin_host_cancel_waits), _CLOSED (no message
 * will come), or _WRONG_THREAD. */
PLUGIN_EXPORT int plugin_module_wait_message(PluginModule* module,
                                             int timeout_ms,
                                             PluginMessage* out);

/* The channel to the module's service, its methods discovered at launch.
 * For asynchronous use from other threads; valid until the module is
 * freed. */
PLUGIN_EXPORT SrpcChannel* plugin_module_channel(PluginModule* module);

/* A synchronous call into the module (any thread; on the main thread it
 * is what a page's synchronous call is): by name or full signature, bounded
 * by `timeout_ms` (< 0: none) and by plugin_host_cancel_waits. Returns an
 * SRPC result: SRPC_RESULT_OK, the module's error, SRPC_RESULT_TIMED_OUT,
 * SRPC_RESULT_CANCELLED, SRPC_RESULT_BAD_RPC_NUMBER (no such method),
 * SRPC_RESULT_INTERNAL (the module is gone). in/out as srpc_invoke_args. */
PLUGIN_EXPORT int plugin_module_call(PluginModule* module,
                                     const char* name_or_signature,
                                     int timeout_ms,
                                     const SrpcArg* in,
                                     size_t num_in,
                                     SrpcArg* out,
                                     size_t num_out);

/* Main thread. The object channel to the module (plugin/objects), opened
 * on first use (a socket pair whose other end goes to the module's
 * runtime); *out is valid until the module is freed. Returns a
 * PluginResult (_CLOSED: the module is gone; _TIMED_OUT, _CANCELLED). */
PLUGIN_EXPORT int plugin_module_objects(PluginModule* module,
                                        PluginObjects** out);

/* Main thread. Gives module `to` a SocketAddress of module `of` under
 * `name`, so `to` can connect to `of`'s service directly (module side:
 * plugin_module_wait_address, plugin_module_connect). Returns a
 * PluginResult. */
PLUGIN_EXPORT int plugin_module_give_address(PluginModule* to,
                                             const char* name,
                                             PluginModule* of);

/* Main thread. Asks the module to shut down, waits up to `grace_ms` in all
 * for it to exit, then kills it (SIGKILL); reaps it in every case. *wait_status
 * (may be NULL) gets its status. Returns PLUGIN_OK. on_exit still runs
 * (as a task) unless the module is freed first. */
PLUGIN_EXPORT int plugin_module_shutdown(PluginModule* module,
                                         int grace_ms,
                                         int* wait_status);

/* Main thread. Shuts down (grace 0) if still running, ends every thread
 * and frees. No callback for it runs after this returns. */
PLUGIN_EXPORT void plugin_module_free(PluginModule* module);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_HOST_PLUGIN_HOST_H_ */
