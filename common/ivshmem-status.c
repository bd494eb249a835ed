/* gst-ivshmem: status codes of the core
 * SPDX-License-Identifier: MIT
 */
#include "ivshmem-status.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static const struct
{
  const char *name;
  const char *text;
} status_table[IVSHM_STATUS_COUNT] = {
  [IVSHM_OK] = {"ok", "success"},
  [IVSHM_AGAIN] = {"again", "would block, try again"},
  [IVSHM_ERR_NOT_FOUND] = {"not-found", "region or device not found"},
  [IVSHM_ERR_PERMISSION] = {"permission-denied",
      "permission denied"},
  [IVSHM_ERR_LOCKDOWN] = {"lockdown",
      "the kernel is in lockdown mode, which forbids mapping PCI BARs "
        "from user space"},
  [IVSHM_ERR_TOO_SMALL] = {"too-small", "region too small"},
  [IVSHM_ERR_NOT_POW2] = {"not-power-of-two",
      "size is not a power of two (QEMU's ivshmem needs one)"},
  [IVSHM_ERR_BAD_MAGIC] = {"bad-magic",
      "not a gst-ivshmem region (wrong magic)"},
  [IVSHM_ERR_VERSION] = {"incompatible-version",
      "incompatible gst-ivshmem protocol version"},
  [IVSHM_ERR_ALREADY_MAPPED] = {"already-mapped", "already mapped"},
  [IVSHM_ERR_NOT_MAPPED] = {"not-mapped", "not mapped"},
  [IVSHM_ERR_IO] = {"io", "system call failed"},
  [IVSHM_ERR_INVALID_ARG] = {"invalid-argument", "invalid argument"},
  [IVSHM_ERR_CORRUPT] = {"corrupt",
      "shared memory holds invalid values (buggy or hostile peer)"},
  [IVSHM_ERR_TOO_BIG] = {"too-big", "record can never fit in the ring"},
  [IVSHM_ERR_NO_PRODUCER] = {"no-producer", "no producer yet"},
  [IVSHM_ERR_SESSION_CHANGED] = {"session-changed",
      "the producer restarted (new session)"},
  [IVSHM_ERR_PRODUCER_GONE] = {"producer-gone", "the producer is gone"},
  [IVSHM_ERR_NO_SLOT] = {"no-slot", "all reader slots are taken"},
  [IVSHM_ERR_EVICTED] = {"evicted",
      "the producer dropped this reader (lease expired or invalid state)"},
  [IVSHM_ERR_PRODUCER_BUSY] = {"producer-busy",
      "another producer is alive on this region"},
  [IVSHM_ERR_UNSUPPORTED] = {"unsupported", "not supported here"},
  [IVSHM_ERR_NO_MEMORY] = {"no-memory", "out of memory"},
  [IVSHM_ERR_STALE] = {"stale", "the reservation is no longer pending"},
  [IVSHM_ERR_TAKEN_OVER] = {"taken-over",
      "another producer took over this region while this one was stalled"},
  [IVSHM_PRODUCER_STALLED] = {"producer-stalled",
      "the producer's heartbeat stopped (paused VM?); still waiting for it"},
};

const char *
ivshm_status_string (IvshmStatus status)
{
  if ((unsigned) status >= IVSHM_STATUS_COUNT || !status_table[status].text)
    return "unknown status";
  return status_table[status].text;
}

const char *
ivshm_status_name (IvshmStatus status)
{
  if ((unsigned) status >= IVSHM_STATUS_COUNT || !status_table[status].name)
    return "unknown";
  return status_table[status].name;
}

IvshmStatus
ivshm_error_set (IvshmError * err, IvshmStatus status, int sys_errno,
    const char *fmt, ...)
{
  va_list ap;

  if (err == NULL)
    return status;
  err->status = status;
  err->sys_errno = sys_errno;
  err->detail[0] = '\0';
  if (fmt != NULL) {
    va_start (ap, fmt);
    vsnprintf (err->detail, sizeof err->detail, fmt, ap);
    va_end (ap);
  }
  return status;
}
