/* gst-ivshmem: ivshmemsrc
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_SRC_H__
#define __GST_IVSHMEM_SRC_H__

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_IVSHMEM_SRC (gst_ivshmem_src_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemSrc, gst_ivshmem_src, GST, IVSHMEM_SRC,
    GstPushSrc);

G_END_DECLS

#endif /* __GST_IVSHMEM_SRC_H__ */
