/* gst-ivshmem: internals of the core shared between its files and its tests
 * SPDX-License-Identifier: MIT
 *
 * Not installed and not part of the API: the GStreamer layer must not use
 * anything declared here.
 */
#ifndef IVSHMEM_PRIVATE_H
#define IVSHMEM_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-region.h"

/* Reads a sysfs attribute holding one integer ("0x1af4\n") from
 * DIR/NAME. Returns 0 and sets *value, or -1 with errno set (EINVAL for
 * text that is not a number). */
int ivshm_sysfs_read_u64 (const char *dir, const char *name, uint64_t * value);

/* The size of BAR `bar` from DIR/resource (one "start end flags" line per
 * resource, as the kernel writes it). Returns 0 and sets *size (0 for an
 * unused BAR), or -1 with errno set. */
int ivshm_sysfs_bar_size (const char *dir, int bar, uint64_t * size);

/* The SIGBUS guard of host file mappings (ivshmem-guard.c, POSIX only).
 * ivshm_guard_add() installs the handler on its first call and registers
 * [addr, addr + len); it returns the slot to pass to the two others, or -1
 * (no handler, or the table is full: the mapping goes unguarded). Remove
 * the slot before unmapping. ivshm_guard_faulted(): a fault in the mapping
 * was caught, which replaced the whole mapping with private zero pages. */
int ivshm_guard_add (void *addr, size_t len);
void ivshm_guard_remove (int slot);
bool ivshm_guard_faulted (int slot);
/* Marks the mapping lost without a fault (the file was seen to shrink). */
void ivshm_guard_mark (int slot);

#endif /* IVSHMEM_PRIVATE_H */
