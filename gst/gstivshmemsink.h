/* gst-ivshmem: ivshmemsink
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_SINK_H__
#define __GST_IVSHMEM_SINK_H__

#include <gst/gst.h>
#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_IVSHMEM_SINK (gst_ivshmem_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemSink, gst_ivshmem_sink, GST, IVSHMEM_SINK,
    GstBaseSink);

G_END_DECLS

#endif /* __GST_IVSHMEM_SINK_H__ */
