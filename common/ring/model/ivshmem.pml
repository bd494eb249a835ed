/*
 * gst-ivshmem ring protocol 2.0: a Promela model of the producer/reader
 * lifecycle, checked with Spin (common/ring/model/README.md says what it checks,
 * what it leaves out and how to run it; tests/model runs it in the suite).
 *
 * Two producers (tokens 1 and 2) and two reader processes (-DONE_PRODUCER,
 * -DONE_READER leave one out; NREC, MAXSTALL, NINC, NINC0 size a run: the
 * configurations are in tests/model/meson.build). Each reader
 * process claims a slot up to NINC times, each time with a new token (a
 * reader that was evicted, reaped or that saw its session end attaches
 * again: on-producer-restart=follow). Any process may stall at the marked
 * points (SIGSTOP, a paused VM) and resume later; a stalled process is what
 * makes a lease expire, so another process may take over or reap exactly
 * while the owner is stalled, and the owner may resume afterwards. A process
 * that never resumes is a dead one (every prefix of a run is checked). A
 * reader may also crash and restart with a new token, abandoning its slot.
 *
 * The ring is NCELL cells; cell[p % NCELL] holds the position of the record
 * last written there. Positions are small numbers: session n starts at
 * BASE(n), far from the positions of any other session (session_base).
 *
 * Broken variants (each must make Spin fail; tests/model checks which
 * property fails):
 *   -DBROKEN_READER  a reader stores read_pos with a plain store, without
 *                    the ownership check and the CAS            -> (c)
 *   -DBROKEN_CLAIM   a producer takes the region with check-then-store
 *                    instead of a CAS on producer_owner          -> (a)
 *   -DBROKEN_WAKE    the producer publishes without looking at
 *                    readers_sleeping                            -> (d)
 *   -DBROKEN_SLEEP   a reader sleeps without re-reading write_pos
 *                    after it set its bit in readers_sleeping    -> (d)
 *   -DBROKEN_LETGO   a reader letting go moves its state to FREE by
 *                    CAS(state, seen, FREE), without the generation: a
 *                    stall between its ownership check and the CAS
 *                    frees the slot of its next owner            -> (c)
 *   -DBROKEN_REAP    the same in a reaper                        -> (c)
 *   -DBROKEN_REAP_LIVE  a reaper reaps an owner whose lease did not
 *                    expire                                       -> (f)
 *   -DBROKEN_NO_ADOPT  the format does not adopt WAITING slots    -> (e)
 * Variants that show where the 2.0 draft (README.md, "Findings"), as
 * written, fails:
 *   -DNO_TAG         read_pos holds the bare position (no claim tag): a
 *                    stalled reader's CAS succeeds on the slot's next
 *                    owner when that owner registered the same position
 *   -DPLAIN_WSLEEP   writer_sleeping is 1/0 and cleared with a plain
 *                    store: a stalled producer's clear lands in the next
 *                    producer's wait for space
 *   -DDESIGN_ADOPT   the producer adopts a WAITING slot by storing
 *                    read_pos and session_id itself, so a stalled
 *                    producer's adoption stores land in the next session
 */

/* The defaults are the `full' configuration of tests/model/meson.build;
 * more of everything at once quickly needs more than a few GB. */
#ifndef NREC
#define NREC 2          /* records each producer writes */
#endif
#ifndef MAXSTALL
#define MAXSTALL 0      /* stalls in one run, over all processes */
#endif
#ifndef NCELL
#define NCELL 2         /* ring cells */
#endif
#define NSLOT 2         /* reader slots */
#ifndef NINC
#define NINC 1          /* claims per reader process (tokens) */
#endif
#ifndef NINC0
#define NINC0 NINC      /* claims of reader 0 */
#endif
#define POISON 31       /* IVSHM_POS_POISON, as a position */
#define BASE(n) ((n) * 8)       /* session_base of the n-th session */

/* read_pos = position + 32 * claim tag (the tag is the slot's claim
 * generation; the real field keeps it in the low bits that record
 * alignment leaves zero) */
#ifdef NO_TAG
#define ENC(p, g) (p)
#else
#define ENC(p, g) ((p) + 32 * ((g) % 4))
#endif
#define POS(x) ((x) % 32)

/* producer_state */
#define NONE 0
#define PACTIVE 1
#define CLOSED 2
/* slot state */
#define FREE 0
#define CLAIMED 1
#define ACTIVE 2
#define EVICTED 3
#define WAITING 4
#define NOSTATE 255     /* a local: no state seen */

/* ---- shared memory ---- */
byte powner;            /* producer_owner */
bit magic;
byte pstate;            /* producer_state */
byte session;           /* session_id: 0 none, else 1.. (format order) */
byte write_pos;
byte tail;
bit rchanged[2];        /* data_futex, as seen by reader r */
byte rsleep;            /* readers_sleeping, a bitmask of slot indexes */
bit pchanged[3];        /* space_futex, as seen by producer i */
byte wsleep;            /* writer_sleeping: the sleeping producer's token */
byte cell[NCELL];

typedef Slot {
  byte owner;           /* reader token, 0 = free */
  byte state;
  byte rpos;            /* read_pos, ENC(position, tag) */
  byte sid;             /* session_id the slot follows, 0 while WAITING */
  byte gen              /* claim generation (the tag source) */
};
Slot slot[NSLOT];

/* ---- ghost state: read by the properties only, never by the protocol ---- */
byte nsess;             /* sessions formatted so far */
byte nstall;            /* stalls so far */
bit pfrozen[3];         /* producer i is stalled (its lease may expire) */
bit rfrozen[2];         /* reader process r is stalled */
byte rdead;             /* bit t: reader token t crashed (its process
                         * restarted with a new token, the slot abandoned) */
byte rtok[2];           /* reader r's current token */
byte rslot[2];          /* its slot */
byte rsess[2];          /* the session it reads (0: not a live reader) */
byte need[2];           /* the lowest position it has not released */
byte rexp;              /* bit t: reader token t has stalled or crashed
                         * (its lease may have expired) */
byte waited[2];         /* the session whose format began while reader r
                         * waited in a WAITING slot (0: none) */
bit rfirst[2];          /* reader r has read no record with its token yet */
bit rasleep[2];         /* reader r sleeps in FUTEX_WAIT on data_futex */
bit pasleep[3];         /* producer i sleeps in FUTEX_WAIT on space_futex */

/* The properties, named so that a failing assertion names its rule. */
bit a_one_owner = 1;
bit b_no_overwrite = 1;
bit c_no_stale_store = 1;
bit d_no_lost_wakeup = 1;
bit e_waiters_get_first = 1;
bit f_live_keeps_slot = 1;

/* the lease of reader token t has expired: its process is stalled now */
#define READER_OF(t) (((t) - 1) / NINC)
#define EXPIRED(t) ((t) != 0 && ((rdead & (1 << (t))) || \
    (rfrozen[READER_OF(t)] && rtok[READER_OF(t)] == (t))))

/* a reader crashes and restarts (SIGKILL, a guest reset): the slot of the
 * old token is abandoned; counted as a stall */
#if MAXSTALL > 0
#define CRASH(t) \
  if \
  :: skip \
  :: atomic { nstall < MAXSTALL -> nstall++; rdead = rdead | (1 << (t)); \
      rsess[r] = 0 }; goto next \
  fi
#else
#define CRASH(t) skip
#endif

/* The futex words: a waiter loads the word (FUTEX_LOAD: its "changed" bit
 * goes 0); FUTEX_WAKE bumps the word (every changed bit goes 1) and wakes
 * every sleeper; FUTEX_WAIT sleeps only if the word did not change since
 * the load. The bits stand for "the word differs from the value loaded",
 * without counting bumps. */
#define WAKE_DATA rchanged[0] = 1; rchanged[1] = 1; rasleep[0] = 0; rasleep[1] = 0
#define WAKE_SPACE pchanged[1] = 1; pchanged[2] = 1; pasleep[1] = 0; pasleep[2] = 0

/* a stall: the process freezes, others run (leases expire), it resumes */
#if MAXSTALL > 0
#define STALLG(fz, ghost) \
  if \
  :: skip \
  :: atomic { nstall < MAXSTALL -> nstall++; fz = 1; ghost }; fz = 0 \
  fi
#else
#define STALLG(fz, ghost) skip
#endif
#define STALL(fz) STALLG (fz, skip)
/* a reader's stall: its token's lease may expire (ghost rexp). With
 * -DNO_GHOST_EF the ghosts of (e) on every path and of (f) are left out,
 * and so are those checks (reap-full-ring: its size; the other
 * configurations check them) */
#ifdef NO_GHOST_EF
#define GHOST_EF(x) skip
#define RSTALL STALL (rfrozen[r])
#else
#define GHOST_EF(x) x
#define RSTALL STALLG (rfrozen[r], rexp = rexp | (1 << rtok[r]))
#endif

/* whom a reaper may reap: an owner whose lease expired; -DBROKEN_REAP_LIVE
 * reaps any owner (f_live_keeps_slot must fail) */
#ifdef BROKEN_REAP_LIVE
#define REAPABLE(t) ((t) != 0)
#else
#define REAPABLE(t) EXPIRED (t)
#endif

/* the steps of a let-go and a reap (their ownership check, the stall
 * after it, their compare-and-swap of state_gen); -DNO_FREE_STALL makes
 * each let-go and reap one step again, as before they were split (the
 * biggest configuration, reap-full-ring: `reap' checks the steps) */
#ifdef NO_FREE_STALL
#define FREE_STALL(fz) skip
#define FREE_RSTALL skip
#define FREE_STEPS_BEGIN atomic {
#define FREE_STEPS_END }
#else
#define FREE_STALL(fz) STALL (fz)
#define FREE_RSTALL RSTALL
#define FREE_STEPS_BEGIN
#define FREE_STEPS_END
#endif

#include "producer.pml"
#include "reader.pml"

/* (d) no reachable state has a reader asleep with data it could read
 * while the producer sleeps for space: neither would ever wake the other. */
#define R_STUCK(r) (rasleep[r] && rsess[r] == session && write_pos > need[r])
#define P_STUCK(i) (pasleep[i] && powner == (i))

active proctype monitor ()
{
end:
  atomic {
    (R_STUCK (0) || R_STUCK (1)) && (P_STUCK (1) || P_STUCK (2)) ->
    assert (d_no_lost_wakeup && !((R_STUCK (0) || R_STUCK (1)) &&
            (P_STUCK (1) || P_STUCK (2))))
  }
}

init
{
  atomic {
    run producer (1);
#ifndef ONE_PRODUCER
    run producer (2);
#endif
    run reader (0);
#ifndef ONE_READER
    run reader (1)
#endif
  }
}
