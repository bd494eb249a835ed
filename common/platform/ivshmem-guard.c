/* gst-ivshmem: surviving a host file that shrinks under its mapping
 * SPDX-License-Identifier: MIT
 *
 * A host region is a file (usually in /dev/shm) that any process with write
 * access can truncate at any time, and whose pages a full tmpfs may be
 * unable to provide. Touching a MAP_SHARED mapping past the end of its file,
 * or a page the file system cannot allocate, raises SIGBUS, whose default
 * action kills the process: the producer, every reader, and the application
 * around them.
 *
 * The pattern is libwayland-server's for client shm pools: a SIGBUS handler
 * that, for a fault inside a registered ("guarded") mapping, maps anonymous
 * zero pages over the whole mapping (mmap MAP_FIXED, one of the few calls
 * that change memory a signal handler may make) and returns, so the faulting
 * instruction runs again on the zero pages; it sets the mapping's `faulted`
 * flag, which the code that owns the mapping checks afterwards
 * (ivshm_region_lost()) and turns into an error. A zero page is harmless to
 * every reader of the ring: the magic and session no longer match, and the
 * code stops at its next look at the flag.
 *
 * A fault outside every guarded mapping is not ours: it goes to the handler
 * that was installed before ours (with SA_SIGINFO or without), or, if there
 * was none, to the default action, which ends the process as it would have
 * without us. A SIGBUS sent with kill() (si_code <= 0) is never taken for a
 * fault of ours.
 *
 * The handler is installed once per process (the first guarded mapping),
 * and stays. The table of guarded mappings is a fixed array of slots with
 * atomic fields, so the handler looks them up without locks or memory
 * allocation (async-signal-safe). A slot's state goes FREE -> BUSY (being
 * filled or emptied) -> ACTIVE; the handler only trusts ACTIVE slots.
 *
 * Not on Windows: a view of a section that shrinks does not exist there
 * (ivshmem-region-win32.c maps only the driver's memory).
 */
#include "ivshmem-private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* As many mappings as a process guards at once: each element holds one or
 * two (a source keeps the old one while downstream holds its buffers). */
#define GUARD_SLOTS 256

enum
{
  GUARD_FREE = 0,
  GUARD_BUSY,
  GUARD_ACTIVE,
};

typedef struct
{
  atomic_int state;
  atomic_uintptr_t start;
  atomic_size_t len;
  atomic_int faulted;
} GuardSlot;

static GuardSlot guard_slots[GUARD_SLOTS];
static struct sigaction guard_previous;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static int guard_installed;

/* The fault is not ours: what would have happened without us. */
static void
guard_chain (int sig, siginfo_t * info, void *context)
{
  struct sigaction dfl;

  if (guard_previous.sa_flags & SA_SIGINFO) {
    if (guard_previous.sa_sigaction != NULL) {
      guard_previous.sa_sigaction (sig, info, context);
      return;
    }
  } else if (guard_previous.sa_handler == SIG_IGN) {
    /* ignored for a SIGBUS sent by kill(); for a real fault the kernel
     * ignores SIG_IGN too and kills: do what it would do */
    if (info == NULL || info->si_code <= 0)
      return;
  } else if (guard_previous.sa_handler != SIG_DFL) {
    guard_previous.sa_handler (sig);
    return;
  }
  /* the default action: end the process (with a core dump) */
  memset (&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset (&dfl.sa_mask);
  sigaction (sig, &dfl, NULL);
  raise (sig);
}

static void
guard_handler (int sig, siginfo_t * info, void *context)
{
  int saved_errno = errno;
  uintptr_t addr;
  int i;

  if (info == NULL || info->si_code <= 0)
    goto not_ours;
  addr = (uintptr_t) info->si_addr;
  for (i = 0; i < GUARD_SLOTS; i++) {
    GuardSlot *s = &guard_slots[i];
    uintptr_t start;
    size_t len;
    void *p;

    if (atomic_load_explicit (&s->state, memory_order_acquire) != GUARD_ACTIVE)
      continue;
    start = atomic_load_explicit (&s->start, memory_order_relaxed);
    len = atomic_load_explicit (&s->len, memory_order_relaxed);
    if (addr < start || addr - start >= len)
      continue;
    p = mmap ((void *) start, len, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
      break;                    /* cannot make it safe: not survivable */
    atomic_store_explicit (&s->faulted, 1, memory_order_release);
    errno = saved_errno;
    return;
  }
not_ours:
  errno = saved_errno;
  guard_chain (sig, info, context);
}

static void
guard_install (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_sigaction = guard_handler;
  /* NODEFER: a SIGBUS raised again by the chained handler or the default
   * action is delivered at once */
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset (&sa.sa_mask);
  guard_installed = sigaction (SIGBUS, &sa, &guard_previous) == 0;
}

int
ivshm_guard_add (void *addr, size_t len)
{
  int i;

  pthread_once (&guard_once, guard_install);
  if (!guard_installed || addr == NULL || len == 0)
    return -1;
  for (i = 0; i < GUARD_SLOTS; i++) {
    GuardSlot *s = &guard_slots[i];
    int expected = GUARD_FREE;

    if (!atomic_compare_exchange_strong (&s->state, &expected, GUARD_BUSY))
      continue;
    atomic_store_explicit (&s->start, (uintptr_t) addr, memory_order_relaxed);
    atomic_store_explicit (&s->len, len, memory_order_relaxed);
    atomic_store_explicit (&s->faulted, 0, memory_order_relaxed);
    atomic_store_explicit (&s->state, GUARD_ACTIVE, memory_order_release);
    return i;
  }
  return -1;                    /* full: the mapping goes unguarded */
}

void
ivshm_guard_remove (int slot)
{
  if (slot < 0 || slot >= GUARD_SLOTS)
    return;
  atomic_store_explicit (&guard_slots[slot].state, GUARD_BUSY,
      memory_order_release);
  atomic_store_explicit (&guard_slots[slot].len, 0, memory_order_relaxed);
  atomic_store_explicit (&guard_slots[slot].state, GUARD_FREE,
      memory_order_release);
}

void
ivshm_guard_mark (int slot)
{
  if (slot >= 0 && slot < GUARD_SLOTS)
    atomic_store_explicit (&guard_slots[slot].faulted, 1, memory_order_release);
}

bool
ivshm_guard_faulted (int slot)
{
  if (slot < 0 || slot >= GUARD_SLOTS)
    return false;
  return atomic_load_explicit (&guard_slots[slot].faulted,
      memory_order_acquire) != 0;
}
