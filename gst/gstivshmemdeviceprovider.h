/* gst-ivshmem: ivshmemdeviceprovider and its devices
 * SPDX-License-Identifier: MIT
 *
 * gstivshmemdeviceprovider.c probes and monitors the regions;
 * gstivshmemdevice.c is the GstDevice of one role of one region.
 */
#ifndef __GST_IVSHMEM_DEVICE_PROVIDER_H__
#define __GST_IVSHMEM_DEVICE_PROVIDER_H__

#include <gst/gst.h>

#include "gstivshmemregionlook.h"

G_BEGIN_DECLS

#define GST_TYPE_IVSHMEM_DEVICE_PROVIDER (gst_ivshmem_device_provider_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemDeviceProvider, gst_ivshmem_device_provider,
    GST, IVSHMEM_DEVICE_PROVIDER, GstDeviceProvider);

#define GST_TYPE_IVSHMEM_DEVICE (gst_ivshmem_device_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemDevice, gst_ivshmem_device, GST,
    IVSHMEM_DEVICE, GstDevice);

/* The rest is shared by gstivshmemdeviceprovider.c and gstivshmemdevice.c
 * only: the provider compares two devices by their factory and device. */
struct _GstIvshmemDevice
{
  GstDevice parent;

  /* constant after construction */
  const gchar *factory;         /* "ivshmemsrc" or "ivshmemsink" */
  gchar *device;                /* value for the element's device property */
};

GST_DEBUG_CATEGORY_EXTERN (gst_ivshmem_device_provider_debug);

/* One GstDevice for one role of a region; props is copied
 * (gstivshmemdevice.c). */
GstDevice *gst_ivshmem_device_new (const gchar * display_name,
    gboolean is_src, Media media, const gchar * device,
    const GstStructure * props);

G_END_DECLS

#endif /* __GST_IVSHMEM_DEVICE_PROVIDER_H__ */
