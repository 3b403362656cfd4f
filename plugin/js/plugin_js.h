/* plugin/js: the plugin layer bound to a JavaScript engine (Duktape), the
 * way a browser-like tree binds it to its own. A PluginJs is a JavaScript
 * heap with a global `plugin` object (launch modules, call their SRPC
 * methods, make_socket, postMessage, waitForMessage, object proxies both
 * ways), a global `shell` object (the embedder's own: files, garbage
 * collection, time) and `print`. docs/javascript.md is the API.
 *
 * Threads: a PluginJs belongs to the thread that made it (its main thread,
 * also the plugin host's); every function here must be called there. */

#ifndef PLUGIN_JS_PLUGIN_JS_H_
#define PLUGIN_JS_PLUGIN_JS_H_

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PluginJs PluginJs;

/* Makes the heap and its host. `out` and `err` (NULL: stdout, stderr)
 * receive print() and the reports of uncaught errors. NULL on failure. */
PluginJs* plugin_js_new(FILE* out, FILE* err);

/* Runs a script file; `args` (argc of them) become shell.args. Returns 0
 * if it ran to its end, 1 if it threw (the error and its stack are written
 * to `err`), 2 if it could not be read. */
int plugin_js_run_file(PluginJs* js,
                       const char* path,
                       int argc,
                       const char* const* args);

/* Errors thrown by handlers (onmessage, callbacks, exported methods) that
 * nothing caught: each was reported to `err`. */
int plugin_js_uncaught_errors(const PluginJs* js);

/* Shuts every module down, closes every socket, runs the heap's
 * finalizers and frees everything. */
void plugin_js_free(PluginJs* js);

/* All of the above: what plugin_shell does. Returns the process's exit
 * status: 0 if the script ran to its end and no handler error went
 * uncaught, else 1 (2: unreadable). */
int plugin_js_run_script(const char* path, int argc, const char* const* args);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_JS_PLUGIN_JS_H_ */
