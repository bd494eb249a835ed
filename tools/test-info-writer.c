/* test-info-writer: a small live stream for the ivshmem-info test
 * SPDX-License-Identifier: MIT
 *
 *   test-info-writer PATH SECONDS
 *
 * Creates the host file PATH (256 KiB), starts a producer session on it
 * with the core (no GStreamer), writes stream-start, caps, segment and tag
 * records and a few buffers, attaches one reader that consumes them, then
 * keeps both heartbeats moving for SECONDS, writes EOS and closes the
 * session. Prints "ready" on standard output once the stream is in place.
 * PATH is left behind for the caller to inspect and remove.
 *
 *   test-info-writer --exec PROGRAM ARGS...
 *
 * Replaces itself with PROGRAM at once. The meson test starts the test
 * script this way: under `meson test --setup valgrind`, valgrind wraps this
 * (clean) C program and, with --trace-children=no, not the shell, whose own
 * leaks would fail the run. The script runs ivshmem-info under valgrind
 * itself where valgrind is installed.
 */
#include "ivshmem-os.h"
#include "ivshmem-region.h"
#include "ivshmem-ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_CAPS "video/x-raw, format=(string)I420, width=(int)64, " \
  "height=(int)48, framerate=(fraction)30/1"
#define TEST_STREAM_START "stream-start, stream-id=(string)test/info, " \
  "flags=(int)0, has-group-id=(boolean)true, group-id=(uint)7"
#define TEST_SEGMENT "segment, format=(int)3, flags=(int)0, rate=(double)1, " \
  "applied-rate=(double)1, base=(guint64)0, offset=(guint64)0, " \
  "start=(guint64)0, stop=(guint64)18446744073709551615, time=(guint64)0, " \
  "position=(guint64)0, duration=(guint64)18446744073709551615"
/* non-ASCII and a quote: the JSON output must escape and keep them */
#define TEST_TAGS "tag, scope=(int)0, taglist=(string)\"taglist\\,\\ " \
  "title\\=\\(string\\)\\\"caf\xc3\xa9\\\"\\;\""

static IvshmStatus
write_string (IvshmWriter * w, uint16_t type, uint16_t subtype,
    const char *text)
{
  IvshmRecordHeader h;

  memset (&h, 0, sizeof h);
  h.type = type;
  h.subtype = subtype;
  h.payload_len = strlen (text) + 1;
  h.pts = h.dts = h.duration = IVSHM_TIME_NONE;
  h.offset = h.offset_end = IVSHM_TIME_NONE;
  return ivshm_writer_write (w, &h, text);
}

typedef struct
{
  IvshmWriter *writer;
  IvshmReader *reader;
} Beats;

static void
beat (void *data)
{
  Beats *b = data;

  ivshm_writer_heartbeat (b->writer);
  ivshm_reader_heartbeat (b->reader);
}

static int
fail (const char *what, IvshmStatus st, const IvshmError * err)
{
  fprintf (stderr, "test-info-writer: %s: %s: %s\n", what,
      ivshm_status_string (st), err->detail);
  return 1;
}

int
main (int argc, char **argv)
{
  IvshmRegionOptions ropts = { UINT64_C (256) * 1024, NULL };
  IvshmRegion *region = NULL;
  IvshmWriter *writer = NULL;
  IvshmReader *reader = NULL;
  IvshmTicker *ticker;
  IvshmError err = { 0 };
  IvshmStatus st;
  IvshmRecord rec;
  Beats beats;
  uint8_t frame[4608];
  int i, seconds;

  if (argc >= 3 && strcmp (argv[1], "--exec") == 0) {
    execvp (argv[2], argv + 2);
    perror ("test-info-writer: exec");
    return 127;
  }
  if (argc != 3) {
    fprintf (stderr, "usage: test-info-writer PATH SECONDS\n");
    return 2;
  }
  seconds = atoi (argv[2]);

  st = ivshm_region_open (argv[1], &ropts, &region, &err);
  if (st != IVSHM_OK)
    return fail ("open", st, &err);
  st = ivshm_writer_new (ivshm_region_data (region),
      ivshm_region_size (region), NULL, &writer, &err);
  if (st != IVSHM_OK)
    return fail ("writer", st, &err);

  if ((st = write_string (writer, IVSHM_RECORD_EVENT,
              IVSHM_EVENT_STREAM_START, TEST_STREAM_START)) != IVSHM_OK
      || (st = write_string (writer, IVSHM_RECORD_CAPS, 0, TEST_CAPS))
      != IVSHM_OK
      || (st = write_string (writer, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT,
              TEST_SEGMENT)) != IVSHM_OK
      || (st = write_string (writer, IVSHM_RECORD_EVENT, IVSHM_EVENT_TAG,
              TEST_TAGS)) != IVSHM_OK)
    return fail ("sticky records", st, &err);

  st = ivshm_reader_new (ivshm_region_data (region),
      ivshm_region_size (region), NULL, &reader, &err);
  if (st != IVSHM_OK)
    return fail ("reader", st, &err);

  memset (frame, 0x80, sizeof frame);
  for (i = 0; i < 5; i++) {
    IvshmRecordHeader h;

    memset (&h, 0, sizeof h);
    h.type = IVSHM_RECORD_BUFFER;
    h.payload_len = sizeof frame;
    h.pts = h.dts = 33333333u * (uint64_t) i;
    h.duration = 33333333u;
    h.offset = h.offset_end = IVSHM_TIME_NONE;
    if ((st = ivshm_writer_write (writer, &h, frame)) != IVSHM_OK)
      return fail ("buffer", st, &err);
  }
  /* the reader consumes the four sticky records and three buffers, so
   * it lags by two buffers */
  for (i = 0; i < 7; i++) {
    st = ivshm_reader_next (reader, &rec, &err);
    if (st != IVSHM_OK)
      return fail ("read", st, &err);
    ivshm_reader_release (reader);
  }

  beats.writer = writer;
  beats.reader = reader;
  ticker = ivshm_ticker_start (0, beat, &beats);
  if (ticker == NULL) {
    fprintf (stderr, "test-info-writer: cannot start the heartbeat\n");
    return 1;
  }
  printf ("ready\n");
  fflush (stdout);
  ivshm_sleep_ns ((uint64_t) seconds * 1000 * 1000 * 1000);

  ivshm_ticker_stop (ticker);
  /* the end of the stream: the producer keeps EOS in the sticky area,
   * which ivshmem-info must accept */
  if ((st = write_string (writer, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, ""))
      != IVSHM_OK)
    return fail ("eos", st, &err);
  ivshm_reader_free (reader);
  ivshm_writer_free (writer);
  ivshm_region_close (region);
  return 0;
}
