/*
 * A reader process (included by ivshmem.pml). It claims a slot up to NINC
 * times; each claim has a token of its own. Stores into its slot check
 * owner and state in the same step (the reader's lock), except read_pos,
 * which is stored with CAS(read_pos, last published, new) after the check,
 * with a possible stall in between: the window the CAS must close.
 */

#define MINE (slot[k].owner == tok)

/* CAS(read_pos, last, ENC(np, g)), or the slot is lost */
#define PUBLISH(np) \
  atomic { \
    if \
    :: MINE && slot[k].rpos == last -> slot[k].rpos = ENC (np, g); \
      last = ENC (np, g) \
    :: else -> goto lost \
    fi \
  }

/* CAS(owner, 0, tok), CAS(state, FREE, CLAIMED), the claim generation,
 * then a look at the header: is there a producer? */
#define CLAIM \
  slot[k].owner = tok; \
  slot[k].state = CLAIMED; \
  slot[k].gen = (slot[k].gen + 1) % 4; \
  g = slot[k].gen; \
  last = slot[k].rpos; \
  rtok[r] = tok; \
  rslot[r] = k; \
  rsess[r] = 0; \
  need[r] = 0; \
  GHOST_EF (waited[r] = 0; rfirst[r] = 1); \
  if \
  :: magic && pstate == PACTIVE -> s = session \
  :: else -> s = 0 \
  fi

proctype reader (byte r)
{
  byte tok, k, p, t, s, g, T, inc, last, x, rs, rg;

next:
  if
  :: inc == (r == 0 -> NINC0 : NINC) -> goto done
  :: else -> skip
  fi;
  tok = 1 + r * NINC + inc;
  inc++;

  /* claim: CAS(owner, 0, tok) on a free slot; if none is free, reap a slot
   * whose lease expired (the reader watched its heartbeat for a lease) */
  do
  :: atomic { slot[0].owner == 0 -> k = 0; CLAIM; break }
  :: atomic { slot[1].owner == 0 -> k = 1; CLAIM; break }
  :: atomic {
      slot[0].owner != 0 && slot[1].owner != 0 && REAPABLE (slot[0].owner) ->
      k = 0; T = slot[0].owner
    };
    reap (k, T, rfrozen[r]);
    T = 0
  :: atomic {
      slot[0].owner != 0 && slot[1].owner != 0 && REAPABLE (slot[1].owner) ->
      k = 1; T = slot[1].owner
    };
    reap (k, T, rfrozen[r]);
    T = 0
  od;
  if
  :: s != 0 -> goto join
  :: else -> skip
  fi;

  /* no producer: WAITING (session_id 0) until a session starts */
  atomic {
    if
    :: MINE && slot[k].state == CLAIMED -> slot[k].sid = 0;
      slot[k].state = WAITING
    :: else -> goto lost
    fi
  };
end_waiting:
  atomic { magic && pstate == PACTIVE -> s = session };
  atomic {
    if
#ifdef DESIGN_ADOPT
    :: MINE && slot[k].state == ACTIVE && slot[k].sid == s ->
      /* adopted: the producer stored read_pos */
      p = POS (slot[k].rpos);
      last = slot[k].rpos;
      assert (e_waiters_get_first && p == BASE (s));
      rsess[r] = s;
      need[r] = p;
      x = 2
    :: MINE && slot[k].state == WAITING && slot[k].sid == s ->
      goto end_waiting  /* the producer is adopting this slot */
#else
    :: MINE && slot[k].state == WAITING && slot[k].sid == s -> x = 1
#endif
    :: MINE && slot[k].state == WAITING && slot[k].sid != s ->
      /* came after the format: attach as a later reader */
      slot[k].state = CLAIMED;
      x = 0
    :: else -> goto lost
    fi
  };
  if
  :: x == 0 -> goto join
  :: x == 2 -> x = 0; goto read
  :: else -> x = 0
  fi;
  /* adopted into session s: read_pos = tail (= the session's base, which
   * the producer keeps for an adopted slot), then WAITING -> ACTIVE */
  t = tail;
  PUBLISH (t);
  atomic {
    if
    :: MINE && slot[k].state == WAITING && slot[k].sid == s ->
      assert (e_waiters_get_first && t == BASE (s));
      slot[k].state = ACTIVE;
      rsess[r] = s;
      need[r] = t
    :: MINE && slot[k].state == WAITING ->
      goto end_waiting  /* adopted again by a newer session meanwhile */
    :: else -> goto lost
    fi
  };
  p = t;
  t = 0;
  goto read;

join:
  /* a later reader: session_id, then read_pos = tail and ACTIVE, then
   * load tail again until it stands no higher (Dekker with reclaim) */
  atomic {
    if
    :: MINE && slot[k].state == CLAIMED -> slot[k].sid = s; t = tail
    :: else -> goto lost
    fi
  };
  atomic {
    if
    :: MINE && slot[k].state == CLAIMED && slot[k].rpos == last ->
      slot[k].rpos = ENC (t, g);
      last = ENC (t, g);
      slot[k].state = ACTIVE
    :: else -> goto lost
    fi
  };
recheck:
  atomic {
    x = tail;
    if
    :: x <= t -> rsess[r] = s; need[r] = t
    :: else -> skip
    fi
  };
  if
  :: x > t -> t = x; x = 0; PUBLISH (t); goto recheck
  :: else -> x = 0
  fi;
  atomic {              /* attaching wakes a producer waiting for space */
    if
    :: wsleep -> WAKE_SPACE
    :: else -> skip
    fi;
    p = t;
    t = 0
  };

read:
  CRASH (tok);
  /* the caught-up checks, then the record header at p */
  atomic {
    if
    :: !MINE || slot[k].state != ACTIVE -> goto lost
    :: session != s || !magic || pstate == NONE ->
      goto leave        /* the session changed */
    :: write_pos == p && pstate == CLOSED ->
      goto leave        /* drained, the producer closed */
    :: write_pos == p -> goto sleep
    :: else ->
      assert (b_no_overwrite && cell[p % NCELL] == p);
      /* (e) on every path: a reader that waited when this session was
       * formatted reads its first record first */
      GHOST_EF (if
      :: rfirst[r] ->
        assert (e_waiters_get_first && (waited[r] != s || p == BASE (s)));
        rfirst[r] = 0
      :: else -> skip
      fi)
    fi
  };
  RSTALL;               /* a long copy */
  /* the end of the copy, an acquire fence, then under the reader's lock:
   * is the slot still ours? If not, the copy is dropped. */
  atomic {
    if
    :: MINE && slot[k].state == ACTIVE ->
      assert (b_no_overwrite && cell[p % NCELL] == p)
    :: else -> goto lost
    fi
  };
  /* release p: CAS(read_pos, last, p + 1) */
#ifdef BROKEN_READER
  atomic {
    slot[k].rpos = ENC (p + 1, g);
    assert (c_no_stale_store && MINE);
    need[r] = p + 1;
    p++
  };
#else
  RSTALL;
  atomic {
    if
    :: slot[k].rpos == last -> slot[k].rpos = ENC (p + 1, g);
      last = ENC (p + 1, g);
      assert (c_no_stale_store && MINE);
      need[r] = p + 1;
      p++
    :: else -> goto lost
    fi
  };
#endif
  /* seq_cst fence, then wake a producer waiting for space */
  atomic {
    if
    :: wsleep -> WAKE_SPACE
    :: else -> skip
    fi
  };
  goto read;

sleep:
  /* load data_futex, set our bit, look at write_pos (and at our slot:
   * a reaper clears the bit and wakes, see reap) again, sleep */
  atomic { rchanged[r] = 0; rsleep = rsleep | (1 << k) };
  atomic {
#ifdef BROKEN_SLEEP
    x = 0;
#else
    if
    :: write_pos != p || session != s || pstate != PACTIVE || !magic ||
        !MINE || slot[k].state != ACTIVE -> x = 1
    :: else -> x = 0
    fi;
#endif
    if            /* FUTEX_WAIT(data_futex, loaded) */
    :: x == 0 && !rchanged[r] -> rasleep[r] = 1
    :: else -> skip
    fi;
    x = 0
  };
  /* woken: clear our bit, but only while the slot is ours (a reaper
   * cleared it otherwise, and the slot's next owner may have set it) */
  atomic {
    rasleep[r] == 0 ->
    if
    :: MINE -> rsleep = rsleep & ~(1 << k)
    :: else -> skip
    fi
  };
  goto read;

leave:
lost:
  /* let go if the slot is still ours: load state_gen, check owner, then
   * CAS(state_gen, (seen, g), (FREE, g)), then CAS(owner, tok, 0); a slot
   * that no longer holds its space wakes a waiting producer. A stall may
   * come between the check and the compare-and-swap: meanwhile the slot
   * may be reaped and claimed again (ivshm_slot_move_from). */
  FREE_STEPS_BEGIN
  do
  :: atomic {
      if
      :: MINE -> rs = slot[k].state; rg = slot[k].gen
      :: else -> break
      fi
    };
    FREE_RSTALL;
    atomic {
      if
#ifdef BROKEN_LETGO
      /* the old let-go: CAS(state, seen, FREE), the generation unseen */
      :: slot[k].state == rs ->
#else
      :: slot[k].state == rs && slot[k].gen == rg ->
#endif
        assert (c_no_stale_store && MINE);
        slot[k].state = FREE;
        slot[k].owner = 0;
        break
      :: else -> skip   /* changed: loaded again while it is ours */
      fi
    }
  od;
  FREE_STEPS_END
  atomic {
    rs = 0;
    rg = 0;
    rsess[r] = 0;
    if
    :: wsleep -> WAKE_SPACE
    :: else -> skip
    fi
  };
  goto next;
done:
  skip
}
