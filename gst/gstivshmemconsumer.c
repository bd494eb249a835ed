/* gst-ivshmem: the reading side of ivshmemsrc: consumer and read memory
 * SPDX-License-Identifier: MIT
 *
 * Zero-copy reads (PROTOCOL.md, 10b): a record handed out in place is
 * held, not released, so the producer cannot reuse its space. If the
 * producer waits for that space (downstream keeps the buffer: a
 * last-sample, a queue, an application), the bytes move into a private
 * copy as soon as nobody has the memory mapped, and the record is let go.
 * Sub-memories made by share() map through their root, so they follow.
 *
 * The protection lasts as long as the reader owns its slot. A process that
 * is stopped past its lease (a paused VM) loses it, and the producer
 * cannot tell a frozen reader from a dead one: it may write over held
 * records. So every copy out of the ring is confirmed afterwards (the slot
 * was still ours), a lost slot with records still held is reported at once
 * (lost_func: a warning) and those records leave the ring as they are.
 * Held records also leave the ring as soon as the producer's heartbeat
 * stops (a producer that died is taken over after its lease, and its
 * successor writes into the ring), while the slot still protects them.
 */
#include "gstivshmemconsumer.h"
#include "gstivshmemmemory.h"

#include <string.h>

/* held records leave the ring once the producer's heartbeat missed a beat
 * (its period and two ticks, at least this), before a successor may take
 * over (2.5 periods, at least 250 ms) */
#define PRODUCER_SILENCE_NS (100 * GST_MSECOND)

/* the consumer's thread: lease renewal, and moving held records out of
 * the ring from outside the streaming thread. Often enough to see a
 * producer's heartbeat (100 ms by default) stop well within the 250 ms a
 * successor waits before it takes over. */
#define CONSUMER_TICK_NS (25 * GST_MSECOND)

/* ---- read memory -------------------------------------------------------- */

/* base.data, base.copy and base.maps are protected by the consumer's
 * lock (the skeleton's lock_of) */
typedef struct
{
  GstIvshmemRingMemory base;    /* owner: the GstIvshmemConsumer */
  IvshmHold hold;
} GstIvshmemReadMemory;

#define GST_TYPE_IVSHMEM_READ_ALLOCATOR (gst_ivshmem_read_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemReadAllocator, gst_ivshmem_read_allocator,
    GST, IVSHMEM_READ_ALLOCATOR, GstIvshmemRingAllocator);

struct _GstIvshmemReadAllocator
{
  GstIvshmemRingAllocator parent;
};

G_DEFINE_TYPE (GstIvshmemReadAllocator, gst_ivshmem_read_allocator,
    GST_TYPE_IVSHMEM_RING_ALLOCATOR);

/* Copies a held record out of the ring and lets it go. Call with the
 * consumer's lock held, for a root memory in c->held that nobody maps. */
static void
move_out_locked (GstIvshmemConsumer * c, GstIvshmemReadMemory * m)
{
  gst_ivshmem_ring_memory_move_out_locked (&m->base);
  c->held = g_list_remove (c->held, m);
  ivshm_reader_unhold (c->reader, &m->hold);
}

static guint
move_unmapped_locked (GstIvshmemConsumer * c)
{
  GList *l, *next;
  guint n = 0;

  for (l = c->held; l; l = next) {
    GstIvshmemReadMemory *m = l->data;

    next = l->next;
    if (m->base.maps > 0)
      continue;
    move_out_locked (c, m);
    n++;
  }
  return n;
}

/* How the slot was lost: TRUE, a new session; FALSE, evicted or reaped */
static gboolean
lost_to_new_session (GstIvshmemConsumer * c)
{
  return ivshm_reader_session_replaced (c->reader);
}

/* Call with the lock held, after any copy out of the ring (`copied`
 * records were just copied or read): if the slot is no longer ours, those
 * and every record still in the ring may have been overwritten. Returns
 * how many to report (0: nothing lost, or reported before) and moves the
 * held ones nobody maps out of the ring as they are. */
static guint
check_lost_locked (GstIvshmemConsumer * c, guint copied, gboolean * cause)
{
  guint n;

  /* (a region whose file shrank reads as zeros, which is no lost slot:
   * the element says what happened) */
  if (c->lost || !c->reader || (!c->held && !copied) ||
      ivshm_region_lost (c->region) || !ivshm_reader_lost (c->reader))
    return 0;
  c->lost = TRUE;
  n = g_list_length (c->held) + copied;
  *cause = lost_to_new_session (c);
  move_unmapped_locked (c);
  return n;
}

/* Without the lock */
static void
report_lost (GstIvshmemConsumer * c, guint n, gboolean cause)
{
  GstElement *element;

  if (n == 0 || !c->lost_func)
    return;
  element = g_weak_ref_get (&c->element);
  if (element) {
    c->lost_func (element, n, cause);
    gst_object_unref (element);
  }
}

/* Moves every held record nobody maps out of the ring, then confirms that
 * the slot was still ours after the copies. Returns how many moved; *lost
 * and *cause as check_lost_locked(). */
static guint
move_out_checked_locked (GstIvshmemConsumer * c, guint * lost, gboolean * cause)
{
  guint n = move_unmapped_locked (c);

  *lost = check_lost_locked (c, n, cause);
  return n;
}

/* A retired consumer with nothing left in the ring detaches its reader:
 * takes it (and its heartbeat) for consumer_detach(), outside the lock. */
static gboolean
take_reader_if_done_locked (GstIvshmemConsumer * c, IvshmReader ** reader,
    IvshmTicker ** ticker)
{
  if (!c->retired || c->held || !c->reader)
    return FALSE;
  *reader = c->reader;
  *ticker = c->heartbeat;
  c->reader = NULL;
  c->heartbeat = NULL;
  return TRUE;
}

static void
consumer_detach (IvshmReader * reader, IvshmTicker * ticker)
{
  /* the ticker first: its last tick may still use the reader */
  ivshm_ticker_stop (ticker);
  ivshm_reader_free (reader);
}

static gpointer
read_allocator_owner_ref (gpointer owner)
{
  return gst_ivshmem_consumer_ref (owner);
}

static void
read_allocator_owner_unref (gpointer owner)
{
  gst_ivshmem_consumer_unref (owner);
}

/* the last reference: the producer may reuse the space */
static void
read_allocator_release (GstIvshmemRingMemory * root)
{
  GstIvshmemReadMemory *m = (GstIvshmemReadMemory *) root;
  GstIvshmemConsumer *c = root->owner;
  IvshmReader *reader;
  IvshmTicker *ticker;
  gboolean detach;
  gboolean cause = FALSE;
  guint lost = 0;

  g_mutex_lock (&c->lock);
  if (!root->copy) {
    c->held = g_list_remove (c->held, m);
    /* downstream is done with it: was it still protected? */
    lost = check_lost_locked (c, 1, &cause);
    ivshm_reader_unhold (c->reader, &m->hold);
  }
  detach = take_reader_if_done_locked (c, &reader, &ticker);
  g_mutex_unlock (&c->lock);
  report_lost (c, lost, cause);
  if (detach)
    consumer_detach (reader, ticker);
}

static GMutex *
read_allocator_lock_of (gpointer owner)
{
  return &((GstIvshmemConsumer *) owner)->lock;
}

/* the session is over, or the slot lost: out of the ring as soon as nobody
 * looks */
static void
read_memory_unmapped_locked (GstIvshmemRingMemory * root)
{
  GstIvshmemConsumer *c = root->owner;

  if ((c->retired || c->lost) && !root->copy)
    move_out_locked (c, (GstIvshmemReadMemory *) root);
}

/* ... and with nothing left in the ring, the reader lets go of its slot */
static void
read_memory_unmapped (GstIvshmemRingMemory * root)
{
  GstIvshmemConsumer *c = root->owner;
  IvshmReader *reader;
  IvshmTicker *ticker;
  gboolean detach;

  g_mutex_lock (&c->lock);
  detach = take_reader_if_done_locked (c, &reader, &ticker);
  g_mutex_unlock (&c->lock);
  if (detach)
    consumer_detach (reader, ticker);
}

static void
gst_ivshmem_read_allocator_class_init (GstIvshmemReadAllocatorClass * klass)
{
  GstIvshmemRingAllocatorClass *ring_class =
      GST_IVSHMEM_RING_ALLOCATOR_CLASS (klass);

  ring_class->memory_size = sizeof (GstIvshmemReadMemory);
  ring_class->owner_ref = read_allocator_owner_ref;
  ring_class->owner_unref = read_allocator_owner_unref;
  ring_class->release = read_allocator_release;
  ring_class->lock_of = read_allocator_lock_of;
  ring_class->unmapped_locked = read_memory_unmapped_locked;
  ring_class->unmapped = read_memory_unmapped;
}

static void
gst_ivshmem_read_allocator_init (GstIvshmemReadAllocator * self)
{
  GST_ALLOCATOR_CAST (self)->mem_type = "IvshmemRingRead";
}

GstAllocator *
gst_ivshmem_read_allocator_new (void)
{
  GstAllocator *a = g_object_new (GST_TYPE_IVSHMEM_READ_ALLOCATOR, NULL);

  gst_object_ref_sink (a);
  return a;
}

/* ---- the consumer ------------------------------------------------------- */

GstIvshmemConsumer *
gst_ivshmem_consumer_new (IvshmRegion * region, GstElement * element,
    GstIvshmemConsumerLostFunc lost_func)
{
  GstIvshmemConsumer *c = g_new0 (GstIvshmemConsumer, 1);

  c->refcount = 1;
  c->region = region;
  g_mutex_init (&c->lock);
  g_weak_ref_init (&c->element, element);
  c->lost_func = lost_func;
  return c;
}

GstIvshmemConsumer *
gst_ivshmem_consumer_ref (GstIvshmemConsumer * c)
{
  g_atomic_int_inc (&c->refcount);
  return c;
}

void
gst_ivshmem_consumer_unref (GstIvshmemConsumer * c)
{
  if (!g_atomic_int_dec_and_test (&c->refcount))
    return;
  consumer_detach (c->reader, c->heartbeat);
  ivshm_region_close (c->region);
  g_weak_ref_clear (&c->element);
  g_mutex_clear (&c->lock);
  g_free (c);
}

/* The consumer's thread: has the producer's heartbeat been still for a
 * while (it died, or its process or VM is stopped)? */
static gboolean
producer_silent (GstIvshmemConsumer * c)
{
  guint64 hb, period_us, now = ivshm_now_ns ();

  ivshm_reader_producer_beat (c->reader, &hb, &period_us);

  if (hb != c->producer_hb || c->producer_hb_ns == 0) {
    c->producer_hb = hb;
    c->producer_hb_ns = now;
    return FALSE;
  }
  /* a hostile period only makes us copy sooner or later */
  period_us = MIN (period_us, G_MAXUINT32);
  return now - c->producer_hb_ns > MAX (PRODUCER_SILENCE_NS,
      period_us * 1000 + 2 * CONSUMER_TICK_NS);
}

static void
consumer_tick (void *data)
{
  GstIvshmemConsumer *c = data;
  gboolean cause = FALSE;
  guint lost = 0;

  g_mutex_lock (&c->lock);
  if (c->reader) {
    guint64 now = ivshm_now_ns ();

    if (c->tick_ns && now - c->tick_ns > c->longest_gap_ns)
      c->longest_gap_ns = now - c->tick_ns;
    c->tick_ns = now;
    ivshm_reader_heartbeat (c->reader);
    /* out of the ring while the slot still protects them: when the
     * producer needs their space, or may be about to be taken over */
    if (c->held && (producer_silent (c) ||
            ivshm_reader_holding_back (c->reader)))
      move_out_checked_locked (c, &lost, &cause);
    else
      lost = check_lost_locked (c, 0, &cause);
  }
  g_mutex_unlock (&c->lock);
  report_lost (c, lost, cause);
}

gboolean
gst_ivshmem_consumer_attach (GstIvshmemConsumer * c, IvshmReader * reader)
{
  IvshmTicker *ticker;

  ivshm_reader_heartbeat (reader);
  g_mutex_lock (&c->lock);
  c->reader = reader;
  c->tick_ns = ivshm_now_ns ();
  g_mutex_unlock (&c->lock);
  /* the consumer outlives neither its ticker nor its reader */
  ticker = ivshm_ticker_start (CONSUMER_TICK_NS, consumer_tick, c);
  g_mutex_lock (&c->lock);
  c->heartbeat = ticker;
  g_mutex_unlock (&c->lock);
  return ticker != NULL;
}

guint64
gst_ivshmem_consumer_stood_still (GstIvshmemConsumer * c)
{
  guint64 gap, now = ivshm_now_ns ();

  /* the consumer's thread may not have run since this process resumed */
  g_mutex_lock (&c->lock);
  gap = c->longest_gap_ns;
  if (c->tick_ns && now - c->tick_ns > gap)
    gap = now - c->tick_ns;
  g_mutex_unlock (&c->lock);
  return gap;
}

gboolean
gst_ivshmem_consumer_holds (GstIvshmemConsumer * c)
{
  gboolean holds;

  g_mutex_lock (&c->lock);
  holds = c->held != NULL;
  g_mutex_unlock (&c->lock);
  return holds;
}

void
gst_ivshmem_consumer_check_lost (GstIvshmemConsumer * c)
{
  gboolean cause = FALSE;
  guint lost;

  g_mutex_lock (&c->lock);
  lost = check_lost_locked (c, 0, &cause);
  g_mutex_unlock (&c->lock);
  report_lost (c, lost, cause);
}

guint
gst_ivshmem_consumer_migrate (GstIvshmemConsumer * c)
{
  gboolean cause = FALSE;
  guint n = 0, lost = 0;

  g_mutex_lock (&c->lock);
  if (c->reader && ivshm_reader_holding_back (c->reader))
    n = move_out_checked_locked (c, &lost, &cause);
  g_mutex_unlock (&c->lock);
  report_lost (c, lost, cause);
  return n;
}

guint
gst_ivshmem_consumer_retire (GstIvshmemConsumer * c)
{
  IvshmReader *reader;
  IvshmTicker *ticker;
  gboolean detach;
  gboolean cause = FALSE;
  guint n = 0, lost = 0;

  g_mutex_lock (&c->lock);
  c->retired = TRUE;
  if (c->reader)
    n = move_out_checked_locked (c, &lost, &cause);
  detach = take_reader_if_done_locked (c, &reader, &ticker);
  g_mutex_unlock (&c->lock);
  report_lost (c, lost, cause);
  if (detach)
    consumer_detach (reader, ticker);
  return n;
}

gboolean
gst_ivshmem_consumer_get_stats (GstIvshmemConsumer * c,
    IvshmReaderStats * stats, unsigned *held, guint64 * lag, guint64 * session)
{
  gboolean attached;

  g_mutex_lock (&c->lock);
  attached = c->reader != NULL;
  if (attached) {
    if (stats)
      ivshm_reader_get_stats (c->reader, stats);
    if (held)
      ivshm_reader_held (c->reader, held, NULL);
    if (lag)
      *lag = ivshm_reader_lag (c->reader);
    if (session)
      *session = ivshm_reader_session (c->reader);
  }
  g_mutex_unlock (&c->lock);
  return attached;
}

GstBuffer *
gst_ivshmem_consumer_wrap (GstIvshmemConsumer * c, GstAllocator * allocator,
    const IvshmRecord * rec)
{
  IvshmReader *reader = c->reader;
  GstIvshmemReadMemory *m;
  GstBuffer *buf;
  IvshmHold hold;
  unsigned count;
  guint64 bytes, len = rec->h.payload_len;

  ivshm_reader_held (reader, &count, &bytes);
  if (count >= IVSHM_MAX_HELD ||
      bytes + ivshm_record_len (len) > ivshm_reader_ring_size (reader) / 2)
    return NULL;
  if (ivshm_reader_hold (reader, &hold) != IVSHM_OK)
    return NULL;

  m = (GstIvshmemReadMemory *) gst_ivshmem_ring_memory_new (allocator,
      GST_MEMORY_FLAG_READONLY | GST_MINI_OBJECT_FLAG_LOCK_READONLY, c,
      (guint8 *) rec->payload, len, len);
  m->hold = hold;
  g_mutex_lock (&c->lock);
  c->held = g_list_prepend (c->held, m);
  g_mutex_unlock (&c->lock);

  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, GST_MEMORY_CAST (m));
  /* not a memory that downstream must treat specially */
  GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_TAG_MEMORY);
  return buf;
}
