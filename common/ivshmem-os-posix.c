/* gst-ivshmem: what the core needs from a POSIX system
 * SPDX-License-Identifier: MIT
 */
#include "ivshmem-os.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

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

