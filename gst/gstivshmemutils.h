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

/* A sleep that unlock() can cut short: an exponential back-off from
 * min_us to max_us over a GstPoll that is set flushing by unlock(). */
typedef struct
{
  guint64 cur_us;
  guint64 min_us;
  guint64 max_us;
} GstIvshmemBackoff;

void gst_ivshmem_backoff_reset (GstIvshmemBackoff * b, guint64 min_us,
    guint64 max_us);
/* FALSE when the poll is flushing */
gboolean gst_ivshmem_backoff_wait (GstIvshmemBackoff * b, GstPoll * poll);

G_END_DECLS

#endif /* __GST_IVSHMEM_UTILS_H__ */
