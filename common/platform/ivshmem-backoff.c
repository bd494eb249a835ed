/* gst-ivshmem: the back-off of a side that polls (IvshmBackoff)
 * SPDX-License-Identifier: MIT
 *
 * The same on every system; the sleeping itself is in
 * ivshmem-os-{posix,win32}.c.
 */
#include "ivshmem-os.h"

void
ivshm_backoff_reset (IvshmBackoff * b, uint64_t max_ns)
{
  b->spins = 0;
  b->cur_ns = 0;
  b->max_ns = max_ns < IVSHM_BACKOFF_MIN_NS ? IVSHM_BACKOFF_MIN_NS : max_ns;
}

uint64_t
ivshm_backoff_next (IvshmBackoff * b)
{
  if (b->spins < IVSHM_BACKOFF_SPINS) {
    b->spins++;
    return 0;
  }
  b->cur_ns = b->cur_ns ? b->cur_ns * 2 : IVSHM_BACKOFF_MIN_NS;
  if (b->cur_ns > b->max_ns)
    b->cur_ns = b->max_ns;
  return b->cur_ns;
}
