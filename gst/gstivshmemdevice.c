/* gst-ivshmem: the devices of ivshmemdeviceprovider
 * SPDX-License-Identifier: MIT
 *
 * One GstIvshmemDevice is one role (source or sink) of one region: its
 * class says what the region carries, and it makes and reconfigures the
 * element for it. gstivshmemdeviceprovider.c probes and monitors.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemdeviceprovider.h"

#define GST_CAT_DEFAULT gst_ivshmem_device_provider_debug

G_DEFINE_TYPE (GstIvshmemDevice, gst_ivshmem_device, GST_TYPE_DEVICE);

static GstElement *
gst_ivshmem_device_create_element (GstDevice * device, const gchar * name)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (device);
  GstElement *element = gst_element_factory_make (self->factory, name);

  if (element)
    g_object_set (element, "device", self->device, NULL);
  return element;
}

static gboolean
gst_ivshmem_device_reconfigure_element (GstDevice * device,
    GstElement * element)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (device);
  GstElementFactory *factory = gst_element_get_factory (element);
  GstState state;

  if (factory == NULL
      || g_strcmp0 (GST_OBJECT_NAME (factory), self->factory) != 0)
    return FALSE;

  /* device only takes effect when the element opens the region */
  GST_OBJECT_LOCK (element);
  state = GST_STATE (element);
  GST_OBJECT_UNLOCK (element);
  if (state > GST_STATE_READY) {
    GST_DEBUG_OBJECT (device, "%s is running; stop it first",
        GST_OBJECT_NAME (element));
    return FALSE;
  }

  g_object_set (element, "device", self->device, NULL);
  return TRUE;
}

static void
gst_ivshmem_device_finalize (GObject * object)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (object);

  g_free (self->device);
  G_OBJECT_CLASS (gst_ivshmem_device_parent_class)->finalize (object);
}

static void
gst_ivshmem_device_class_init (GstIvshmemDeviceClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstDeviceClass *device_class = GST_DEVICE_CLASS (klass);

  gobject_class->finalize = gst_ivshmem_device_finalize;
  device_class->create_element = gst_ivshmem_device_create_element;
  device_class->reconfigure_element = gst_ivshmem_device_reconfigure_element;
}

static void
gst_ivshmem_device_init (GstIvshmemDevice * self)
{
}

/* The device class: what the region carries, the role, and IVSHMEM, so
 * that "Video/Source", "Audio/Sink" and "Source/IVSHMEM" all match
 * (gst_device_has_classes() compares '/'-separated words as sets). */
static const gchar *
device_class (Media media, gboolean is_src)
{
  switch (media) {
    case MEDIA_VIDEO:
      return is_src ? "Video/Source/IVSHMEM" : "Video/Sink/IVSHMEM";
    case MEDIA_AUDIO:
      return is_src ? "Audio/Source/IVSHMEM" : "Audio/Sink/IVSHMEM";
    default:
      return is_src ? "Source/IVSHMEM" : "Sink/IVSHMEM";
  }
}

/* One GstDevice for one role of a region; props is copied. */
GstDevice *
gst_ivshmem_device_new (const gchar * display_name, gboolean is_src,
    Media media, const gchar * device, const GstStructure * props)
{
  GstIvshmemDevice *self;
  GstCaps *caps = gst_caps_new_any ();
  GstStructure *p = gst_structure_copy (props);

  self = g_object_new (GST_TYPE_IVSHMEM_DEVICE,
      "display-name", display_name,
      "device-class", device_class (media, is_src),
      "caps", caps, "properties", p, NULL);
  self->factory = is_src ? "ivshmemsrc" : "ivshmemsink";
  self->device = g_strdup (device);

  gst_caps_unref (caps);
  gst_structure_free (p);
  return GST_DEVICE (self);
}
