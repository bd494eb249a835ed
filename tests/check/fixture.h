/* gst-ivshmem: set-ups that several check tests share
 * SPDX-License-Identifier: MIT
 *
 * Linked into the tests that use it (tests/check/meson.build), as
 * sinktest.c is into the sink's. A test's /dev/shm regions are named
 * /dev/shm/gst-ivshmem-TAG-PID-NAME (TAG: the test's own, PID: the process
 * that made them), the pattern shm-sweep.c removes at exit.
 */
#ifndef FIXTURE_H
#define FIXTURE_H

#include <glib.h>

/* /dev/shm/gst-ivshmem-TAG-PID-NAME, removed first if a file is there */
gchar *fixture_shm_path (const gchar * tag, const gchar * name);
/* Removes the /dev/shm/gst-ivshmem-TAG-PID-* regions that earlier runs
 * left behind when a test failed before its clean-up (PID is gone). */
void fixture_remove_stale_regions (const gchar * tag);

#endif
