/* gst-ivshmem: what the sink's tests share
 * SPDX-License-Identifier: MIT
 *
 * Producer and reader run as pipelines in the test process over one
 * /dev/shm file (/dev/shm/gst-ivshmem-sink-PID-NAME). Every wait has a
 * deadline, stretched under valgrind (IVSHMEM_TEST_TIME_SCALE).
 */
#ifndef SINKTEST_H
#define SINKTEST_H

#include <gst/check/gstcheck.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#define KiB 1024u
/* a 64 KiB ring */
#define SMALL_REGION (128u * KiB)
/* 12 KiB frames: five fit in the ring, so the pool keeps at most two */
#define FRAME_W 112
#define FRAME_H 112
#define FRAME_CAPS "video/x-raw,format=GRAY8,width=112,height=112," \
    "framerate=30/1"
#define DEADLINE (10 * GST_SECOND)

guint time_scale (void);
gchar *region_path (const gchar * name);
/* parse and set PLAYING */
GstElement *launch (const gchar * desc);
GstElement *by_name (GstElement * p, const gchar * name);
void check_no_error (GstElement * p);
void stop (GstElement * p);
/* ivshmemsrc (copying) ! appsink name=sink */
GstElement *reader (const gchar * path);
GstBuffer *pull (GstElement * rd, GstClockTime timeout);
/* a payload that carries its sequence number; check() gives it back, or
 * G_MAXUINT for bytes that are not fill()'s (FRAME_W x FRAME_H only) */
void fill (GstBuffer * buf, guint seq);
guint check (GstBuffer * buf);
gboolean is_pool_memory (GstBuffer * buf);
/* a counter of the `stats` of ivshmemsink name=sink in `prod` */
guint64 sink_stat (GstElement * prod, const gchar * field);

/* appsrc name=src ! ivshmemsink name=sink, upstream played by the test */
typedef struct
{
  gchar *path;
  GstElement *prod;
  GstAppSrc *appsrc;
  GstBufferPool *pool;
  GstCaps *caps;
  guint size;
} Up;

/* The producer, a reader if asked (*rd, else NULL), and the sink's pool
 * as an upstream element negotiates it (asking for `min` buffers). NULL
 * pool: the sink refused it. */
void up_start_full (Up * u, const gchar * name, const gchar * caps,
    guint min, gboolean with_reader, GstElement ** rd);
void up_start (Up * u, const gchar * name, guint min, gboolean with_reader,
    GstElement ** rd);
void up_finish (Up * u);
/* a pool buffer (waiting for room), or ordinary memory without a pool */
GstBuffer *up_alloc (Up * u);

#endif
