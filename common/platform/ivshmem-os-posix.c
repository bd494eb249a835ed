/* gst-ivshmem: what the core needs from a POSIX system
 * SPDX-License-Identifier: MIT
 */
#include "ivshmem-os.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/syscall.h>

#ifdef __linux__
#include <linux/futex.h>
#endif

uint64_t
ivshm_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

uint64_t
ivshm_random_u64 (void)
{
  uint64_t v = 0;
  if (getrandom (&v, sizeof v, GRND_NONBLOCK) != (ssize_t) sizeof v)
    v = ivshm_now_ns () ^ (ivshm_process_id () << 32);
  return v ? v : 1;
}

uint64_t
ivshm_process_id (void)
{
  return (uint64_t) getpid ();
}

void
ivshm_sleep_ns (uint64_t ns)
{
  struct timespec ts = { (time_t) (ns / 1000000000ull),
    (long) (ns % 1000000000ull)
  };
  while (nanosleep (&ts, &ts) != 0 && errno == EINTR);
}

/* ---- ticker ------------------------------------------------------------ */

struct IvshmTicker
{
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  uint64_t period_ns;
  void (*fn) (void *);
  void *data;
};

static void *
ticker_main (void *arg)
{
  IvshmTicker *t = arg;
  struct timespec deadline;

  clock_gettime (CLOCK_MONOTONIC, &deadline);
  pthread_mutex_lock (&t->lock);
  while (!t->stop) {
    pthread_mutex_unlock (&t->lock);
    t->fn (t->data);
    pthread_mutex_lock (&t->lock);
    deadline.tv_nsec += (long) (t->period_ns % 1000000000ull);
    deadline.tv_sec += (time_t) (t->period_ns / 1000000000ull);
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_nsec -= 1000000000L;
      deadline.tv_sec++;
    }
    while (!t->stop) {
      int r = pthread_cond_timedwait (&t->cond, &t->lock, &deadline);
      if (r == ETIMEDOUT)
        break;
    }
  }
  pthread_mutex_unlock (&t->lock);
  return NULL;
}

IvshmTicker *
ivshm_ticker_start (uint64_t period_ns, void (*fn) (void *), void *data)
{
  IvshmTicker *t = calloc (1, sizeof *t);
  pthread_condattr_t attr;

  if (!t)
    return NULL;
  t->period_ns = period_ns ? period_ns : IVSHM_DEFAULT_HEARTBEAT_NS;
  t->fn = fn;
  t->data = data;
  pthread_mutex_init (&t->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&t->cond, &attr);
  pthread_condattr_destroy (&attr);
  if (pthread_create (&t->thread, NULL, ticker_main, t) != 0) {
    pthread_cond_destroy (&t->cond);
    pthread_mutex_destroy (&t->lock);
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
  pthread_mutex_lock (&t->lock);
  t->stop = true;
  pthread_cond_signal (&t->cond);
  pthread_mutex_unlock (&t->lock);
  pthread_join (t->thread, NULL);
  pthread_cond_destroy (&t->cond);
  pthread_mutex_destroy (&t->lock);
  free (t);
}


/* ---- kernel identity -------------------------------------------------- */

uint64_t
ivshm_kernel_id (void)
{
  static _Atomic uint64_t cached;
  uint64_t id = atomic_load_explicit (&cached, memory_order_relaxed);
  char buf[64];
  size_t n, i;
  FILE *f;

  if (id)
    return id;
  f = fopen ("/proc/sys/kernel/random/boot_id", "re");
  if (!f)
    return 0;
  n = fread (buf, 1, sizeof buf, f);
  fclose (f);
  /* FNV-1a over the boot id text */
  id = UINT64_C (0xcbf29ce484222325);
  for (i = 0; i < n; i++) {
    id ^= (unsigned char) buf[i];
    id *= UINT64_C (0x100000001b3);
  }
  if (!id)
    id = 1;
  atomic_store_explicit (&cached, id, memory_order_relaxed);
  return id;
}

/* ---- waiting ------------------------------------------------------------ */

#ifdef __linux__
static long
futex (_Atomic uint32_t * word, int op, uint32_t val, uint64_t timeout_ns)
{
  struct timespec ts, *tsp = NULL;

  if (op == FUTEX_WAIT || op == FUTEX_WAIT_PRIVATE) {
    ts.tv_sec = (time_t) (timeout_ns / 1000000000ull);
    ts.tv_nsec = (long) (timeout_ns % 1000000000ull);
    tsp = &ts;
  }
  return syscall (SYS_futex, (uint32_t *) word, op, val, tsp, NULL, 0);
}
#endif

void
ivshm_waiter_init (IvshmWaiter * w)
{
  atomic_init (&w->flushing, 0);
  atomic_init (&w->kick, 0);
  atomic_init (&w->waiting_on, NULL);
  atomic_init (&w->shared_broken, 0);
}

bool
ivshm_waiter_is_flushing (IvshmWaiter * w)
{
  return atomic_load_explicit (&w->flushing, memory_order_seq_cst) != 0;
}

void
ivshm_waiter_set_flushing (IvshmWaiter * w, bool flushing)
{
  _Atomic uint32_t *word;

  atomic_store_explicit (&w->flushing, flushing, memory_order_seq_cst);
  if (!flushing)
    return;
  /* Whatever the thread sleeps on, make it wake: bump the word so that a
   * wait that has not started yet fails at once, then wake. The waiter
   * checks `flushing` after publishing `waiting_on` (a Dekker pair). */
  atomic_fetch_add_explicit (&w->kick, 1, memory_order_seq_cst);
#ifdef __linux__
  futex (&w->kick, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
#endif
  word = atomic_load_explicit (&w->waiting_on, memory_order_seq_cst);
  if (word)
    ivshm_wake (word);
}

bool
ivshm_waiter_can_be_woken (IvshmWaiter * w)
{
#ifdef __linux__
  return !atomic_load_explicit (&w->shared_broken, memory_order_relaxed);
#else
  (void) w;
  return false;
#endif
}

bool
ivshm_wait_on (IvshmWaiter * w, _Atomic uint32_t * word, uint32_t expected,
    uint64_t timeout_ns)
{
  uint32_t kick = atomic_load_explicit (&w->kick, memory_order_seq_cst);
  bool shared = word &&
      !atomic_load_explicit (&w->shared_broken, memory_order_relaxed);

  if (shared)
    atomic_store_explicit (&w->waiting_on, word, memory_order_seq_cst);
  if (ivshm_waiter_is_flushing (w)) {
    atomic_store_explicit (&w->waiting_on, NULL, memory_order_relaxed);
    return false;
  }
#ifdef __linux__
  if (shared) {
    long r = futex (word, FUTEX_WAIT, expected, timeout_ns);
    atomic_store_explicit (&w->waiting_on, NULL, memory_order_relaxed);
    if (r == 0 || errno == EAGAIN || errno == ETIMEDOUT || errno == EINTR)
      return !ivshm_waiter_is_flushing (w);
    /* EFAULT on a BAR mapping without struct pages, ENOSYS, ...: from now
     * on sleep on the private word. Return now: the caller planned this
     * wait for a peer that could wake us. */
    atomic_store_explicit (&w->shared_broken, 1, memory_order_relaxed);
    return !ivshm_waiter_is_flushing (w);
  }
  futex (&w->kick, FUTEX_WAIT_PRIVATE, kick, timeout_ns);
#else
  (void) kick;
  (void) expected;
  ivshm_sleep_ns (timeout_ns < 1000000 ? timeout_ns : 1000000);
#endif
  return !ivshm_waiter_is_flushing (w);
}

void
ivshm_wake (_Atomic uint32_t * word)
{
  atomic_fetch_add_explicit (word, 1, memory_order_seq_cst);
#ifdef __linux__
  /* Not FUTEX_WAKE_PRIVATE: the word is shared with other processes. */
  futex (word, FUTEX_WAKE, INT_MAX, 0);
#endif
}



void
ivshm_cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield");
#endif
}

/* ---- scheduling ---------------------------------------------------------- */

#ifdef __linux__
/* struct sched_attr of sched_setattr(2) and its constants (linux/sched.h
 * clashes with glibc's sched.h), which glibc does not declare: the first
 * 48 bytes, as the kernel accepts any size from 48 on */
#define IVSHM_SCHED_NORMAL 0
#define IVSHM_SCHED_BATCH 3
#define IVSHM_SCHED_FLAG_RESET_ON_FORK 0x01
struct ivshm_sched_attr
{
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;       /* SCHED_OTHER/BATCH: the slice (6.12+) */
  uint64_t sched_deadline;
  uint64_t sched_period;
};

static bool
sched_attr_get (int64_t tid, struct ivshm_sched_attr *a)
{
  memset (a, 0, sizeof *a);
  return syscall (SYS_sched_getattr, (pid_t) tid, a, (unsigned) sizeof *a,
      0) == 0;
}

/* A new slice for tid, all else as it is: policy, nice, reset-on-fork
 * (sched_setattr() sets the nice value too, so it must be read first). */
static bool
sched_slice_set (int64_t tid, uint64_t slice_ns, uint64_t * old)
{
  struct ivshm_sched_attr a;

  if (!sched_attr_get (tid, &a) ||
      (a.sched_policy != IVSHM_SCHED_NORMAL &&
          a.sched_policy != IVSHM_SCHED_BATCH))
    return false;
  if (old)
    *old = a.sched_runtime;
  a.size = sizeof a;
  a.sched_flags &= IVSHM_SCHED_FLAG_RESET_ON_FORK;
  a.sched_runtime = slice_ns;
  a.sched_deadline = a.sched_period = 0;
  return syscall (SYS_sched_setattr, (pid_t) tid, &a, 0) == 0;
}
#endif

bool
ivshm_thread_slice_set (IvshmThreadSlice * s, uint64_t slice_ns)
{
#ifdef __linux__
  int64_t tid = (int64_t) syscall (SYS_gettid);
  uint64_t old = 0;

  s->tid = 0;
  if (!sched_slice_set (tid, slice_ns, &old))
    return false;
  s->tid = tid;
  s->old_slice_ns = old;
  return true;
#else
  (void) slice_ns;
  s->tid = 0;
  return false;
#endif
}

void
ivshm_thread_slice_restore (IvshmThreadSlice * s)
{
#ifdef __linux__
  if (s->tid)
    sched_slice_set (s->tid, s->old_slice_ns, NULL);
#endif
  s->tid = 0;
}

bool
ivshm_thread_slice_get (int64_t tid, uint64_t * slice_ns)
{
#ifdef __linux__
  struct ivshm_sched_attr a;

  if (!sched_attr_get (tid, &a))
    return false;
  *slice_ns = a.sched_runtime;
  return true;
#else
  (void) tid;
  (void) slice_ns;
  return false;
#endif
}
