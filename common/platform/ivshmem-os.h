/* gst-ivshmem: what the core needs from the operating system
 * SPDX-License-Identifier: MIT
 *
 * One implementation per system: ivshmem-os-posix.c (Linux and other
 * POSIX systems) and ivshmem-os-win32.c (Windows guests).
 */
#ifndef IVSHMEM_OS_H
#define IVSHMEM_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IVSHM_DEFAULT_HEARTBEAT_NS (100ull * 1000 * 1000)

/* A monotonic clock in ns (CLOCK_MONOTONIC on POSIX). */
uint64_t ivshm_now_ns (void);
/* A random, non-zero 64-bit value (session ids, reader tokens). */
uint64_t ivshm_random_u64 (void);
/* This process's id, for information in the shared header. */
uint64_t ivshm_process_id (void);
void ivshm_sleep_ns (uint64_t ns);

/* An id of the running kernel (a hash of its boot id), 0 if unknown. Two
 * processes with the same id can wake each other with a futex; across a
 * VM boundary they can't, and must poll. */
uint64_t ivshm_kernel_id (void);

/* ---- waiting ----------------------------------------------------------
 *
 * A waiter is one thread's way to sleep on a word in shared memory until a
 * peer on the same kernel bumps it (ivshm_wake), a timeout passes, or
 * another thread of its own sets it flushing (GStreamer's unlock()). Where
 * the shared futex is not possible (a PCI BAR mapping, a system without
 * futexes) it sleeps on a private word instead, so the timeout and
 * flushing still work. */
typedef struct
{
  _Atomic uint32_t flushing;
  _Atomic uint32_t kick;                /* private futex word */
  _Atomic uint32_t *_Atomic waiting_on; /* the shared word slept on */
  _Atomic uint32_t shared_broken;       /* the shared futex failed once */
} IvshmWaiter;

void ivshm_waiter_init (IvshmWaiter * waiter);
/* Thread-safe. true: every wait returns false at once until cleared. */
void ivshm_waiter_set_flushing (IvshmWaiter * waiter, bool flushing);
bool ivshm_waiter_is_flushing (IvshmWaiter * waiter);
/* Can a peer on this kernel cut our waits short (ivshm_wake)? false where
 * the shared futex is not possible, or once it failed. A waiter that can be
 * woken sleeps in one long wait; one that cannot polls with growing sleeps
 * (IvshmBackoff). */
bool ivshm_waiter_can_be_woken (IvshmWaiter * waiter);
/* Sleeps while *word == expected, at most timeout_ns (word may be NULL: a
 * plain interruptible sleep). Returns false if the waiter is flushing. The
 * first time the shared futex fails it returns at once, so that the caller
 * sees ivshm_waiter_can_be_woken() turn false before a long sleep. */
bool ivshm_wait_on (IvshmWaiter * waiter, _Atomic uint32_t * word,
    uint32_t expected, uint64_t timeout_ns);
/* Bumps *word and wakes every thread of this kernel sleeping on it. */
void ivshm_wake (_Atomic uint32_t * word);

/* Spin a little, then sleep for growing times up to a bound: how a side
 * waits for a peer that may not be able to wake it. */
typedef struct
{
  unsigned spins;
  uint64_t cur_ns;
  uint64_t max_ns;
} IvshmBackoff;

#define IVSHM_BACKOFF_SPINS 64
#define IVSHM_BACKOFF_MIN_NS (20ull * 1000)

void ivshm_backoff_reset (IvshmBackoff * b, uint64_t max_ns);
/* The next wait's timeout; 0: spin once more (the caller re-checks after
 * ivshm_cpu_relax()). */
uint64_t ivshm_backoff_next (IvshmBackoff * b);
void ivshm_cpu_relax (void);

/* How soon a thread runs once a wake-up makes it runnable. Under Linux's
 * EEVDF scheduler (6.12 and later) a thread may ask for a shorter time
 * slice (sched_setattr()'s sched_runtime, for SCHED_OTHER and SCHED_BATCH):
 * when it wakes, it then preempts the task running on its CPU, often the
 * producer that just woke it, instead of waiting until that task blocks or
 * its slice ends. It gets no more CPU time than before, only shorter turns.
 * Older kernels ignore the request; real-time policies are left alone;
 * other systems do nothing. */
typedef struct
{
  int64_t tid;                  /* the thread changed, 0: none */
  uint64_t old_slice_ns;        /* its slice before (0: the default) */
} IvshmThreadSlice;

/* Asks for a slice of slice_ns (the kernel clamps it to 0.1 to 100 ms)
 * for the calling thread and remembers in *s what it had. true: set. */
bool ivshm_thread_slice_set (IvshmThreadSlice * s, uint64_t slice_ns);
/* Gives the thread of *s the slice it had, from any thread of this
 * process, and clears *s. Nothing if nothing was set. */
void ivshm_thread_slice_restore (IvshmThreadSlice * s);
/* The slice the kernel reports for a thread (tid 0: the calling one).
 * false: unknown (not Linux, or no such thread). */
bool ivshm_thread_slice_get (int64_t tid, uint64_t *slice_ns);

/* A thread that calls fn(data) every period_ns (0: the heartbeat period)
 * until stopped. NULL if the thread could not be started. */
typedef struct IvshmTicker IvshmTicker;
IvshmTicker *ivshm_ticker_start (uint64_t period_ns, void (*fn) (void *),
    void *data);
void ivshm_ticker_stop (IvshmTicker * ticker);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_OS_H */
