/* plugin: the open() broker, host side. A module that cannot open files
 * itself (it may be sandboxed: PluginLaunchOptions.sandbox) sends open,
 * stat and access requests over a socket made by plugin_make_socket; the
 * host checks them against a policy, performs them beneath the allowed
 * directories, and answers with the result and the opened descriptor.
 * docs/broker.md describes the policy, the wire format and the threat
 * model. */

#ifndef PLUGIN_BROKER_BROKER_H_
#define PLUGIN_BROKER_BROKER_H_

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "plugin/host/plugin_host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a rule allows. READ: open for reading, access(R_OK). WRITE: open
 * for writing (O_WRONLY, O_RDWR, O_TRUNC, O_APPEND), access(W_OK). Either
 * allows stat and access(F_OK). CREATE: O_CREAT (with WRITE). RECURSIVE:
 * the path is a directory and the rule covers everything beneath it;
 * without it the rule covers exactly that one file (which CREATE may
 * create). The longest rule covering a path decides; a longer rule can add
 * permissions beneath a directory, but cannot take any away: a symbolic
 * link inside the outer tree reaches below with the outer rule's. Only
 * regular files and directories are ever opened. */
enum {
  BROKER_ALLOW_READ = 1u << 0,
  BROKER_ALLOW_WRITE = 1u << 1,
  BROKER_ALLOW_CREATE = 1u << 2,
  BROKER_RECURSIVE = 1u << 3,
};

typedef struct BrokerPolicy BrokerPolicy;

PLUGIN_EXPORT BrokerPolicy* broker_policy_new(void);
PLUGIN_EXPORT void broker_policy_free(BrokerPolicy* policy);

/* Adds a rule; add them all before serving (the policy is not locked).
 * `path` must be absolute and plain: no "." or ".." component, no empty
 * component, no trailing "/" (except "/" itself). The directory
 * (RECURSIVE) or the file's directory is opened now, so the rule keeps
 * meaning the same directory even if the name is later moved. Returns 0,
 * or EINVAL (a path that is not plain, unknown bits, CREATE without
 * WRITE), EEXIST (a rule for that path exists), or the errno of opening
 * the directory. */
PLUGIN_EXPORT int broker_policy_allow(BrokerPolicy* policy,
                                      const char* path,
                                      unsigned permissions);

/* BrokerDecision.op: what was asked (the numbers used on the wire). */
enum {
  BROKER_DECISION_OPEN = 1,
  BROKER_DECISION_STAT = 2,
  BROKER_DECISION_ACCESS = 3,
};

/* The outcome of one request, for logs and tests. */
typedef struct BrokerDecision {
  int op;          /* BROKER_DECISION_*; 0: a request that did not decode */
  char path[4096]; /* as requested (cut if longer) */
  uint32_t flags;
  int result;         /* >= 0 (for open, the descriptor's number, closed by the
                        server by the time a log sees it), or -errno */
  const char* reason; /* a short English explanation */
} BrokerDecision;

/* Performs one request: checks it against the policy and, if allowed,
 * opens (or stats, or checks) the file beneath its rule's directory with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so that neither ".."
 * nor a symbolic link can lead outside. For open, a non-negative result is
 * a new close-on-exec descriptor the caller owns. *decision (may be NULL)
 * explains. Any thread. */
PLUGIN_EXPORT int broker_policy_open(const BrokerPolicy* policy,
                                     const char* path,
                                     int flags,
                                     mode_t mode,
                                     BrokerDecision* decision);
PLUGIN_EXPORT int broker_policy_stat(const BrokerPolicy* policy,
                                     const char* path,
                                     int flags,
                                     struct stat* st,
                                     BrokerDecision* decision);
PLUGIN_EXPORT int broker_policy_access(const BrokerPolicy* policy,
                                       const char* path,
                                       int amode,
                                       BrokerDecision* decision);

/* Decodes one request datagram and performs it: what the server does with
 * each message. Returns the reply's length in reply[BROKER_REPLY_MAX_BYTES]
 * (see broker_wire.h) and sets *out_fd to a descriptor to send with it (or
 * -1), which the caller then closes. Never fails: a malformed request gets
 * a reply of -EPROTO (or the decoding error). */
PLUGIN_EXPORT size_t broker_handle_request(const BrokerPolicy* policy,
                                           const uint8_t* request,
                                           size_t len,
                                           uint8_t* reply,
                                           int* out_fd,
                                           BrokerDecision* decision);

typedef void (*BrokerLogFn)(const BrokerDecision* decision, void* user);

typedef struct BrokerServer BrokerServer;

/* Main thread. Serves `policy` (which must outlive the server) on a new
 * make_socket socket: each request is handled on the main thread, as seed
 * 000 proposes, and `log` (may be NULL) is told each decision there.
 * Returns the descriptor to hand to the module (close-on-exec; the caller
 * owns it), or -1 with errno; *out gets the server. */
PLUGIN_EXPORT int broker_serve(PluginHost* host,
                               const BrokerPolicy* policy,
                               BrokerLogFn log,
                               void* user,
                               BrokerServer** out);

/* Any thread. The same, served on a thread of its own instead of the
 * host's main thread: one hop less per request (measured in
 * plugin_perftests), and `log` is called on that thread. Needs no host. */
PLUGIN_EXPORT int broker_serve_on_thread(const BrokerPolicy* policy,
                                         BrokerLogFn log,
                                         void* user,
                                         BrokerServer** out);

/* Stops serving (the module's further requests fail with EPIPE) and
 * frees: on the main thread for broker_serve, any thread but the
 * server's own (not from its log callback) for broker_serve_on_thread. */
PLUGIN_EXPORT void broker_server_free(BrokerServer* server);

/* Requests decoded and answered, and messages refused as malformed (no
 * reply socket, or undecodable: those get -EPROTO if they had a reply
 * socket): two disjoint counters for the embedder. */
PLUGIN_EXPORT uint64_t broker_server_requests(const BrokerServer* server);
PLUGIN_EXPORT uint64_t broker_server_malformed(const BrokerServer* server);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_BROKER_BROKER_H_ */
