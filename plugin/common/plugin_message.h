/* plugin: what the host and a module exchange with postMessage and through
 * make_socket sockets: bytes plus descriptors, never text with an encoding.
 * docs/plugin.md describes the layer; this header is shared by both sides. */

#ifndef PLUGIN_COMMON_PLUGIN_MESSAGE_H_
#define PLUGIN_COMMON_PLUGIN_MESSAGE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLUGIN_EXPORT __attribute__((visibility("default")))

/* A message. The receiver of one owns it: it may take a descriptor by
 * setting its slot to -1; plugin_message_free releases the rest. */
typedef struct PluginMessage {
  uint8_t* data; /* NULL when len is 0 */
  size_t len;
  int* fds; /* NULL when num_fds is 0 */
  size_t num_fds;
} PluginMessage;

/* Frees the bytes, closes every descriptor that is not -1, and zeroes *m.
 * NULL is allowed. */
PLUGIN_EXPORT void plugin_message_free(PluginMessage* m);

/* At most this many descriptors travel with one message. */
#define PLUGIN_MAX_MESSAGE_DESCRIPTORS 253

/* The default bound on one postMessage message (both directions; a module
 * or host can lower or raise it): what a peer can make the receiver
 * allocate for one message. */
#define PLUGIN_DEFAULT_MAX_MESSAGE_BYTES (64u * 1024 * 1024)

/* Results of the plugin layer's calls (0 or a positive code; never an SRPC
 * result, which the calls that return those say). */
typedef enum PluginResult {
  PLUGIN_OK = 0,
  PLUGIN_ERROR_INVALID_ARGUMENT = 1, /* a NULL, a size over a limit */
  PLUGIN_ERROR_NO_MEMORY = 2,
  PLUGIN_ERROR_NO_DESCRIPTORS = 3, /* EMFILE/ENFILE */
  PLUGIN_ERROR_CLOSED = 4,         /* the peer is gone */
  PLUGIN_ERROR_TIMED_OUT = 5,
  PLUGIN_ERROR_CANCELLED = 6,
  PLUGIN_ERROR_SPAWN = 7,         /* the program could not be started */
  PLUGIN_ERROR_START_TIMEOUT = 8, /* the module never accepted */
  PLUGIN_ERROR_HANDSHAKE = 9,     /* start-up answered wrongly */
  PLUGIN_ERROR_WRONG_THREAD = 11, /* a main-thread call from elsewhere */
  PLUGIN_ERROR_SYSTEM = 12,       /* another system error: see errno */
} PluginResult;

/* A short description of `result`; never NULL. */
PLUGIN_EXPORT const char* plugin_result_string(int result);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_COMMON_PLUGIN_MESSAGE_H_ */
