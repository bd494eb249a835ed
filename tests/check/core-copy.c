/* gst-ivshmem: tests of the copies and the mapping probe (ivshmem-copy.h)
 * SPDX-License-Identifier: MIT
 *
 * ivshm_copy() with non-temporal stores and ivshm_copy_from_uncached()
 * with streaming loads must copy exactly what memcpy() copies, whatever
 * the alignment of either side and the length (a head up to the 16-byte
 * alignment, 64-byte blocks, a tail), and not one byte more. The
 * streaming threshold is set low here (IVSHMEM_COPY_STREAM_MIN, read
 * once, before the first copy) so that small copies take the
 * non-temporal path too. Ordinary memory stands in for an uncached
 * mapping: streaming loads read it as plain loads do.
 */
#include <gst/check/gstcheck.h>

#include <stdlib.h>
#include <string.h>

#include "ivshmem-copy.h"

#define GUARD 64
#define MAX_LEN 1100

typedef void (*CopyFunc) (void *, const void *, size_t);

static guint8
pattern (gsize i)
{
  return (guint8) (i * 7u + (i >> 8) + 1);
}

/* Every length up to MAX_LEN at every source and destination alignment
 * modulo 16 (and a few lengths only at some): the copy matches, the
 * guard bytes around the destination are untouched. Checked to fail:
 * copy_nt() without its tail memcpy(), and copy_stream_load() with its
 * head clamp removed, each fail here. */
static void
check_copy (CopyFunc f, const gchar * name)
{
  guint8 *src = g_malloc (MAX_LEN + 2 * GUARD);
  guint8 *dst = g_malloc (MAX_LEN + 2 * GUARD);
  gsize len, so, dof, i;

  for (i = 0; i < MAX_LEN + 2 * GUARD; i++)
    src[i] = pattern (i);
  for (so = 0; so < 16; so++) {
    for (dof = 0; dof < 16; dof++) {
      for (len = 0; len <= MAX_LEN; len += (len < 200 ? 1 : 37)) {
        guint8 *s = src + GUARD + so, *d = dst + GUARD + dof;

        memset (dst, 0xa5, MAX_LEN + 2 * GUARD);
        f (d, s, len);
        if (memcmp (d, s, len) != 0)
          fail ("%s: %" G_GSIZE_FORMAT " bytes from offset %" G_GSIZE_FORMAT
              " to offset %" G_GSIZE_FORMAT ": the copy differs", name, len,
              so, dof);
        for (i = 0; i < GUARD + dof && dst[i] == 0xa5; i++);
        if (i < GUARD + dof)
          fail ("%s: wrote before the destination", name);
        for (i = GUARD + dof + len; i < MAX_LEN + 2 * GUARD && dst[i] == 0xa5;
            i++);
        if (i < MAX_LEN + 2 * GUARD)
          fail ("%s: %" G_GSIZE_FORMAT " bytes from %" G_GSIZE_FORMAT " to %"
              G_GSIZE_FORMAT ": wrote byte %" G_GSIZE_FORMAT " past the end",
              name, len, so, dof, i - GUARD - dof - len);
      }
    }
  }
  g_free (src);
  g_free (dst);
}

GST_START_TEST (test_copy_streaming)
{
  /* every copy of 16 bytes or more streams */
  fail_unless_equals_uint64 (ivshm_copy_stream_min (), 16);
  check_copy (ivshm_copy, "ivshm_copy");
}

GST_END_TEST;

GST_START_TEST (test_copy_from_uncached)
{
  GST_INFO ("streaming loads on this CPU: %s",
      ivshm_copy_has_stream_loads ()? "yes" : "no (memcpy)");
  check_copy (ivshm_copy_from_uncached, "ivshm_copy_from_uncached");
}

GST_END_TEST;

/* The probe reads at most a page, never past a short mapping, reports
 * both timings, and IVSHMEM_FORCE_SLOW_MAPPING=1 makes it say slow. (How
 * fast ordinary memory reads is not asserted: a timing.) */
GST_START_TEST (test_mapprobe)
{
  guint8 *map = g_malloc0 (3 * IVSHM_MAPPROBE_BYTES);
  IvshmMapProbe p;

  g_unsetenv ("IVSHMEM_FORCE_SLOW_MAPPING");
  ivshm_mapprobe_run (map, 3 * IVSHM_MAPPROBE_BYTES, &p);
  fail_unless_equals_int (p.bytes, IVSHM_MAPPROBE_BYTES);
  fail_unless (!p.forced);
  ivshm_mapprobe_run (map, 100, &p);
  fail_unless_equals_int (p.bytes, 96);
  ivshm_mapprobe_run (map, 0, &p);
  fail_unless_equals_int (p.bytes, 0);
  fail_unless (!p.slow, "an empty read cannot be slow");

  g_setenv ("IVSHMEM_FORCE_SLOW_MAPPING", "1", TRUE);
  ivshm_mapprobe_run (map, IVSHM_MAPPROBE_BYTES, &p);
  fail_unless (p.slow && p.forced);
  g_unsetenv ("IVSHMEM_FORCE_SLOW_MAPPING");
  g_free (map);
}

GST_END_TEST;

static Suite *
core_copy_suite (void)
{
  Suite *s = suite_create ("core-copy");
  TCase *tc = tcase_create ("general");

  /* before the first copy, which reads it */
  g_setenv ("IVSHMEM_COPY_STREAM_MIN", "16", TRUE);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_copy_streaming);
  tcase_add_test (tc, test_copy_from_uncached);
  tcase_add_test (tc, test_mapprobe);
  return s;
}

GST_CHECK_MAIN (core_copy);
