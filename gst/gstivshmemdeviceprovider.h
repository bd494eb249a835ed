/* gst-ivshmem: ivshmemdeviceprovider
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_DEVICE_PROVIDER_H__
#define __GST_IVSHMEM_DEVICE_PROVIDER_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_IVSHMEM_DEVICE_PROVIDER (gst_ivshmem_device_provider_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemDeviceProvider, gst_ivshmem_device_provider,
    GST, IVSHMEM_DEVICE_PROVIDER, GstDeviceProvider);

#define GST_TYPE_IVSHMEM_DEVICE (gst_ivshmem_device_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemDevice, gst_ivshmem_device, GST,
    IVSHMEM_DEVICE, GstDevice);

G_END_DECLS

#endif /* __GST_IVSHMEM_DEVICE_PROVIDER_H__ */
