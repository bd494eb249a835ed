/* gst-ivshmem: set-ups that several check tests share (fixture.h)
 * SPDX-License-Identifier: MIT
 */
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- a fake sysfs tree ---------------------------------------------------- */

void
fixture_write_text (const gchar * dir, const gchar * name, const gchar * text)
{
  gchar *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;

  if (!g_file_set_contents (path, text, -1, &error))
    g_error ("%s: %s", path, error ? error->message : "?");
  g_free (path);
}

void
fixture_make_sized_file (const gchar * path, guint64 size)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  if (fd < 0)
    g_error ("open %s: %s", path, g_strerror (errno));
  if (ftruncate (fd, (off_t) size) != 0)
    g_error ("ftruncate %s: %s", path, g_strerror (errno));
  close (fd);
}

gchar *
fixture_fake_device (const gchar * root, const gchar * name, guint vendor,
    guint device, guint class_code, guint64 bar2_size, gboolean with_resource2)
{
  gchar *dir = g_build_filename (root, "bus", "pci", "devices", name, NULL);
  GString *res = g_string_new (NULL);
  gchar text[64];
  guint8 config[64] = { 0 };
  gchar *config_path;
  GError *error = NULL;
  int i;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    g_error ("mkdir %s: %s", dir, g_strerror (errno));
  g_snprintf (text, sizeof text, "0x%04x\n", vendor);
  fixture_write_text (dir, "vendor", text);
  g_snprintf (text, sizeof text, "0x%04x\n", device);
  fixture_write_text (dir, "device", text);
  g_snprintf (text, sizeof text, "0x%06x\n", class_code);
  fixture_write_text (dir, "class", text);
  fixture_write_text (dir, "irq", "11\n");
  fixture_write_text (dir, "subsystem_vendor", "0x1af4\n");
  fixture_write_text (dir, "subsystem_device", "0x1100\n");

  for (i = 0; i < 13; i++) {
    guint64 start = 0, end = 0, flags = 0;

    if (i == 0) {
      start = 0xfea00000;
      end = start + 0xff;
      flags = 0x40200;
    } else if (i == 2 && bar2_size > 0) {
      start = G_GUINT64_CONSTANT (0x800000000);
      end = start + bar2_size - 1;
      flags = 0x14220c;
    }
    g_string_append_printf (res, "0x%016" G_GINT64_MODIFIER "x 0x%016"
        G_GINT64_MODIFIER "x 0x%016" G_GINT64_MODIFIER "x\n", start, end,
        flags);
  }
  fixture_write_text (dir, "resource", res->str);
  g_string_free (res, TRUE);

  config[0] = vendor & 0xff;
  config[1] = (vendor >> 8) & 0xff;
  config[2] = device & 0xff;
  config[3] = (device >> 8) & 0xff;
  config[9] = class_code & 0xff;
  config[10] = (class_code >> 8) & 0xff;
  config[11] = (class_code >> 16) & 0xff;
  config_path = g_build_filename (dir, "config", NULL);
  if (!g_file_set_contents (config_path, (const gchar *) config,
          sizeof config, &error))
    g_error ("%s: %s", config_path, error ? error->message : "?");
  g_free (config_path);

  if (with_resource2) {
    gchar *r2 = g_build_filename (dir, "resource2", NULL);

    fixture_make_sized_file (r2, bar2_size);
    g_free (r2);
  }
  return dir;
}

static int
rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove (path);
}

void
fixture_rm_tree (gchar * dir)
{
  nftw (dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  g_free (dir);
}
