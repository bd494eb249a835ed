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

/* ---- a fake sysfs tree: PCI discovery without PCI ----------------------
 * core-region and deviceprovider build one (the first in its tests, the
 * second in main(), outside any test): a failure here ends the process
 * with g_error(), which check reports as the test's error. */

/* Writes text into dir/name. */
void fixture_write_text (const gchar * dir, const gchar * name,
    const gchar * text);
/* Creates (or truncates) a file of size bytes, mode 0600. */
void fixture_make_sized_file (const gchar * path, guint64 size);
/* One device directory, ROOT/bus/pci/devices/NAME, the way the kernel
 * writes it: vendor, device, class, irq, the subsystem ids; `resource`
 * with 13 lines (6 BARs, the ROM, 6 IOV BARs): BAR0 ivshmem's 256-byte
 * register block, BAR2 (if bar2_size > 0) the 64-bit prefetchable shared
 * memory; `config`, the first 64 bytes of its configuration space; and,
 * with_resource2, resource2 as a regular file of bar2_size bytes. Returns
 * the directory (g_free() it). */
gchar *fixture_fake_device (const gchar * root, const gchar * name,
    guint vendor, guint device, guint class_code, guint64 bar2_size,
    gboolean with_resource2);
/* Removes the tree at dir (files, links, directories) and frees dir. */
void fixture_rm_tree (gchar * dir);

#endif
