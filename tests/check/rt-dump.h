/* gst-ivshmem: the reader half of the round-trip tests
 * SPDX-License-Identifier: MIT
 */
#ifndef RT_DUMP_H
#define RT_DUMP_H

#include <gst/gst.h>

G_BEGIN_DECLS
/* Runs argv[2] (a pipeline ending in `appsink name=out`) and prints what
 * reaches the appsink; see rt-dump.c. */
int rt_dump_main (int argc, char **argv);

G_END_DECLS
#endif /* RT_DUMP_H */
