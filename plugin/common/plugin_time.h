/* Internal to plugin/: deadlines on CLOCK_MONOTONIC, and condition
 * variables that time out against it. */

#ifndef PLUGIN_COMMON_PLUGIN_TIME_H_
#define PLUGIN_COMMON_PLUGIN_TIME_H_

#include <pthread.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Now plus `ms` (which must be >= 0). */
struct timespec plugin_deadline_after(int ms);

/* Milliseconds left until `deadline`, 0 once past. */
int plugin_ms_left(const struct timespec* deadline);

/* pthread_cond_init with CLOCK_MONOTONIC. */
void plugin_cond_init(pthread_cond_t* cv);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_COMMON_PLUGIN_TIME_H_ */
