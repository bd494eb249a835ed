/* gst-ivshmem: element registrations
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_ELEMENTS_H__
#define __GST_IVSHMEM_ELEMENTS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (ivshmemsink);
GST_ELEMENT_REGISTER_DECLARE (ivshmemsrc);
GST_DEVICE_PROVIDER_REGISTER_DECLARE (ivshmemdeviceprovider);

G_END_DECLS

#endif /* __GST_IVSHMEM_ELEMENTS_H__ */
