/* gst-ivshmem: ivshmemsrc when its own process lets it down
 * SPDX-License-Identifier: MIT
 *
 * - The heartbeat thread cannot start: pthread_create() is interposed
 *   here and fails for calls made from the plugin (found with dladdr() on
 *   the caller), so only the source's lease thread fails; the producer in
 *   this test and GStreamer's own threads start as usual.
 * - unlock() racing with the streaming thread leaving a region, made
 *   deterministic by hooks: mmap() (the streaming thread maps the region
 *   again to reattach) and syscall() (unlock() wakes its waiter's private
 *   futex, holding unlock_lock; the streaming thread sleeps on that lock)
 *   are interposed so that the test decides who runs when. munmap() is
 *   interposed so that a region the plugin lets go stays reserved and
 *   inaccessible: a late access faults at once instead of landing in
 *   whatever is mapped there next.
 * - The session the source left because its producer went away is not
 *   attached to again (the source's abandoned-session skip).
 *
 * - The producer stalls (its heartbeat stops) and goes on: the source
 *   warns, waits, and reads on.
 * - Every reader slot is held by a live reader: the error says so.
 * - A reader process stopped past its lease is dropped by a lossless
 *   producer: the error says so (a real gst-launch-1.0 process).
 *
 * The producer is the core's IvshmWriter, driven by the test.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-layout.h"
#include "ivshmem-region.h"
#include "fixture.h"
#include "ivshmem-ring.h"
/* the regions of this test: /dev/shm/gst-ivshmem-srcfaults-PID-NAME */
#define shm_path(name) fixture_shm_path ("srcfaults", name)

/* the source's private state: the address of its unlock_lock */
#include "gstivshmemsrcpriv.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION_SIZE (256 * 1024)

/* ---- interposers -------------------------------------------------------- */

static volatile gint fail_plugin_threads;
static volatile gint keep_unmapped_regions;

/* The hooks of test_unlock_during_reattach, armed while `armed` is set.
 * Everything else under `lock`. */
static struct
{
  GMutex lock;
  GCond cond;
  volatile gint armed;
  const void *unlock_lock;      /* the futex word of the source's lock */
  /* the streaming thread, stopped in mmap() on its way to let go of the
   * old region, until stream_go */
  gboolean stream_in_mmap, stream_go;
  pthread_t stream;
  /* the thread that calls unlock(), stopped inside it (unlock_lock held)
   * until flusher_go */
  gboolean have_flusher, flusher_in_unlock, flusher_go;
  pthread_t flusher;
  /* what happened meanwhile */
  gboolean stream_blocked;      /* the streaming thread waits for the lock */
  gboolean unmapped_inside;     /* a region went while unlock() was inside */
  guint unmaps;
} race;

static void
race_signal (gboolean * flag)
{
  g_mutex_lock (&race.lock);
  *flag = TRUE;
  g_cond_broadcast (&race.cond);
  g_mutex_unlock (&race.lock);
}

static void
race_wait_go (gboolean * go)
{
  g_mutex_lock (&race.lock);
  while (!*go)
    g_cond_wait (&race.cond, &race.lock);
  g_mutex_unlock (&race.lock);
}

/* Lets every stopped thread go and disarms the hooks. */
static void
race_release_all (void)
{
  g_atomic_int_set (&race.armed, 0);
  g_mutex_lock (&race.lock);
  race.stream_go = race.flusher_go = TRUE;
  g_cond_broadcast (&race.cond);
  g_mutex_unlock (&race.lock);
}

static gboolean
called_from_plugin (const void *caller)
{
  Dl_info info;

  return dladdr (caller, &info) && info.dli_fname &&
      strstr (info.dli_fname, "libgstivshmem") != NULL;
}

int
pthread_create (pthread_t * thread, const pthread_attr_t * attr,
    void *(*fn) (void *), void *arg)
{
  static int (*real) (pthread_t *, const pthread_attr_t *,
      void *(*)(void *), void *);

  if (!real)
    real = dlsym (RTLD_NEXT, "pthread_create");
  if (g_atomic_int_get (&fail_plugin_threads) &&
      called_from_plugin (__builtin_return_address (0)))
    return EAGAIN;
  return real (thread, attr, fn, arg);
}

void *
mmap (void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  static void *(*real) (void *, size_t, int, int, int, off_t);

  if (!real)
    real = dlsym (RTLD_NEXT, "mmap");
  if (g_atomic_int_get (&race.armed) && len == REGION_SIZE &&
      called_from_plugin (__builtin_return_address (0))) {
    /* the streaming thread opens the region again to reattach: it lets
     * the old one go next */
    race.stream = pthread_self ();
    race_signal (&race.stream_in_mmap);
    race_wait_go (&race.stream_go);
  }
  return real (addr, len, prot, flags, fd, off);
}

long
syscall (long number, ...)
{
  static long (*real) (long, ...);
  va_list ap;
  long a[6];
  int i;

  if (!real)
    real = dlsym (RTLD_NEXT, "syscall");
  va_start (ap, number);
  for (i = 0; i < 6; i++)
    a[i] = va_arg (ap, long);
  va_end (ap);
  if (number == SYS_futex && g_atomic_int_get (&race.armed)) {
    /* unlock(), holding unlock_lock, wakes its waiter's private word */
    if (a[1] == (FUTEX_WAKE | FUTEX_PRIVATE_FLAG) && race.have_flusher &&
        pthread_equal (pthread_self (), race.flusher) &&
        called_from_plugin (__builtin_return_address (0))) {
      race_signal (&race.flusher_in_unlock);
      race_wait_go (&race.flusher_go);
    }
    /* the streaming thread sleeps until unlock_lock is free (GLib's mutex
     * is a futex word at the start of the GMutex) */
    if (a[1] == (FUTEX_WAIT | FUTEX_PRIVATE_FLAG) &&
        (const void *) a[0] == race.unlock_lock && race.stream_in_mmap &&
        pthread_equal (pthread_self (), race.stream))
      race_signal (&race.stream_blocked);
  }
  return real (number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int
munmap (void *addr, size_t len)
{
  static int (*real) (void *, size_t);

  if (!real)
    real = dlsym (RTLD_NEXT, "munmap");
  if (g_atomic_int_get (&race.armed) && len == REGION_SIZE &&
      called_from_plugin (__builtin_return_address (0))) {
    g_mutex_lock (&race.lock);
    race.unmaps++;
    if (race.flusher_in_unlock && !race.flusher_go)
      race.unmapped_inside = TRUE;
    g_cond_broadcast (&race.cond);
    g_mutex_unlock (&race.lock);
  }
  if (g_atomic_int_get (&keep_unmapped_regions) && len == REGION_SIZE &&
      called_from_plugin (__builtin_return_address (0)))
    return mmap (addr, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE |
        MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0;
  return real (addr, len);
}

/* ---- a producer --------------------------------------------------------- */

static IvshmRegion *
region_create (const gchar * path)
{
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region = NULL;

  opts.create_size = REGION_SIZE;
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  return region;
}

static IvshmWriter *
writer_new (IvshmRegion * region)
{
  IvshmError err = { 0 };
  IvshmWriter *w = NULL;

  IvshmStatus st = ivshm_writer_new (ivshm_region_data (region),
      ivshm_region_size (region), NULL, &w, &err);

  fail_unless (st == IVSHM_OK, "%s", err.detail);
  return w;
}

static void
write_caps_and_buffer (IvshmWriter * w)
{
  static const gchar caps[] = "application/x-srcfaults";
  IvshmRecordHeader info;
  guint8 payload[256] = { 0 };

  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_CAPS;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = IVSHM_TIME_NONE;
  info.payload_len = sizeof caps;
  ivshm_writer_write (w, &info, caps);
  info.type = IVSHM_RECORD_BUFFER;
  info.payload_len = sizeof payload;
  ivshm_writer_write (w, &info, payload);
}

/* An error on the bus within `timeout`, or NULL. */
static GstMessage *
wait_error (GstElement * pipeline, GstClockTime timeout)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, timeout,
      GST_MESSAGE_ERROR);

  gst_object_unref (bus);
  return msg;
}

/* ---- tests -------------------------------------------------------------- */

/* Old code: the source ignored the failure and read on without renewing
 * its lease, so a lossless producer would drop it after 3 s. Now it is an
 * element error that says why. */
GST_START_TEST (test_heartbeat_thread_fails)
{
  gchar *path = shm_path ("heartbeat");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s ! fakesink", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *dbg = NULL;

  fail_unless (pipeline != NULL);
  write_caps_and_buffer (w);
  g_atomic_int_set (&fail_plugin_threads, 1);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = wait_error (pipeline, 20 * GST_SECOND);
  g_atomic_int_set (&fail_plugin_threads, 0);
  fail_unless (msg != NULL, "no error although the source's heartbeat "
      "thread could not start");
  gst_message_parse_error (msg, &gerr, &dbg);
  GST_INFO ("error: %s (%s)", gerr->message, dbg);
  fail_unless (strstr (gerr->message, "lease") != NULL, "%s", gerr->message);
  g_clear_error (&gerr);
  g_free (dbg);
  gst_message_unref (msg);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static void producer_tick (void *data);

/* A deadline `seconds` from now, stretched under valgrind. */
static gint64
deadline_in (gint seconds)
{
  const gchar *v = g_getenv ("IVSHMEM_TEST_TIME_SCALE");

  return g_get_monotonic_time () + (gint64) seconds *G_USEC_PER_SEC *
      (v && atoi (v) > 0 ? atoi (v) : 1);
}

/* Waits until *flag (under race.lock), at most `seconds` (stretched under
 * valgrind). FALSE: it did not come. */
static gboolean
race_wait_for (gboolean * flag, gint seconds)
{
  gint64 end = deadline_in (seconds);
  gboolean ok;

  g_mutex_lock (&race.lock);
  while (!*flag && g_cond_wait_until (&race.cond, &race.lock, end));
  ok = *flag;
  g_mutex_unlock (&race.lock);
  return ok;
}

static gpointer
flusher_main (gpointer data)
{
  GstElement *src = data;

  g_mutex_lock (&race.lock);
  race.flusher = pthread_self ();
  race.have_flusher = TRUE;
  g_mutex_unlock (&race.lock);
  gst_element_send_event (src, gst_event_new_flush_start ());
  gst_element_send_event (src, gst_event_new_flush_stop (FALSE));
  return NULL;
}

/* unlock() must not touch a region the streaming thread just let go: the
 * waiter it wakes may still point into that region. unlock() holds
 * unlock_lock while it wakes the waiter, and the streaming thread takes it
 * before it lets a region go. The hooks put the two threads where the race
 * is: the streaming thread on its way to let the old region go (in the
 * mmap() of the region it attaches to instead), unlock() inside its
 * critical section (in the futex wake of its waiter). Then the streaming
 * thread goes on: it must wait for the lock, and the old region must stay
 * mapped until unlock() is done. Mutation: without the lock and unlock of
 * unlock_lock in gst_ivshmem_src_drop_consumer(), this test fails ("unmapped
 * the region it left while unlock() was inside"); the earlier version of
 * this test, flushes in a loop, passed 5 runs of 5 without it. */
GST_START_TEST (test_unlock_during_reattach)
{
  gchar *path = shm_path ("unlock");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  gchar *desc = g_strdup_printf ("ivshmemsrc name=src device=%s "
      "is-live=false ! fakesink sync=false", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *src;
  GThread *flusher = NULL;
  gboolean reached_mmap, reached_unlock = FALSE, blocked = FALSE;
  gboolean inside = FALSE, unmapped = FALSE;
  GstMessage *msg;

  fail_unless (pipeline != NULL);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  memset (&race, 0, sizeof race);
  g_mutex_init (&race.lock);
  g_cond_init (&race.cond);
  race.unlock_lock = &((GstIvshmemSrc *) src)->unlock_lock;
  g_atomic_int_set (&keep_unmapped_regions, 1);

  /* the source reads the first session (preroll needs its buffer) */
  write_caps_and_buffer (w);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_unless (gst_element_get_state (pipeline, NULL, NULL,
          60 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);

  /* the producer closes its session: the source lets it go (reattach) */
  g_atomic_int_set (&race.armed, 1);
  ivshm_writer_free (w);
  reached_mmap = race_wait_for (&race.stream_in_mmap, 30);
  if (reached_mmap) {
    /* unlock() from another thread, stopped inside its critical section */
    flusher = g_thread_new ("flusher", flusher_main, src);
    reached_unlock = race_wait_for (&race.flusher_in_unlock, 30);
  }
  if (reached_unlock) {
    /* the streaming thread goes on to let the old region go: it blocks on
     * unlock_lock, or (without the lock) unmaps the region */
    gint64 end = deadline_in (30);

    g_mutex_lock (&race.lock);
    race.stream_go = TRUE;
    g_cond_broadcast (&race.cond);
    while (!race.stream_blocked && race.unmaps == 0 &&
        g_cond_wait_until (&race.cond, &race.lock, end));
    blocked = race.stream_blocked;
    inside = race.unmapped_inside;
    /* unlock() ends: now the old region may go */
    race.flusher_go = TRUE;
    g_cond_broadcast (&race.cond);
    g_mutex_unlock (&race.lock);
    g_thread_join (flusher);
    flusher = NULL;
    end = deadline_in (30);
    g_mutex_lock (&race.lock);
    while (race.unmaps == 0 && g_cond_wait_until (&race.cond, &race.lock, end));
    unmapped = race.unmaps > 0;
    g_mutex_unlock (&race.lock);
  }
  race_release_all ();
  if (flusher)
    g_thread_join (flusher);

  fail_unless (reached_mmap, "the source did not reattach after its "
      "producer closed the session");
  fail_unless (reached_unlock, "unlock() did not wake its waiter");
  fail_if (inside, "the streaming thread unmapped the region it left while "
      "unlock() was inside its critical section (unlock_lock)");
  fail_unless (blocked, "the streaming thread did not wait for unlock_lock");
  fail_unless (unmapped, "the old region was not let go after unlock()");

  msg = wait_error (pipeline, 0);
  if (msg) {
    GError *gerr = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &gerr, &dbg);
    fail ("an error from the source: %s (%s)", gerr->message, dbg);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  g_atomic_int_set (&keep_unmapped_regions, 0);
  gst_object_unref (src);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* The reader slots of a region that hold `session` (taken, not FREE), and
 * those that wait for the next producer (WAITING). */
static void
count_slots (IvshmRegion * region, guint64 session, guint * on_session,
    guint * waiting)
{
  const IvshmReaderSlot *slots = (const IvshmReaderSlot *)
      ((const guint8 *) ivshm_region_data (region) + IVSHM_SLOT_OFFSET);
  guint i;

  *on_session = *waiting = 0;
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    guint32 state = atomic_load (&slots[i].state);

    if (state == IVSHM_SLOT_WAITING)
      (*waiting)++;
    else if (state != IVSHM_SLOT_FREE &&
        atomic_load (&slots[i].session_id) == session)
      (*on_session)++;
  }
}

/* A source that gave up a session because its producer went away waits
 * for the next producer; it does not attach to that dead session again
 * (the abandoned-session skip: skip_session in
 * gst_ivshmem_src_attach()). The producer hangs: its heartbeat stops and
 * its session stays ACTIVE. The source attached with
 * on-producer-restart=eos, so it reports PRODUCER_GONE (not a stall);
 * meanwhile the policy became follow, so it follows. Mutation: with
 * cfg.skip_session left 0, the source attaches to the dead session again
 * and this test fails. */
GST_START_TEST (test_abandoned_session_skipped)
{
  gchar *path = shm_path ("abandoned");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  guint64 session = ivshm_writer_session (w);
  IvshmTicker *t = ivshm_ticker_start (10 * 1000 * 1000, producer_tick, w);
  gchar *desc = g_strdup_printf ("ivshmemsrc name=src device=%s "
      "is-live=false on-producer-restart=eos ! fakesink sync=false", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *src;
  gint64 deadline;
  guint64 reconnects = 0;
  guint on_session = 0, waiting = 0;

  fail_unless (pipeline != NULL);
  fail_unless (t != NULL);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  write_caps_and_buffer (w);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_unless (gst_element_get_state (pipeline, NULL, NULL,
          60 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
  count_slots (region, session, &on_session, &waiting);
  fail_unless_equals_int (on_session, 1);

  /* the policy changes while the source reads; then the producer hangs */
  gst_util_set_object_arg (G_OBJECT (src), "on-producer-restart", "follow");
  ivshm_ticker_stop (t);

  /* gone after the producer timeout (2 s); then the source's one reader
   * waits in a slot of its own for the next session */
  deadline = deadline_in (20);
  while (g_get_monotonic_time () < deadline) {
    GstStructure *stats = NULL;

    g_object_get (src, "stats", &stats, NULL);
    gst_structure_get_uint64 (stats, "reconnects", &reconnects);
    gst_structure_free (stats);
    count_slots (region, session, &on_session, &waiting);
    if (reconnects == 1 && on_session == 0 && waiting == 1)
      break;
    g_usleep (10 * 1000);
  }
  fail_unless_equals_uint64 (reconnects, 1);
  fail_unless (on_session == 0 && waiting == 1, "after it left the dead "
      "session, the source holds %u slots on it and waits in %u (it must "
      "wait for the next session, not attach to the dead one again)",
      on_session, waiting);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static void
producer_tick (void *data)
{
  ivshm_writer_heartbeat (data);
}

static void
write_buffer (IvshmWriter * w, guint8 seq)
{
  IvshmRecordHeader info;
  guint8 payload[64];

  memset (payload, seq, sizeof payload);
  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_BUFFER;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = IVSHM_TIME_NONE;
  info.payload_len = sizeof payload;
  fail_unless_equals_int (ivshm_writer_write (w, &info, payload), IVSHM_OK);
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  g_atomic_int_inc ((gint *) data);
}

static gboolean
wait_count (volatile gint * count, gint n, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;

  while (g_atomic_int_get (count) < n && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  return g_atomic_int_get (count) >= n;
}

/* A message of `type` whose text contains `text`, within `timeout`. */
static gboolean
wait_message (GstElement * pipeline, GstMessageType type, const gchar * text,
    GstClockTime timeout)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 deadline = g_get_monotonic_time () + timeout / 1000;
  gboolean found = FALSE;

  while (!found && g_get_monotonic_time () < deadline) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND,
        type | GST_MESSAGE_ERROR);
    GError *gerr = NULL;
    gchar *dbg = NULL;

    if (!msg)
      continue;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      gst_message_parse_error (msg, &gerr, &dbg);
      fail ("error: %s (%s)", gerr->message, dbg);
    }
    if (type == GST_MESSAGE_WARNING)
      gst_message_parse_warning (msg, &gerr, &dbg);
    else
      gst_message_parse_info (msg, &gerr, &dbg);
    GST_INFO ("%s: %s (%s)", GST_MESSAGE_TYPE_NAME (msg), gerr->message, dbg);
    found = strstr (gerr->message, text) != NULL;
    g_clear_error (&gerr);
    g_free (dbg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return found;
}

/* The producer's heartbeat stops for longer than the producer timeout (a
 * paused VM; here its heartbeat thread stops), then goes on. The source
 * warns, keeps its place and reads the rest: nothing lost. On the old
 * code it gave up on the session after 2 s and never read again. */
GST_START_TEST (test_stalled_producer_followed)
{
  gchar *path = shm_path ("stall");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  IvshmTicker *ticker = ivshm_ticker_start (0, producer_tick, w);
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false ! "
      "fakesink name=sink sync=false signal-handoffs=true", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  volatile gint count = 0;
  gboolean warned;
  guint i;

  fail_unless (ticker != NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), (gpointer) &
      count);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  write_caps_and_buffer (w);
  for (i = 1; i < 5; i++)
    write_buffer (w, i);
  fail_unless (wait_count (&count, 5, 20 * G_USEC_PER_SEC));

  /* silence: the heartbeat stops for good until we start it again */
  ivshm_ticker_stop (ticker);
  warned = wait_message (pipeline, GST_MESSAGE_WARNING, "still waiting",
      15 * GST_SECOND);
  /* it moves again */
  ticker = ivshm_ticker_start (0, producer_tick, w);
  for (i = 5; i < 10; i++)
    write_buffer (w, i);
  fail_unless (wait_count (&count, 10, 20 * G_USEC_PER_SEC),
      "%d of 10 buffers after the producer moved again", count);
  fail_unless (warned, "no warning about the silent producer");
  fail_unless (wait_message (pipeline, GST_MESSAGE_INFO, "moved again",
          5 * GST_SECOND));

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_ticker_stop (ticker);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static void
readers_tick (void *data)
{
  GPtrArray *readers = data;
  guint i;

  for (i = 0; i < readers->len; i++)
    ivshm_reader_heartbeat (g_ptr_array_index (readers, i));
}

/* 32 live readers hold every slot: the source fails with an error that
 * says so, how many are live, and how to look. */
GST_START_TEST (test_no_free_slot)
{
  gchar *path = shm_path ("noslot");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  GPtrArray *readers = g_ptr_array_new ();
  IvshmTicker *ticker;
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s ! fakesink", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *dbg = NULL;
  guint i;

  write_caps_and_buffer (w);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmError err = { 0 };
    IvshmReader *r = NULL;

    fail_unless_equals_int (ivshm_reader_new (ivshm_region_data (region),
            ivshm_region_size (region), NULL, &r, &err), IVSHM_OK);
    g_ptr_array_add (readers, r);
  }
  ticker = ivshm_ticker_start (0, readers_tick, readers);
  fail_unless (ticker != NULL);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = wait_error (pipeline, 30 * GST_SECOND);
  fail_unless (msg != NULL, "no error with every slot taken");
  gst_message_parse_error (msg, &gerr, &dbg);
  GST_INFO ("error: %s (%s)", gerr->message, dbg);
  fail_unless (g_error_matches (gerr, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_BUSY));
  fail_unless (strstr (gerr->message, "reader slot") != NULL);
  fail_unless (strstr (dbg, "32 by readers whose heartbeat moves") != NULL,
      "%s", dbg);
  fail_unless (strstr (dbg, "ivshmem-info") != NULL, "%s", dbg);
  g_clear_error (&gerr);
  g_free (dbg);
  gst_message_unref (msg);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_ticker_stop (ticker);
  for (i = 0; i < readers->len; i++)
    ivshm_reader_free (g_ptr_array_index (readers, i));
  g_ptr_array_free (readers, TRUE);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* A reader process stopped (SIGSTOP, as a paused guest's reader would
 * be) for longer than its lease: the lossless producer's periodic work
 * reaps its slot. When the process goes on, a source with
 * on-evicted=error fails with an error that says why and that the policy
 * is lossless (by default it joins again: tests/lifecycle/frozen.py). */
GST_START_TEST (test_evicted_reader_says_why)
{
  gchar *path = shm_path ("evicted");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  gchar *out_path = g_strdup_printf ("%s.out", path);
  gchar *device = g_strdup_printf ("device=%s", path);
  const gchar *argv[] = { "gst-launch-1.0", "ivshmemsrc", device,
    "on-evicted=error", "!", "fakesink", "sync=false", NULL
  };
  gint64 deadline;
  gchar *out = NULL;
  pid_t pid;
  int status = 0, fd;
  guint i;

  write_caps_and_buffer (w);
  fd = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  fail_unless (fd >= 0);
  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0) {
    dup2 (fd, 1);
    dup2 (fd, 2);
    execvp (argv[0], (char **) argv);
    _exit (127);
  }
  close (fd);

  /* let it attach and read (a slow start under the sanitizers), then
   * stop it for two leases */
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (ivshm_writer_count_readers (w) == 0 &&
      g_get_monotonic_time () < deadline) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  fail_unless (ivshm_writer_count_readers (w) > 0, "the reader never came");
  for (i = 0; i < 5; i++) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  kill (pid, SIGSTOP);
  for (i = 0; i < 70; i++) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  kill (pid, SIGCONT);
  write_buffer (w, 1);

  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (waitpid (pid, &status, WNOHANG) == 0) {
    if (g_get_monotonic_time () > deadline) {
      kill (pid, SIGKILL);
      waitpid (pid, &status, 0);
      fail ("the stopped reader did not notice that it was dropped");
    }
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  fail_unless (g_file_get_contents (out_path, &out, NULL, NULL));
  GST_INFO ("reader output:\n%s", out);
  fail_unless (WIFEXITED (status) && WEXITSTATUS (status) != 0, "%s", out);
  fail_unless (strstr (out, "stopped renewing its lease") != NULL, "%s", out);
  fail_unless (strstr (out, "policy is lossless") != NULL, "%s", out);

  g_free (out);
  unlink (out_path);
  g_free (out_path);
  g_free (device);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static Suite *
srcfaults_suite (void)
{
  Suite *s = suite_create ("ivshmem-srcfaults");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_heartbeat_thread_fails);
  tcase_add_test (tc, test_unlock_during_reattach);
  tcase_add_test (tc, test_abandoned_session_skipped);
  tcase_add_test (tc, test_stalled_producer_followed);
  tcase_add_test (tc, test_no_free_slot);
  tcase_add_test (tc, test_evicted_reader_says_why);
  return s;
}

GST_CHECK_MAIN (srcfaults);
