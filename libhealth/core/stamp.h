/* The value every *_options_init() function writes into `init_stamp`
 * (include/health.h, before health_options_t, says why).  Kept private so
 * that a program cannot write it by hand and skip the defaults.  Its own
 * header because the health-probe command compiles probe/probe.c without the
 * rest of the library. */
#ifndef HEALTH_STAMP_H
#define HEALTH_STAMP_H

#include <stdint.h>

#define HEALTH__INIT_STAMP ((uintptr_t)0x6c68696eu) /* "lhin" */

#endif
