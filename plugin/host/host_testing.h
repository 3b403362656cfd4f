/* Internal to plugin/host, for its tests and fuzzers (and usable from
 * C++): a module with no process and no channel yet (what launch starts
 * from), to drive the host's control service directly. */

#ifndef PLUGIN_HOST_HOST_TESTING_H_
#define PLUGIN_HOST_HOST_TESTING_H_

#include "plugin/host/plugin_host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Free with plugin_module_free. */
PluginModule* host_module_new_unlaunched(PluginHost* host,
                                         const PluginModuleCallbacks* cb);

/* The service the host serves on a module's control channel. */
SrpcService* host_module_control_service(PluginModule* module);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_HOST_HOST_TESTING_H_ */
