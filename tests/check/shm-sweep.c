/* gst-ivshmem: the check tests leave nothing in /dev/shm, also when a test
 * fails before its own clean-up.
 * SPDX-License-Identifier: MIT
 *
 * Linked into every check test (and the stress tests). The regions of the
 * tests are /dev/shm/gst-ivshmem-TAG-PID[-NAME], PID being the process that
 * made them. When a process of a test binary exits (a forked test case
 * that failed, or the runner after its cases), this removes every such
 * file whose PID is its own or no longer runs. A live process's regions are
 * never touched, so tests of other binaries that run at the same time keep
 * theirs. (A forked helper that ends with _exit() runs no destructor.)
 * Checked by mutation: a decoder case made to fail right after it made its
 * region left 16 and 8 MiB files in /dev/shm without this, none with it.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define SHM_DIR "/dev/shm"
#define PREFIX "gst-ivshmem-"

/* The first all-digit field of NAME after the prefix, or 0. */
static long
region_pid (const char *name)
{
  const char *p = name + strlen (PREFIX);

  while (*p) {
    const char *end = strchr (p, '-');
    size_t len = end ? (size_t) (end - p) : strlen (p);
    size_t i;

    for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++);
    if (len > 0 && i == len && len < 10)
      return strtol (p, NULL, 10);
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

static void sweep_shm (void) __attribute__((destructor));

static void
sweep_shm (void)
{
  DIR *dir = opendir (SHM_DIR);
  struct dirent *e;
  char path[512];
  long me = (long) getpid ();

  if (dir == NULL)
    return;
  while ((e = readdir (dir)) != NULL) {
    long pid;

    if (strncmp (e->d_name, PREFIX, strlen (PREFIX)) != 0)
      continue;
    pid = region_pid (e->d_name);
    if (pid <= 0)
      continue;
    if (pid != me && !(kill ((pid_t) pid, 0) != 0 && errno == ESRCH))
      continue;
    if (snprintf (path, sizeof path, SHM_DIR "/%s", e->d_name) <
        (int) sizeof path)
      unlink (path);
  }
  closedir (dir);
}
