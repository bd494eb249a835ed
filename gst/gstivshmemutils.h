/* gst-ivshmem: what the two elements share
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_UTILS_H__
#define __GST_IVSHMEM_UTILS_H__

#include <gst/gst.h>

#include "ivshmem-region.h"
#include "ivshmem-ring.h"

G_BEGIN_DECLS

/* Posts an element error for a failed core call, choosing the GStreamer
 * error domain and code from the status. `what` says what the element was
 * doing ("open the region", "read the ring"). */
void gst_ivshmem_post_error (GstElement * element, const IvshmError * err,
    const gchar * what, const gchar * file, const gchar * func, gint line);

#define GST_IVSHMEM_POST_ERROR(el, err, what) \
  gst_ivshmem_post_error (GST_ELEMENT (el), err, what, __FILE__, \
      GST_FUNCTION, __LINE__)

/* An error an element posts once, from whichever of its threads notices
 * first (*posted, atomic: 0, 1 while one thread posts, 2 after). TRUE:
 * this thread posts it, then calls gst_ivshmem_post_end(). FALSE: another
 * thread did, and it is on the bus now: a streaming thread must not
 * return GST_FLOW_ERROR before its element's error is posted, or
 * upstream's "Internal data stream error" comes first. */
gboolean gst_ivshmem_post_begin (gint * posted);
void gst_ivshmem_post_end (gint * posted);

/* The region's mapping faulted (ivshm_region_lost(): the host file shrank
 * or lost its pages): posts the element error that says what happened to
 * the file, once per element (*posted is the element's flag, as for
 * gst_ivshmem_post_begin(): another thread that finds the region lost
 * returns only after the post), and returns TRUE: the caller stops using
 * the region. FALSE: all is well. Any thread. */
gboolean gst_ivshmem_region_lost (GstElement * element,
    const IvshmRegion * region, gint * posted);
/* The same after a look at the file's size (ivshm_region_check(): an
 * fstat(), for a side that waits; about every 100 ms). */
gboolean gst_ivshmem_region_check (GstElement * element,
    IvshmRegion * region, gint * posted);

/* Turns a serialized downstream event into an IVSHM_EVENT_* subtype, the
 * record fields and a NUL-terminated payload string (g_free it). Returns
 * FALSE for events that do not travel through the ring. */
gboolean gst_ivshmem_event_to_record (GstEvent * event,
    IvshmRecordHeader * info, gchar ** payload);

/* The reverse. `payload` is a private, NUL-terminated copy. Returns NULL
 * (and says why in *why) for a record that does not make a valid event. */
GstEvent *gst_ivshmem_event_from_record (const IvshmRecordHeader * info,
    const gchar * payload, const gchar ** why);

/* GstBufferFlags that travel through the ring */
#define GST_IVSHMEM_BUFFER_FLAGS_MASK \
  (GST_BUFFER_FLAG_LIVE | GST_BUFFER_FLAG_DECODE_ONLY | \
   GST_BUFFER_FLAG_DISCONT | GST_BUFFER_FLAG_RESYNC | \
   GST_BUFFER_FLAG_CORRUPTED | GST_BUFFER_FLAG_MARKER | \
   GST_BUFFER_FLAG_HEADER | GST_BUFFER_FLAG_GAP | \
   GST_BUFFER_FLAG_DROPPABLE | GST_BUFFER_FLAG_DELTA_UNIT | \
   GST_BUFFER_FLAG_SYNC_AFTER | GST_BUFFER_FLAG_NON_DROPPABLE)

/* IvshmBarMapping as a GEnum, for the bar-mapping property */
#define GST_TYPE_IVSHMEM_BAR_MAPPING (gst_ivshmem_bar_mapping_get_type ())
GType gst_ivshmem_bar_mapping_get_type (void);

/* How long a side sleeps at most between looks at the ring when its peer
 * shares its kernel and wakes it with a futex: only liveness checks
 * depend on it. */
#define GST_IVSHMEM_LOCAL_WAIT_NS (100 * GST_MSECOND)

/* The lease figures of ivshmem-ring.h in whole seconds, for the messages
 * that name them ("%u s"): the elements never write the figures out. */
#define GST_IVSHMEM_LEASE_S ((guint) (IVSHM_DEFAULT_LEASE_NS / GST_SECOND))
#define GST_IVSHMEM_PRODUCER_TIMEOUT_MIN_S \
    ((guint) (IVSHM_MIN_PRODUCER_TIMEOUT_NS / GST_SECOND))

/* The default bound of the adaptive poll across a VM boundary. */
#define GST_IVSHMEM_DEFAULT_MAX_POLL_INTERVAL (1 * GST_MSECOND)

/* How long the next wait for the peer may sleep; 0: spin once more. Both
 * start with a short spin. A peer that wakes us (it shares our kernel and
 * the futex works) gets one long sleep after it: sleeps that time out
 * early would only make the wake-up slower (PROTOCOL.md, "Wake-ups").
 * Otherwise the sleeps grow up to max_poll_interval. Set *reset before the
 * first call of a wait. */
guint64 gst_ivshmem_next_wait (IvshmBackoff * backoff, gboolean * reset,
    gboolean peer_local, IvshmWaiter * waiter, guint64 max_poll_interval);

G_END_DECLS

#endif /* __GST_IVSHMEM_UTILS_H__ */
