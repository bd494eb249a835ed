/* gst-ivshmem: what the core needs from Windows (guest side)
 * SPDX-License-Identifier: MIT
 *
 * The Windows counterpart of ivshmem-os-posix.c, on plain Win32 calls so
 * that a build needs no threading library (no winpthreads DLL):
 *  - clock: QueryPerformanceCounter, monotonic since Windows XP;
 *  - random: BCryptGenRandom with the system-preferred RNG (Vista+);
 *  - sleep: a high-resolution waitable timer where Windows 10 1803+ has
 *    one, Sleep() in whole milliseconds otherwise;
 *  - ticker: a native thread waiting on an event with a timeout;
 *  - waiting: no futex that works across processes exists, so the kernel
 *    id is 0 ("unknown": peers poll, as they do across a VM boundary) and
 *    a waiter sleeps on its private word with WaitOnAddress (Windows 8+),
 *    which ivshm_waiter_set_flushing() wakes.
 */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0602     /* Windows 8: WaitOnAddress */
#endif
#include "ivshmem-os.h"

#include <windows.h>
#include <bcrypt.h>
#include <stdbool.h>
#include <stdlib.h>

#ifndef BCRYPT_USE_SYSTEM_PREFERRED_RNG
#define BCRYPT_USE_SYSTEM_PREFERRED_RNG 0x00000002
#endif
#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

static uint64_t
qpc_frequency (void)
{
  /* Fixed at boot; reading it each time is cheap and avoids a race on a
   * cached value. It never fails on XP and later. */
  LARGE_INTEGER f;

  QueryPerformanceFrequency (&f);
  return f.QuadPart > 0 ? (uint64_t) f.QuadPart : 1;
}

uint64_t
ivshm_now_ns (void)
{
  LARGE_INTEGER c;
  uint64_t freq = qpc_frequency (), ticks;

  QueryPerformanceCounter (&c);
  ticks = (uint64_t) c.QuadPart;
  /* whole seconds and the rest apart, so ticks * 1e9 cannot overflow */
  return (ticks / freq) * 1000000000ull + (ticks % freq) * 1000000000ull / freq;
}

uint64_t
ivshm_random_u64 (void)
{
  uint64_t v = 0;

  if (!BCRYPT_SUCCESS (BCryptGenRandom (NULL, (PUCHAR) & v, sizeof v,
              BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
    v = ivshm_now_ns () ^ (ivshm_process_id () << 32);
  return v ? v : 1;
}

uint64_t
ivshm_process_id (void)
{
  return (uint64_t) GetCurrentProcessId ();
}

void
ivshm_sleep_ns (uint64_t ns)
{
  HANDLE timer;
  LARGE_INTEGER due;

  if (ns == 0)
    return;
  timer = CreateWaitableTimerExW (NULL, NULL,
      CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
  if (timer != NULL) {
    /* negative: relative, in 100 ns units */
    uint64_t units = (ns + 99) / 100;
    due.QuadPart = -(LONGLONG) (units > (uint64_t) INT64_MAX ? INT64_MAX :
        units);
    if (SetWaitableTimer (timer, &due, 0, NULL, NULL, FALSE)) {
      WaitForSingleObject (timer, INFINITE);
      CloseHandle (timer);
      return;
    }
    CloseHandle (timer);
  }
  /* Before Windows 10 1803: Sleep() rounds to the scheduler tick. */
  {
    uint64_t ms = (ns + 999999) / 1000000;
    Sleep (ms >= INFINITE ? INFINITE - 1 : (DWORD) ms);
  }
}

/* ---- ticker ------------------------------------------------------------ */

struct IvshmTicker
{
  HANDLE thread;
  HANDLE stop_event;            /* manual-reset, set by ivshm_ticker_stop() */
  uint64_t period_ns;
  void (*fn) (void *);
  void *data;
};

static DWORD WINAPI
ticker_main (LPVOID arg)
{
  IvshmTicker *t = arg;
  uint64_t next = ivshm_now_ns ();

  for (;;) {
    uint64_t now, wait_ms;

    t->fn (t->data);
    next += t->period_ns;
    now = ivshm_now_ns ();
    /* fixed rate like the POSIX ticker; after a long stall, start over */
    if (next <= now)
      next = now;
    wait_ms = (next - now + 999999) / 1000000;
    if (wait_ms >= INFINITE)
      wait_ms = INFINITE - 1;
    if (WaitForSingleObject (t->stop_event, (DWORD) wait_ms) != WAIT_TIMEOUT)
      break;
  }
  return 0;
}

IvshmTicker *
ivshm_ticker_start (uint64_t period_ns, void (*fn) (void *), void *data)
{
  IvshmTicker *t = calloc (1, sizeof *t);

  if (!t)
    return NULL;
  t->period_ns = period_ns ? period_ns : IVSHM_DEFAULT_HEARTBEAT_NS;
  t->fn = fn;
  t->data = data;
  t->stop_event = CreateEventW (NULL, TRUE, FALSE, NULL);
  if (t->stop_event == NULL) {
    free (t);
    return NULL;
  }
  t->thread = CreateThread (NULL, 0, ticker_main, t, 0, NULL);
  if (t->thread == NULL) {
    CloseHandle (t->stop_event);
    free (t);
    return NULL;
  }
  return t;
}

void
ivshm_ticker_stop (IvshmTicker * t)
{
  if (!t)
    return;
  SetEvent (t->stop_event);
  WaitForSingleObject (t->thread, INFINITE);
  CloseHandle (t->thread);
  CloseHandle (t->stop_event);
  free (t);
}

/* ---- kernel identity ---------------------------------------------------- */

/* 0: unknown. WaitOnAddress wakes threads of one process only, so no peer
 * can wake this one through the region: every side polls, with the back-off
 * the ring uses across VMs. */
uint64_t
ivshm_kernel_id (void)
{
  return 0;
}

/* ---- waiting ------------------------------------------------------------ */

void
ivshm_waiter_init (IvshmWaiter * w)
{
  atomic_init (&w->flushing, 0);
  atomic_init (&w->kick, 0);
  atomic_init (&w->waiting_on, NULL);
  atomic_init (&w->shared_broken, 1);   /* never a shared wait here */
}

bool
ivshm_waiter_is_flushing (IvshmWaiter * w)
{
  return atomic_load_explicit (&w->flushing, memory_order_seq_cst) != 0;
}

void
ivshm_waiter_set_flushing (IvshmWaiter * w, bool flushing)
{
  atomic_store_explicit (&w->flushing, flushing, memory_order_seq_cst);
  if (!flushing)
    return;
  /* a wait that has not started yet sees the new value and returns */
  atomic_fetch_add_explicit (&w->kick, 1, memory_order_seq_cst);
  WakeByAddressAll ((PVOID) & w->kick);
}

bool
ivshm_waiter_can_be_woken (IvshmWaiter * w)
{
  (void) w;
  return false;                 /* peers poll (ivshm_wake) */
}

bool
ivshm_wait_on (IvshmWaiter * w, _Atomic uint32_t * word, uint32_t expected,
    uint64_t timeout_ns)
{
  uint32_t kick = atomic_load_explicit (&w->kick, memory_order_seq_cst);

  if (ivshm_waiter_is_flushing (w))
    return false;
  if (word != NULL
      && atomic_load_explicit (word, memory_order_acquire) != expected)
    return true;
  if (timeout_ns < 1000000) {
    /* below WaitOnAddress's millisecond: a short timer sleep, checked for
     * flushing after */
    ivshm_sleep_ns (timeout_ns);
  } else {
    uint64_t ms = timeout_ns / 1000000;
    WaitOnAddress ((volatile VOID *) &w->kick, &kick, sizeof kick,
        ms >= INFINITE ? INFINITE - 1 : (DWORD) ms);
  }
  return !ivshm_waiter_is_flushing (w);
}

void
ivshm_wake (_Atomic uint32_t * word)
{
  /* Bumping the word is the whole protocol: peers poll it. */
  atomic_fetch_add_explicit (word, 1, memory_order_seq_cst);
}



void
ivshm_cpu_relax (void)
{
  YieldProcessor ();
}

/* ---- scheduling: Windows has no per-thread slice to ask for ------------ */

bool
ivshm_thread_slice_set (IvshmThreadSlice * s, uint64_t slice_ns)
{
  (void) slice_ns;
  s->tid = 0;
  return false;
}

void
ivshm_thread_slice_restore (IvshmThreadSlice * s)
{
  s->tid = 0;
}

bool
ivshm_thread_slice_get (int64_t tid, uint64_t * slice_ns)
{
  (void) tid;
  (void) slice_ns;
  return false;
}
