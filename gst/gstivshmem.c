/* gst-ivshmem: plugin entry point
 * SPDX-License-Identifier: MIT
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemelements.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (ivshmemsink, plugin);
  ret |= GST_ELEMENT_REGISTER (ivshmemsrc, plugin);
  ret |= GST_DEVICE_PROVIDER_REGISTER (ivshmemdeviceprovider, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ivshmem,
    "Stream media through IVSHMEM shared memory between a host and QEMU "
    "virtual machines", plugin_init, VERSION, "MIT/X11", GST_PACKAGE_NAME,
    GST_PACKAGE_ORIGIN)
