/* gst-ivshmem examples: the test picture both programs agree on
 * SPDX-License-Identifier: MIT
 *
 * ivshmem-send draws frame N with this function and ivshmem-receive draws
 * it again to check what came out of the region, byte for byte. The
 * picture is a diagonal grey gradient that moves by a few pixels each
 * frame, so a frame that arrives twice, out of order or torn is noticed.
 */
#ifndef IVSHMEM_EXAMPLE_PATTERN_H
#define IVSHMEM_EXAMPLE_PATTERN_H

#include <gst/gst.h>
#include <gst/video/video.h>

/* The stream the examples send: small enough to be quick, a raw format
 * whose rows are easy to reason about (one byte per pixel). */
#define EXAMPLE_FORMAT GST_VIDEO_FORMAT_GRAY8
#define EXAMPLE_WIDTH 320
#define EXAMPLE_HEIGHT 240
#define EXAMPLE_FPS_N 30
#define EXAMPLE_FPS_D 1

/* The grey level of pixel (x, y) in frame `frame`. */
static inline guint8
example_pixel (guint frame, gint x, gint y)
{
  return (guint8) (x + 2 * y + 3 * frame);
}

/* Draws frame `frame` into a mapped video frame. Rows may be padded:
 * always step by the stride GstVideoFrame reports, never by the width. */
static inline void
example_draw (GstVideoFrame * vframe, guint frame)
{
  guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (vframe, 0);
  gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (vframe, 0);
  gint x, y;

  for (y = 0; y < GST_VIDEO_FRAME_HEIGHT (vframe); y++)
    for (x = 0; x < GST_VIDEO_FRAME_WIDTH (vframe); x++)
      pixels[y * stride + x] = example_pixel (frame, x, y);
}

/* Returns TRUE if a mapped video frame holds exactly frame `frame`. */
static inline gboolean
example_check (const GstVideoFrame * vframe, guint frame)
{
  const guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (vframe, 0);
  gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (vframe, 0);
  gint x, y;

  for (y = 0; y < GST_VIDEO_FRAME_HEIGHT (vframe); y++)
    for (x = 0; x < GST_VIDEO_FRAME_WIDTH (vframe); x++)
      if (pixels[y * stride + x] != example_pixel (frame, x, y))
        return FALSE;
  return TRUE;
}

#endif /* IVSHMEM_EXAMPLE_PATTERN_H */
