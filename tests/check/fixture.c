/* gst-ivshmem: set-ups that several check tests share (fixture.h)
 * SPDX-License-Identifier: MIT
 */
#include "fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

gchar *
fixture_shm_path (const gchar * tag, const gchar * name)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-%s-%d-%s", tag,
      (int) getpid (), name);

  unlink (path);
  return path;
}

void
fixture_remove_stale_regions (const gchar * tag)
{
  GDir *dir = g_dir_open ("/dev/shm", 0, NULL);
  gchar *prefix = g_strdup_printf ("gst-ivshmem-%s-", tag);
  gsize len = strlen (prefix);
  const gchar *name;

  if (!dir) {
    g_free (prefix);
    return;
  }
  while ((name = g_dir_read_name (dir))) {
    gint pid;

    if (strncmp (name, prefix, len) == 0 &&
        sscanf (name + len, "%d-", &pid) == 1 && pid > 0 &&
        kill (pid, 0) != 0 && errno == ESRCH) {
      gchar *path = g_build_filename ("/dev/shm", name, NULL);

      unlink (path);
      g_free (path);
    }
  }
  g_dir_close (dir);
  g_free (prefix);
}
