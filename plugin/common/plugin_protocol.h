/* Internal to plugin/: the start-up protocol between a host and a module
 * (docs/plugin.md, "Start-up protocol"). */

#ifndef PLUGIN_COMMON_PLUGIN_PROTOCOL_H_
#define PLUGIN_COMMON_PLUGIN_PROTOCOL_H_

/* The version `start` answers; a host refuses any other. */
#define PLUGIN_PROTOCOL_VERSION 1

/* Where a module finds its BoundSocket, and the variable that says so. */
#define PLUGIN_MODULE_BOUND_FD 3
#define PLUGIN_MODULE_FD_ENV "PLUGIN_MODULE_FD"

/* Served by the module's runtime on the control channel (connection 1). */
#define PLUGIN_CONTROL_START "start:h:i"     /* message socket -> version */
#define PLUGIN_CONTROL_SHUTDOWN "shutdown::" /* reply, then exit(0) */
#define PLUGIN_CONTROL_ADDRESS "address:sh:" /* a named SocketAddress */
#define PLUGIN_CONTROL_PING "ping::"
#define PLUGIN_CONTROL_OBJECTS "objects:h:" /* the object channel's end */

/* Served by the host on the control channel. */
#define PLUGIN_HOST_LOG "log:is:"        /* level, text */
#define PLUGIN_HOST_CHANNEL "channel::h" /* a new channel to the host */

/* Longest log text the host takes. */
#define PLUGIN_MAX_LOG_BYTES 4096

/* Longest address name. */
#define PLUGIN_MAX_ADDRESS_NAME 255

#endif /* PLUGIN_COMMON_PLUGIN_PROTOCOL_H_ */
