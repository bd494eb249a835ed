/* gst-ivshmem: the ring of records inside a region
 * SPDX-License-Identifier: MIT
 *
 * The ring is split by responsibility; ivshmem-ring-private.h lists the
 * files. What is left here concerns the ring as a whole.
 */
#include "ivshmem-ring-private.h"
#include "ivshmem-region.h"

_Static_assert (IVSHM_REGION_MIN == IVSHM_REGION_MIN_SIZE,
    "the region's minimum size and the ring layout's disagree");
_Static_assert (IVSHM_MAX_READERS <= 32,
    "readers_sleeping is a 32-bit mask of slot indexes");

IvshmTestHook ivshm_test_hook;

uint64_t
ivshm_region_size_for_payload (uint64_t payload_len)
{
  uint64_t need, size = IVSHM_REGION_MIN;

  if (payload_len > (UINT64_MAX >> 2))
    return 0;
  need = IVSHM_RING_OFFSET + ivshm_record_len (payload_len);
  while (size < need)
    size <<= 1;
  return size;
}
