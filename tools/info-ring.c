/* ivshmem-info: the ring of a region, as text or JSON
 * SPDX-License-Identifier: MIT
 *
 * Prints an IvshmInspection (ivshmem-inspect.h): private copies only;
 * strings a peer wrote go through text_string()/json_string().
 */
#include "info-ring.h"
#include "info-text.h"
#include "ivshmem-os.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static char *
record_string (const IvshmStickyRecord * rec)
{
  size_t n;
  const char *text = ivshm_sticky_record_text (rec, &n, NULL);
  char *copy = malloc (n + 1);

  if (copy != NULL) {
    memcpy (copy, text, n);
    copy[n] = '\0';
  }
  return copy;
}

static void
keep_string (char **slot, const IvshmStickyRecord * rec)
{
  free (*slot);
  *slot = record_string (rec);
}

void
stream_view_read (const IvshmInspection * insp, StreamView * sv)
{
  IvshmStickyIter it;
  IvshmStickyRecord rec;

  memset (sv, 0, sizeof *sv);
  if (insp->sticky == NULL || insp->sticky_status != IVSHM_OK)
    return;
  ivshm_sticky_iter_init (&it, insp->sticky);
  while (ivshm_sticky_iter_next (&it, &rec)) {
    sv->parsed++;
    if (rec.h.type == IVSHM_RECORD_CAPS)
      keep_string (&sv->caps, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_STREAM_START)
      keep_string (&sv->stream_start, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_SEGMENT)
      keep_string (&sv->segment, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_TAG)
      keep_string (&sv->tags, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_EOS)
      sv->eos = true;
    else
      sv->custom++;
  }
  /* a bad record is in insp->problems already (ivshm_inspect validates) */
}

void
stream_view_clear (StreamView * sv)
{
  free (sv->caps);
  free (sv->stream_start);
  free (sv->segment);
  free (sv->tags);
}

/* "yes", "no" or "unknown" (not watched) */
static const char *
producer_alive (const IvshmInspection * insp)
{
  switch (insp->producer_alive) {
    case IVSHM_LIVENESS_ALIVE:
      return "yes";
    case IVSHM_LIVENESS_UNKNOWN:
      return "unknown";
    default:
      return "no";
  }
}

static const char *
lease_text (const IvshmInspection * insp, unsigned i)
{
  switch (insp->slot_alive[i]) {
    case IVSHM_LIVENESS_ALIVE:
      return "alive";
    case IVSHM_LIVENESS_DEAD:
      return "stalled";
    default:
      return "not watched";
  }
}

static const char *
kernel_relation (uint64_t id)
{
  uint64_t mine = ivshm_kernel_id ();

  if (id == 0 || mine == 0)
    return "unknown";
  return id == mine ? "this kernel" : "another kernel";
}

static void
print_opt_string (FILE * out, const char *label, const char *value)
{
  fputs (label, out);
  if (value != NULL)
    text_string (out, value);
  else
    fputs ("(none)", out);
  fputc ('\n', out);
}

static void
json_opt_string (FILE * out, const char *value)
{
  if (value != NULL)
    json_string (out, value);
  else
    fputs ("null", out);
}

/* readers_sleeping: a count in version 1, a bitmask of slots in 2 */
static void
print_sleeping_text (FILE * out, const IvshmHeaderCopy * c)
{
  unsigned i, n = 0;

  fprintf (out, "  readers asleep: ");
  if (c->version_major < IVSHM_INSPECT_V2) {
    fprintf (out, "%" PRIu32 "\n", c->readers_sleeping);
    return;
  }
  for (i = 0; i < 32; i++)
    if (c->readers_sleeping & (1u << i))
      fprintf (out, "%sslot %u", n++ ? ", " : "", i);
  fputs (n ? "\n" : "none\n", out);
}

static void
print_producer_text (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  bool active = c->producer_state == IVSHM_PRODUCER_ACTIVE;

  fprintf (out, "  producer:       %s",
      ivshm_inspect_producer_state_name (c->producer_state));
  if (c->producer_state > IVSHM_PRODUCER_CLOSED)
    fprintf (out, " (%" PRIu32 ")", c->producer_state);
  fprintf (out, ", alive: %s", producer_alive (insp));
  if (insp->watched_ns && active)
    fprintf (out, " (heartbeat %s in %" PRIu64 " ms)",
        insp->producer_alive == IVSHM_LIVENESS_ALIVE ? "moved" :
        "did not move", insp->watched_ns / 1000000);
  else if (active)
    fputs (" (--no-wait)", out);
  fputc ('\n', out);
  if (c->version_major >= IVSHM_INSPECT_V2)
    fprintf (out, "  owner:          0x%016" PRIx64 "%s\n", c->producer_owner,
        c->producer_owner ? "" : " (nobody)");
  fprintf (out, "  producer pid:   %" PRIu64 " (%s)\n", c->producer_pid,
      kernel_relation (c->producer_kernel_id));
  fprintf (out, "  heartbeat:      %" PRIu64 ", every %" PRIu64 " us\n",
      c->producer_heartbeat, c->heartbeat_period_us);
}

static void
print_positions_text (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  uint64_t in_flight = c->tail <= c->write_pos ? c->write_pos - c->tail : 0;

  fprintf (out, "  region size:    %" PRIu64 " bytes (producer's view)\n",
      c->region_size);
  fprintf (out, "  ring:           %" PRIu64 " bytes at offset %" PRIu64 "\n",
      c->ring_size, c->ring_offset);
  fprintf (out, "  write position: %" PRIu64, c->write_pos);
  if (insp->layout_ok && c->ring_size)
    fprintf (out, " (lap %" PRIu64 ", offset %" PRIu64 ")",
        c->write_pos / c->ring_size, c->write_pos % c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  tail:           %" PRIu64 "\n", c->tail);
  fprintf (out, "  in flight:      %" PRIu64 " bytes", in_flight);
  if (insp->layout_ok && c->ring_size)
    fprintf (out, " (%.1f%% of the ring)",
        100.0 * (double) in_flight / (double) c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  flags:          %s%s%s%s\n",
      c->producer_flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "had-reader " : "",
      c->producer_flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ?
      "sticky-overflow " : "",
      c->producer_flags & IVSHM_PRODUCER_FLAG_LEAKY ? "leaky " : "",
      (c->producer_flags & (IVSHM_PRODUCER_FLAG_HAD_READER |
              IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW |
              IVSHM_PRODUCER_FLAG_LEAKY)) ? "" : "none");
  print_sleeping_text (out, c);
}

static void
print_stream_text (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmStickySnapshot *snap = insp->sticky;

  fputs ("\nstream:\n", out);
  if (insp->sticky_status != IVSHM_OK) {
    fprintf (out, "  (the sticky records could not be read: %s)\n",
        snap ? snap->reason : "out of memory");
    return;
  }
  print_opt_string (out, "  caps:           ", sv->caps);
  print_opt_string (out, "  stream-start:   ", sv->stream_start);
  print_opt_string (out, "  segment:        ", sv->segment);
  print_opt_string (out, "  tags:           ", sv->tags);
  fprintf (out, "  ended:          %s\n", sv->eos ? "yes (EOS)" : "no");
  if (sv->custom)
    fprintf (out, "  custom events:  %u\n", sv->custom);
  fprintf (out, "  sticky records: %u (%" PRIu32 " bytes, %" PRIu64
      " updates), apply from position %" PRIu64 "\n", sv->parsed, snap->len,
      snap->seq / 2, snap->applies_from);
}

static void
print_slots_text (FILE * out, const IvshmInspection * insp)
{
  unsigned i;

  fprintf (out, "\nreaders: %u active", insp->n_active);
  if (insp->n_claimed)
    fprintf (out, ", %u attaching", insp->n_claimed);
  if (insp->n_waiting)
    fprintf (out, ", %u waiting for a producer", insp->n_waiting);
  if (insp->n_evicted)
    fprintf (out, ", %u evicted", insp->n_evicted);
  fprintf (out, " (of %u slots)\n", IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const IvshmSlotCopy *s = &insp->slots[i];
    uint64_t lag;

    if (s->state == IVSHM_SLOT_FREE)
      continue;
    fprintf (out, "  slot %u: ", i);
    if (s->state != IVSHM_SLOT_ACTIVE)
      fprintf (out, "%s, ", ivshm_inspect_slot_state_name (s->state));
    fprintf (out, "pid %" PRIu64 " (%s), %s session", s->pid,
        kernel_relation (s->kernel_id), s->session_id == 0 ? "no" :
        s->session_id == insp->h.session_id ? "this" : "another");
    if (s->state == IVSHM_SLOT_ACTIVE) {
      if (ivshm_inspect_slot_lag (insp, i, &lag))
        fprintf (out, ", lag %" PRIu64 " bytes", lag);
      else
        fprintf (out, ", read position %" PRIu64 " invalid", s->read_pos);
    }
    fprintf (out, ", lease %s, %" PRIu64 " records read\n",
        lease_text (insp, i), s->records_read);
  }
}

void
print_ring_text (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i;

  fputs ("\nring:\n", out);
  fprintf (out, "  protocol:       %" PRIu32 ".%" PRIu32 "\n",
      c->version_major, c->version_minor);
  fprintf (out, "  session:        0x%016" PRIx64 "\n", c->session_id);
  print_producer_text (out, insp);
  print_positions_text (out, insp);
  print_stream_text (out, insp, sv);
  print_slots_text (out, insp);

  if (insp->n_problems) {
    fputs ("\nproblems:\n", out);
    for (i = 0; i < insp->n_problems; i++) {
      fputs ("  ", out);
      text_string (out, insp->problems[i]);
      fputc ('\n', out);
    }
    if (insp->more_problems)
      fprintf (out, "  (%u more)\n", insp->more_problems);
  }
}

static const char *
json_liveness (IvshmLiveness l)
{
  return l == IVSHM_LIVENESS_ALIVE ? "true" : l == IVSHM_LIVENESS_UNKNOWN ?
      "null" : "false";
}

static void
print_producer_json (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;

  fprintf (out, ",\n  \"producer\": {\"state\": \"%s\", \"state_value\": %"
      PRIu32 ", \"alive\": %s, \"watched_ms\": %" PRIu64 ", \"owner\": "
      "\"0x%016" PRIx64 "\", \"pid\": %" PRIu64 ", \"kernel\": \"%s\", "
      "\"heartbeat\": %" PRIu64 ", \"heartbeat_period_us\": %" PRIu64 "}",
      ivshm_inspect_producer_state_name (c->producer_state),
      c->producer_state, json_liveness (insp->producer_alive),
      insp->watched_ns / 1000000, c->producer_owner, c->producer_pid,
      kernel_relation (c->producer_kernel_id), c->producer_heartbeat,
      c->heartbeat_period_us);
  fprintf (out, ",\n  \"region_size\": %" PRIu64 ", \"ring_offset\": %"
      PRIu64 ", \"ring_size\": %" PRIu64 ", \"write_pos\": %" PRIu64
      ", \"tail\": %" PRIu64 ", \"in_flight\": %" PRIu64
      ", \"readers_sleeping\": %" PRIu32, c->region_size, c->ring_offset,
      c->ring_size, c->write_pos, c->tail,
      c->tail <= c->write_pos ? c->write_pos - c->tail : 0,
      c->readers_sleeping);
  fprintf (out, ",\n  \"flags\": {\"value\": %" PRIu32 ", \"had_reader\": %s"
      ", \"sticky_overflow\": %s, \"leaky\": %s}", c->producer_flags,
      c->producer_flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "true" : "false",
      c->producer_flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ? "true" :
      "false", c->producer_flags & IVSHM_PRODUCER_FLAG_LEAKY ? "true" :
      "false");
}

static void
print_stream_json (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmStickySnapshot *snap = insp->sticky;
  bool ok = insp->sticky_status == IVSHM_OK;

  fputs (",\n  \"stream\": {\"caps\": ", out);
  json_opt_string (out, sv->caps);
  fputs (", \"stream_start\": ", out);
  json_opt_string (out, sv->stream_start);
  fputs (", \"segment\": ", out);
  json_opt_string (out, sv->segment);
  fputs (", \"tags\": ", out);
  json_opt_string (out, sv->tags);
  fprintf (out, ", \"eos\": %s, \"custom_events\": %u, \"sticky_records\": "
      "%u, \"sticky_bytes\": %" PRIu32 ", \"sticky_updates\": %" PRIu64
      ", \"applies_from\": %" PRIu64 ", \"error\": ", sv->eos ? "true" :
      "false", sv->custom, sv->parsed, ok ? snap->len : 0,
      ok ? snap->seq / 2 : 0, ok ? snap->applies_from : 0);
  json_opt_string (out, ok ? NULL : snap ? snap->reason : "out of memory");
  fputs ("}", out);
}

static void
print_slots_json (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i, n = 0;

  fprintf (out, ",\n  \"reader_count\": %u, \"readers_attaching\": %u, "
      "\"readers_waiting\": %u, \"readers_evicted\": %u, \"reader_slots\": "
      "%u, \"readers\": [", insp->n_active, insp->n_claimed,
      insp->n_waiting, insp->n_evicted, IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const IvshmSlotCopy *s = &insp->slots[i];
    uint64_t lag;

    if (s->state == IVSHM_SLOT_FREE)
      continue;
    fprintf (out, "%s\n   {\"slot\": %u, \"state\": \"%s\", \"pid\": %"
        PRIu64 ", \"kernel\": \"%s\", \"session_match\": %s, \"read_pos\": %"
        PRIu64 ", \"lag\": ", n++ ? "," : "", i,
        ivshm_inspect_slot_state_name (s->state), s->pid,
        kernel_relation (s->kernel_id),
        s->session_id == c->session_id ? "true" : "false", s->read_pos);
    if (s->state == IVSHM_SLOT_ACTIVE && ivshm_inspect_slot_lag (insp, i, &lag))
      fprintf (out, "%" PRIu64, lag);
    else
      fputs ("null", out);
    fprintf (out, ", \"lease_alive\": %s, \"heartbeat\": %" PRIu64
        ", \"records_read\": %" PRIu64 "}",
        json_liveness (insp->slot_alive[i]), s->heartbeat, s->records_read);
  }
  fputs (n ? "\n  ]" : "]", out);
}

void
print_ring_json (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i;

  fprintf (out, ",\n \"ring\": {\"version_major\": %" PRIu32
      ", \"version_minor\": %" PRIu32 ", \"session\": \"0x%016" PRIx64 "\"",
      c->version_major, c->version_minor, c->session_id);
  print_producer_json (out, insp);
  print_stream_json (out, insp, sv);
  print_slots_json (out, insp);
  fputs (",\n  \"problems\": [", out);
  for (i = 0; i < insp->n_problems; i++) {
    if (i)
      fputs (", ", out);
    json_string (out, insp->problems[i]);
  }
  fputs ("]}", out);
}
