/* plugin_shell: runs a JavaScript file on the plugin layer's main loop.
 *
 *   plugin_shell SCRIPT.js [ARG...]
 *
 * The script sees `plugin`, `shell` (ARGs in shell.args) and `print`;
 * docs/javascript.md describes them. Exits 0 if the script ran to its end
 * and no handler's error went uncaught, 1 otherwise, 2 if the script could
 * not be read. Modules still running at the end are shut down. */

#include <stdio.h>
#include <string.h>

#include "plugin/js/plugin_js.h"

int main(int argc, char** argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: %s SCRIPT.js [ARG...]\n", argv[0]);
    return 2;
  }
  return plugin_js_run_script(argv[1], argc - 2,
                              (const char* const*)(argv + 2));
}
