/* gst-ivshmem: the reader slot state machine
 * SPDX-License-Identifier: MIT
 *
 * Every transition of a slot's state is one function here; PROTOCOL.md,
 * section 13, has the table of who may make which. A slot belongs to the
 * reader whose token is in `owner`; the producer changes only `state`
 * (evict) and, in a WAITING slot, `session_id` (adopt, by compare-and-swap
 * from the value it saw). Each claim increments `generation`, and every
 * read_pos value carries the claim's tag (IVSHM_POS_TAG), so a late
 * compare-and-swap of a former owner fails even where the new owner passed
 * through the same position; whoever reaps an expired slot poisons
 * read_pos first.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

int
ivshm_slot_claim (void *base, uint64_t token, uint32_t to, uint64_t * tag)
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
    /* a new tag, and read_pos "no position yet" with it: from here on a
     * reap (POISON) makes our next compare-and-swap fail */
    *tag = IVSHM_POS_TAG (atomic_fetch_add_explicit (&s->generation, 1,
            SEQ) + 1);
    atomic_store_explicit (&s->read_pos, *tag, SEQ);
    atomic_store_explicit (&s->state, to, SEQ);
    return (int) i;
  }
  return -1;
}

bool
ivshm_slot_enter_waiting (IvshmReaderSlot * s, uint32_t from,
    bool clear_session)
{
  /* session_id 0 before the state: an adopter sees WAITING only with it */
  if (clear_session)
    atomic_store_explicit (&s->session_id, 0, SEQ);
  return atomic_compare_exchange_strong_explicit (&s->state, &from,
      IVSHM_SLOT_WAITING, SEQ, RLX);
}

bool
ivshm_slot_adopt (IvshmReaderSlot * s, uint64_t session)
{
  uint64_t seen = atomic_load_explicit (&s->session_id, SEQ);

  if (atomic_load_explicit (&s->owner, ACQ) == 0 ||
      atomic_load_explicit (&s->state, SEQ) != IVSHM_SLOT_WAITING)
    return false;
  IVSHM_TEST_POINT ("producer-adopt", s);
  /* from the value we saw: session ids never repeat, so once a newer
   * producer adopted the slot, ours fails */
  return atomic_compare_exchange_strong_explicit (&s->session_id, &seen,
      session, SEQ, RLX);
}

bool
ivshm_slot_evict (IvshmReaderSlot * s, uint32_t from)
{
  return atomic_compare_exchange_strong_explicit (&s->state, &from,
      IVSHM_SLOT_EVICTED, SEQ, RLX);
}

/* Moves slot s, whose claim is owner's, to state `to` by one
 * compare-and-swap of its state and generation (state_gen) from the word
 * of that claim. The word is loaded before owner is checked: the token
 * names one claim only, so while owner still holds it after the load, the
 * word loaded is that claim's (its generation was incremented before the
 * claimer stored its first state). A slot let go and claimed again between
 * the check and the compare-and-swap has another generation: the
 * compare-and-swap fails, and nothing of the new claim changes. A word
 * that changed while owner is still ours (its owner moved the state) is
 * loaded again, a few times. False: the slot is not that claim's any
 * more. */
bool
ivshm_slot_move_from (IvshmReaderSlot * s, uint64_t owner, uint32_t to,
    const char *point)
{
  uint64_t word;
  int k;

  for (k = 0; k < 8; k++) {
    word = atomic_load_explicit (&s->state_gen, SEQ);
    if (owner == 0 || atomic_load_explicit (&s->owner, SEQ) != owner)
      return false;
    if (IVSHM_SLOT_WORD_STATE (word) == to)
      return true;
    IVSHM_TEST_POINT (point, s);
    if (atomic_compare_exchange_strong_explicit (&s->state_gen, &word,
            IVSHM_SLOT_WORD (to, IVSHM_SLOT_WORD_GEN (word)), SEQ, SEQ))
      return true;
  }
  return false;
}

/* Wakes a producer waiting for the space a slot held. */
static void
slot_freed (IvshmHeader * hdr)
{
  if (atomic_load_explicit (&hdr->writer_sleeping, SEQ) != 0)
    ivshm_wake (&hdr->space_futex);
}

bool
ivshm_slot_reap (IvshmHeader * hdr, IvshmReaderSlot * s, unsigned i,
    uint64_t owner)
{
  uint32_t bit = UINT32_C (1) << i;
  uint64_t v = atomic_load_explicit (&s->read_pos, SEQ);
  bool freed;
  int k;

  /* poison first: the old owner's next CAS of read_pos fails. By CAS from
   * the value seen while the owner was still T: a new owner's read_pos
   * carries another tag, so a reaper that stalled here does not poison
   * it. The old owner may still be publishing: bounded retries. */
  for (k = 0;; k++) {
    if (atomic_load_explicit (&s->owner, ACQ) != owner || owner == 0)
      return false;
    IVSHM_TEST_POINT ("reaper-poison", s);
    if (k == 64) {
      atomic_store_explicit (&s->read_pos, IVSHM_POS_POISON, SEQ);
      break;
    }
    if (atomic_compare_exchange_strong_explicit (&s->read_pos, &v,
            IVSHM_POS_POISON, SEQ, SEQ))
      break;
  }
  /* FREE by a compare-and-swap of state and generation together, from
   * the word T's claim left: once the slot is let go and claimed again,
   * the generation differs and a reaper that stalled here fails (it then
   * clears nothing: the bit and the owner are no longer T's) */
  if (!ivshm_slot_move_from (s, owner, IVSHM_SLOT_FREE, "reaper-free"))
    return false;
  /* then its sleeping bit: a reader about to sleep sets it, then looks at
   * its slot (ivshm_reader_wait); one of us sees the other, and a sleeper
   * whose slot we freed is woken (it would sleep to its timeout) */
  if (atomic_fetch_and_explicit (&hdr->readers_sleeping, ~bit, SEQ) & bit)
    ivshm_wake (&hdr->data_futex);
  freed = atomic_compare_exchange_strong_explicit (&s->owner, &owner, 0, SEQ,
      RLX);
  slot_freed (hdr);
  return freed;
}

void
ivshm_slot_let_go (IvshmHeader * hdr, IvshmReaderSlot * s, uint64_t token)
{
  /* from the state and generation of our claim: if a reaper freed the
   * slot meanwhile and another reader claimed it, its generation differs
   * and the slot is not ours to change */
  if (!ivshm_slot_move_from (s, token, IVSHM_SLOT_FREE, "reader-let-go"))
    return;
  atomic_compare_exchange_strong_explicit (&s->owner, &token, 0, SEQ, RLX);
  slot_freed (hdr);
}

bool
ivshm_lease_expired (IvshmLeaseWatch * lw, IvshmReaderSlot * s, uint64_t now,
    uint64_t lease_ns, uint64_t * owner)
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
    uint64_t lease_ns, unsigned *live, uint64_t * tag)
{
  IvshmLeaseWatch watch[IVSHM_MAX_READERS] = { {0} };
  uint64_t start = ivshm_now_ns (), now = start, o;
  unsigned i;
  int got = ivshm_slot_claim (base, token, to, tag);

  *live = IVSHM_MAX_READERS;
  if (got >= 0)
    return got;
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    ivshm_lease_expired (&watch[i], ivshm_slot_of (base, i), now, lease_ns, &o);
  /* watch one lease; a slot let go meanwhile is taken at once */
  while (now - start <= lease_ns) {
    ivshm_sleep_ns (20ull * 1000 * 1000);
    if ((got = ivshm_slot_claim (base, token, to, tag)) >= 0)
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
  return ivshm_slot_claim (base, token, to, tag);
}
