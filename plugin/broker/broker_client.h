/* plugin: the open() broker, module side. open, stat and access through a
 * broker socket the host made with broker_serve and handed to the module
 * (typically in a postMessage). Safe from any number of threads at once,
 * with no lock across the round trip: each request carries its own reply
 * socket. Never raises SIGPIPE; if the host is gone the call fails with
 * EPIPE instead of waiting. docs/broker.md gives the details. */

#ifndef PLUGIN_BROKER_BROKER_CLIENT_H_
#define PLUGIN_BROKER_BROKER_CLIENT_H_

#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* As open(2): returns a new close-on-exec descriptor, or -1 with errno:
 * the host's answer (EACCES: not allowed; ENOENT, EISDIR... from the open
 * itself; EINVAL: flags the broker refuses), or EPIPE (no broker), EMFILE
 * (no descriptor free here: nothing is leaked on either side), ENOMEM,
 * ENAMETOOLONG, EPROTO (an answer that is not one). A relative path is
 * made absolute against the current directory first. */
int broker_open_at(int broker, const char* path, int flags, mode_t mode);
int broker_stat_at(int broker, const char* path, struct stat* st);
int broker_lstat_at(int broker, const char* path, struct stat* st);
int broker_access_at(int broker, const char* path, int amode);

/* The same on a process-wide broker socket, set once (any thread). */
void broker_set_default(int broker);
int broker_default(void);
int broker_open(const char* path, int flags, ...);
int broker_stat(const char* path, struct stat* st);
int broker_access(const char* path, int amode);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_BROKER_BROKER_CLIENT_H_ */
