/*
 * The producer (included by ivshmem.pml). `me` is its token; the session it
 * formats is the nsess-th one, with positions from BASE(s).
 */

/* reader r reads session s from a slot that still holds its token */
#define LIVE(r, s) (rsess[r] == (s) && slot[rslot[r]].owner == rtok[r] && \
    slot[rslot[r]].state == ACTIVE && slot[rslot[r]].sid == (s))
/* reader r waits in a slot adopted into session s: it needs BASE(s) */
#define ADOPTED(r, s) (rsess[r] == 0 && rtok[r] != 0 && \
    slot[rslot[r]].owner == rtok[r] && slot[rslot[r]].state == WAITING && \
    slot[rslot[r]].sid == (s))
/* writing position w overwrites position w - NCELL */
#define SAFE(r) ((!LIVE (r, s) || need[r] + NCELL > w) && \
    (!ADOPTED (r, s) || BASE (s) + NCELL > w))

/* a stall (or a crash) inside the format; with one producer nobody takes
 * over, and readers see magic 0 during a format anyway */
#ifdef ONE_PRODUCER
#define FORMAT_STALL skip
#else
#define FORMAT_STALL STALL (pfrozen[me])
#endif

/* CAS(writer_sleeping, me, 0) */
#ifdef PLAIN_WSLEEP
#define WSLEEP_CLEAR wsleep = 0
#else
#define WSLEEP_CLEAR atomic { if :: wsleep == me -> wsleep = 0 :: else -> skip fi }
#endif

/* the stale-producer check and the store it guards, as one step (the
 * window between them is discussed in README.md) */
#define OWNED_OR_TAKEN if :: powner != me -> goto taken :: else -> skip fi

/* reap slot k whose lease (owner T) expired, in the steps of
 * ivshm_slot_reap: POISON while the owner is T, loading state_gen (state
 * and generation) there too; a stall (fz: the reaper's frozen flag);
 * CAS(state_gen, seen, FREE) (ivshm_slot_move_from: a word that changed
 * while owner is still T is loaded again, one that changed with another
 * owner ends the reap); then, if it freed the slot, the sleeping bit
 * (cleared with a wake of data_futex when set: the owner may have resumed
 * and gone to sleep after the reaper judged it, README.md finding 4),
 * CAS(owner, T, 0) and a wake of a producer waiting for space. */
inline reap (k, T, fz)
{
  FREE_STEPS_BEGIN
  atomic {
    if
    :: slot[k].owner == T -> slot[k].rpos = POISON
    :: else -> skip
    fi
  };
  do
  :: atomic {
      if
      :: slot[k].owner == T -> rs = slot[k].state; rg = slot[k].gen
      :: else -> rs = NOSTATE; break
      fi
    };
    FREE_STALL (fz);
    atomic {
      if
#ifdef BROKEN_REAP
      /* the old reap: CAS(state, seen, FREE), the generation unseen */
      :: slot[k].state == rs ->
#else
      :: slot[k].state == rs && slot[k].gen == rg ->
#endif
        assert (c_no_stale_store && slot[k].owner == T);
#ifndef NO_GHOST_EF
        /* (f) only a reader whose lease expired loses its slot */
        assert (f_live_keeps_slot && (((rexp | rdead) >> T) & 1));
#endif
        slot[k].state = FREE;
        if
        :: rsleep & (1 << k) -> rsleep = rsleep & ~(1 << k); WAKE_DATA
        :: else -> skip
        fi;
        if
        :: slot[k].owner == T -> slot[k].owner = 0
        :: else -> skip
        fi;
        WAKE_SPACE;
        break
      :: else -> skip
      fi
    }
  od;
  atomic { rs = 0; rg = 0 }
  FREE_STEPS_END
}

/* the lowest position a live reader of session s needs (write_pos if none);
 * evicts slots with impossible values. One step per slot. */
inline scan_slot (m, k)
{
  if
  :: slot[k].state == ACTIVE && slot[k].sid == s && slot[k].owner != 0 ->
    x = POS (slot[k].rpos);
    if
    :: x < tl -> skip           /* attaching below the tail: holds nothing */
    :: x > w ->                 /* impossible (POISON...): evict */
      if
      :: powner == me -> slot[k].state = EVICTED
      :: else -> skip
      fi
    :: else ->
      if
      :: x < m -> m = x
      :: else -> skip
      fi
    fi
  :: slot[k].state == WAITING && slot[k].sid == s ->
    if
    :: base < m -> m = base
    :: else -> skip
    fi
  :: else -> skip
  fi;
  x = 0
}

inline scan (m)
{
  atomic { m = w; scan_slot (m, 0); scan_slot (m, 1) }
}

/* the tail / reclaim Dekker pair: scan, publish tail = m1, scan again */
inline reclaim ()
{
  scan (m1);
  atomic {
    if
    :: m1 > tp -> OWNED_OR_TAKEN; tail = m1; tp = m1
    :: else -> skip
    fi
  };
  scan (m2);
  atomic {
    if
    :: m1 < m2 && m1 > tl -> tl = m1
    :: m2 <= m1 && m2 > tl -> tl = m2
    :: else -> skip
    fi;
    m1 = 0;
    m2 = 0
  }
}

proctype producer (byte me)
{
  byte T, k, s, w, n, m1, m2, tl, tp, x, base, rs, rg;

  /* 1. claim: CAS(producer_owner, 0 or an expired owner T, me) */
  do
  :: atomic {
      (powner == 0 || (powner != me && pfrozen[powner])) -> T = powner
    };
#ifdef BROKEN_CLAIM
    /* check-then-store: another producer may have claimed meanwhile */
    atomic { assert (a_one_owner && powner == T); powner = me };
    break
#else
    STALL (pfrozen[me]);
    atomic {
      if
      :: powner == T -> assert (a_one_owner && powner == T); powner = me;
        break
      :: else -> skip
      fi
    }
#endif
  od;

  /* 2. format the session (owner only) */
  atomic {
    OWNED_OR_TAKEN;
    magic = 0;
    pstate = NONE;
    nsess++;
    s = nsess;
#ifndef NO_GHOST_EF
    /* ghost: the readers waiting now must get this session's first
     * record (e) */
    if
    :: rtok[0] != 0 && slot[rslot[0]].owner == rtok[0] &&
        slot[rslot[0]].state == WAITING -> waited[0] = s
    :: else -> skip
    fi;
    if
    :: rtok[1] != 0 && slot[rslot[1]].owner == rtok[1] &&
        slot[rslot[1]].state == WAITING -> waited[1] = s
    :: else -> skip
    fi;
#endif
    base = BASE (s);
    w = base;
    tl = base;
    tp = base
  };
  /* a stall (or a crash) inside the format, magic 0: a takeover now
   * finds the session half formatted */
  FORMAT_STALL;
  /* adopt WAITING slots; evict slots of older sessions */
  k = 0;
  do
  :: k < NSLOT ->
#ifdef DESIGN_ADOPT
    /* the 2.0 draft's adoption: read_pos = base, session_id = s, then
     * CAS(state, WAITING, ACTIVE), each store after the owner check */
    atomic {
      OWNED_OR_TAKEN;
      if
      :: slot[k].state == WAITING -> x = 1
      :: (slot[k].state == CLAIMED || slot[k].state == ACTIVE) &&
          slot[k].sid != s -> slot[k].state = EVICTED; x = 0
      :: else -> x = 0
      fi
    };
    if
    :: x == 1 ->
      STALL (pfrozen[me]);
      atomic {
        assert (c_no_stale_store && (powner == me || nsess == s));
        slot[k].rpos = ENC (base, slot[k].gen)
      };
      atomic {
        assert (c_no_stale_store && (powner == me || nsess == s));
        slot[k].sid = s
      };
      atomic {
        if
        :: slot[k].state == WAITING -> slot[k].state = ACTIVE
        :: else -> skip
        fi
      }
    :: else -> skip
    fi;
#else
    /* adoption marks the slot: CAS(session_id, observed, s); the reader
     * registers read_pos itself (README.md, finding 2) */
    atomic {
      OWNED_OR_TAKEN;
      if
#ifdef BROKEN_NO_ADOPT
      :: slot[k].state == WAITING -> skip
#else
      :: slot[k].state == WAITING -> slot[k].sid = s
#endif
      :: (slot[k].state == CLAIMED || slot[k].state == ACTIVE) &&
          slot[k].sid != s -> slot[k].state = EVICTED
      :: else -> skip
      fi
    };
#endif
    k++
  :: else -> break
  od;
  /* the end of the format in the C's steps, each after its ownership
   * check (ivshm_writer_cas_owned): session_id, write_pos, tail, then
   * ACTIVE and magic; a stall (or a crash) may come before them */
  FORMAT_STALL;
  atomic { OWNED_OR_TAKEN; session = s };
  atomic { OWNED_OR_TAKEN; write_pos = base };
  atomic { OWNED_OR_TAKEN; tail = base };
  atomic {
    OWNED_OR_TAKEN;
    assert (c_no_stale_store && powner == me);
    pstate = PACTIVE;
    magic = 1
  };

  /* 3. write NREC records */
  n = 0;
  do
  :: n == NREC -> break
  :: n < NREC ->
    STALL (pfrozen[me]);
    if
    :: w >= tl + NCELL -> reclaim ()   /* the ring looks full */
    :: else -> skip
    fi;
    if
    :: w >= tl + NCELL ->
      /* no room: wait for space (writer_sleeping + space_futex) */
      /* load space_futex, writer_sleeping = our token (README.md,
       * finding 3: not 1, so that a stale producer's clear is a CAS that
       * fails), then reclaim again */
      atomic { OWNED_OR_TAKEN; pchanged[me] = 0; wsleep = me };
      reclaim ();
      if
      :: w < tl + NCELL -> WSLEEP_CLEAR
      :: else ->
        /* FUTEX_WAIT(space_futex, loaded) */
        atomic {
          if
          :: !pchanged[me] -> pasleep[me] = 1
          :: else -> skip
          fi
        };
        /* woken; or its sleep timeout, modelled only where the protocol
         * needs it: nobody wakes a producer that lost the region, and a
         * slot whose lease expired is reaped only by the tick */
        atomic {
          pasleep[me] == 0 || powner != me || EXPIRED (slot[0].owner) ||
          EXPIRED (slot[1].owner) -> pasleep[me] = 0
        };
        WSLEEP_CLEAR
      fi
    :: else ->
      /* write the record: nobody live may still need the cell */
      atomic {
        OWNED_OR_TAKEN;
        assert (b_no_overwrite && SAFE (0) && SAFE (1));
        cell[w % NCELL] = w
      };
      STALL (pfrozen[me]);
      /* publish: CAS(write_pos, last published, new) */
      atomic {
        if
        :: write_pos == w -> write_pos = w + 1;
          /* in our session, or in a newer producer's format before it
           * stored its base (magic 0: no reader trusts it, and the
           * format overwrites it) */
          assert (c_no_stale_store && (session == s || !magic));
          w++;
          n++
        :: else -> goto taken
        fi
      };
#ifndef BROKEN_WAKE
      /* seq_cst fence, then look for sleepers */
      atomic {
        if
        :: rsleep != 0 -> WAKE_DATA
        :: else -> skip
        fi
      }
#endif
    fi
  :: atomic {
      powner == me && REAPABLE (slot[0].owner) -> k = 0; T = slot[0].owner
    };
    reap (k, T, pfrozen[me])         /* the periodic tick reaps an expired slot */
  :: atomic {
      powner == me && REAPABLE (slot[1].owner) -> k = 1; T = slot[1].owner
    };
    reap (k, T, pfrozen[me])
  od;

  /* 4. clean stop: CLOSED, wake the readers, CAS(producer_owner, me, 0) */
  atomic { OWNED_OR_TAKEN; pstate = CLOSED };
  atomic {
    if
    :: rsleep != 0 -> WAKE_DATA
    :: else -> skip
    fi
  };
  atomic {
    if
    :: powner == me -> powner = 0
    :: else -> skip
    fi
  };
taken:
  skip
}
