/* gst-ivshmem: the reader slot state machine
 * SPDX-License-Identifier: MIT
 *
 * Every transition of a slot's state is one function here; PROTOCOL.md,
 * "Reader slots", has the table of who may make which. A slot belongs to
 * the reader whose token is in `owner`; the producer changes only `state`
 * (evict), and `read_pos`/`session_id` of a WAITING slot it adopts;
 * whoever reaps an expired slot poisons `read_pos` first, so that a late
 * compare-and-swap of the old owner cannot succeed.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

int
ivshm_slot_claim (void *base, uint64_t token, uint32_t to)
{
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (base, i);
    uint64_t expected = 0;

    if (atomic_load_explicit (&s->owner, RLX) != 0)
      continue;
    if (!atomic_compare_exchange_strong_explicit (&s->owner, &expected,
            token, SEQ, RLX))
      continue;
    /* The slot is ours: nobody else stores its state now but the producer
     * (evict, adopt), which only does so from CLAIMED, ACTIVE or WAITING.
     * A FREE slot whose owner was 0 is the rule; anything else is left
     * over from a hostile peer, and ours to overwrite. */
    atomic_store_explicit (&s->heartbeat,
        atomic_load_explicit (&s->heartbeat, RLX) + 1, RLX);
    atomic_store_explicit (&s->state, to, SEQ);
    return (int) i;
  }
  return -1;
}

bool
ivshm_slot_enter_waiting (IvshmReaderSlot * s)
{
  uint32_t expected = IVSHM_SLOT_CLAIMED;

  /* session_id 0 before the state: an adopter sees WAITING only with it */
  atomic_store_explicit (&s->session_id, 0, SEQ);
  atomic_store_explicit (&s->read_pos, IVSHM_POS_POISON, SEQ);
  return atomic_compare_exchange_strong_explicit (&s->state, &expected,
      IVSHM_SLOT_WAITING, SEQ, RLX);
}

bool
ivshm_slot_adopt (IvshmReaderSlot * s, uint64_t session, uint64_t base_pos)
{
  uint32_t expected = IVSHM_SLOT_WAITING;

  if (atomic_load_explicit (&s->owner, ACQ) == 0)
    return false;
  /* A WAITING reader never stores read_pos or session_id: they are the
   * adopter's until the state says ACTIVE. */
  atomic_store_explicit (&s->read_pos, base_pos, SEQ);
  atomic_store_explicit (&s->session_id, session, SEQ);
  return atomic_compare_exchange_strong_explicit (&s->state, &expected,
      IVSHM_SLOT_ACTIVE, SEQ, RLX);
}

bool
ivshm_slot_evict (IvshmReaderSlot * s, uint32_t from)
{
  return atomic_compare_exchange_strong_explicit (&s->state, &from,
      IVSHM_SLOT_EVICTED, SEQ, RLX);
}

bool
ivshm_slot_reap (IvshmHeader * hdr, IvshmReaderSlot * s, unsigned i,
    uint64_t owner)
{
  uint32_t state;

  if (atomic_load_explicit (&s->owner, ACQ) != owner || owner == 0)
    return false;
  state = atomic_load_explicit (&s->state, SEQ);
  /* poison first: the old owner's next CAS of read_pos fails */
  atomic_store_explicit (&s->read_pos, IVSHM_POS_POISON, SEQ);
  atomic_fetch_and_explicit (&hdr->readers_sleeping, ~(UINT32_C (1) << i),
      SEQ);
  atomic_compare_exchange_strong_explicit (&s->state, &state,
      IVSHM_SLOT_FREE, SEQ, RLX);
  return atomic_compare_exchange_strong_explicit (&s->owner, &owner, 0, SEQ,
      RLX);
}

void
ivshm_slot_let_go (IvshmReaderSlot * s, uint64_t token)
{
  uint32_t state;
  int k;

  if (atomic_load_explicit (&s->owner, ACQ) != token)
    return;
  /* from the state we saw: if a reaper freed the slot meanwhile, a new
   * owner's state is not ours to change */
  for (k = 0; k < 4; k++) {
    /* an adoption may move WAITING to ACTIVE under us: look again */
    state = atomic_load_explicit (&s->state, SEQ);
    if (state == IVSHM_SLOT_FREE ||
        atomic_compare_exchange_strong_explicit (&s->state, &state,
            IVSHM_SLOT_FREE, SEQ, RLX))
      break;
  }
  atomic_compare_exchange_strong_explicit (&s->owner, &token, 0, SEQ, RLX);
}

bool
ivshm_lease_expired (IvshmLeaseWatch * lw, IvshmReaderSlot * s, uint64_t now,
    uint64_t lease_ns, uint64_t *owner)
{
  uint64_t o = atomic_load_explicit (&s->owner, ACQ), hb;

  if (o == 0) {
    lw->owner = 0;
    return false;
  }
  hb = atomic_load_explicit (&s->heartbeat, ACQ);
  if (lw->owner != o || lw->heartbeat != hb) {
    lw->owner = o;
    lw->heartbeat = hb;
    lw->since_ns = now;
    return false;
  }
  if (now - lw->since_ns <= lease_ns)
    return false;
  *owner = o;
  return true;
}

int
ivshm_slot_claim_reaping (void *base, uint64_t token, uint32_t to,
    uint64_t lease_ns, unsigned *live)
{
  IvshmLeaseWatch watch[IVSHM_MAX_READERS] = { {0} };
  uint64_t start = ivshm_now_ns (), now = start, o;
  unsigned i;
  int got = ivshm_slot_claim (base, token, to);

  *live = IVSHM_MAX_READERS;
  if (got >= 0)
    return got;
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    ivshm_lease_expired (&watch[i], ivshm_slot_of (base, i), now, lease_ns,
        &o);
  /* watch one lease; a slot let go meanwhile is taken at once */
  while (now - start <= lease_ns) {
    ivshm_sleep_ns (20ull * 1000 * 1000);
    if ((got = ivshm_slot_claim (base, token, to)) >= 0)
      return got;
    now = ivshm_now_ns ();
    for (i = 0; i < IVSHM_MAX_READERS; i++)
      if (atomic_load_explicit (&ivshm_slot_of (base, i)->heartbeat, RLX) !=
          watch[i].heartbeat)
        ivshm_lease_expired (&watch[i], ivshm_slot_of (base, i), now,
            lease_ns, &o);
  }
  *live = 0;
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (base, i);

    if (ivshm_lease_expired (&watch[i], s, now, lease_ns, &o))
      ivshm_slot_reap (ivshm_header_of (base), s, i, o);
    else if (atomic_load_explicit (&s->owner, RLX) != 0)
      (*live)++;
  }
  return ivshm_slot_claim (base, token, to);
}
