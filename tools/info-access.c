/* ivshmem-info: why a guest's BAR cannot be mapped
 * SPDX-License-Identifier: MIT
 */
#include "info-access.h"

#ifndef _WIN32
#include "ivshmem-region.h"

#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static bool
user_in_group (gid_t gid)
{
  gid_t groups[256];
  int n = getgroups (256, groups), i;

  if (getegid () == gid)
    return true;
  for (i = 0; i < n; i++)
    if (groups[i] == gid)
      return true;
  return false;
}

/* What the mode and group of one resource file say about access. */
static void
explain_file (FILE * out, const char *path)
{
  struct stat st;
  struct group *gr;
  char gname[64];

  if (stat (path, &st) != 0) {
    fprintf (out, "  %s: cannot stat it\n", path);
    return;
  }
  gr = getgrgid (st.st_gid);
  if (gr != NULL)
    snprintf (gname, sizeof gname, "%s", gr->gr_name);
  else
    snprintf (gname, sizeof gname, "%u", (unsigned) st.st_gid);
  fprintf (out, "  %s: mode %04o, group %s\n", path,
      (unsigned) (st.st_mode & 07777), gname);

  if (geteuid () == 0 || (st.st_mode & S_IROTH))
    fprintf (out, "    readable by this user: the kernel refused anyway "
        "(lockdown, or a security module such as SELinux or AppArmor)\n");
  else if (!(st.st_mode & S_IRGRP) || st.st_gid == 0)
    fprintf (out, "    the udev rule is missing: only root may read it; "
        "install the rule %s (group \"%s\"), then run: sudo udevadm "
        "control --reload && sudo udevadm trigger --subsystem-match=pci "
        "--attr-match=vendor=0x1af4\n", IVSHM_UDEV_RULE_FILE, IVSHM_UDEV_GROUP);
  else if (!user_in_group (st.st_gid))
    fprintf (out, "    this user is not in the group %s: sudo adduser %s "
        "%s, then log in again\n", gname,
        getenv ("USER") ? getenv ("USER") : "USER", gname);
  else
    fprintf (out, "    this user is in the group %s, which may read it: "
        "the kernel refused anyway (lockdown, or a security module)\n", gname);
}

/* After a PCI open failed with PERMISSION or LOCKDOWN: looks at the
 * files (mode, group, the user's groups) and the kernel's lockdown state,
 * and says which of them is the cause, as far as can be told. */
void
explain_pci_access (const char *device, IvshmBarMapping mapping)
{
  IvshmPciDevice *devs = NULL;
  const IvshmPciDevice *dev = NULL;
  IvshmPciAddr want;
  size_t n = 0, i;
  char mode[32], wc[520];

  fputs ("ivshmem-info: why:\n", stderr);
  if (ivshm_lockdown_active (ivshm_sysfs_root (), mode, sizeof mode))
    fprintf (stderr, "  the kernel is in lockdown mode \"%s\": it refuses "
        "to map PCI BARs from user space, even to root, whatever the file "
        "permissions\n", mode);
  if (ivshm_pci_list (NULL, &devs, &n, NULL) != IVSHM_OK)
    return;
  for (i = 0; i < n && dev == NULL; i++)
    if (device[0] == '\0' || (ivshm_pci_addr_parse (device, &want) == 0
            && want.domain == devs[i].addr.domain
            && want.bus == devs[i].addr.bus
            && want.device == devs[i].addr.device
            && want.function == devs[i].addr.function))
      dev = &devs[i];
  if (dev != NULL) {
    snprintf (wc, sizeof wc, "%s_wc", dev->resource_path);
    if (mapping != IVSHM_BAR_MAPPING_RESOURCE && access (wc, F_OK) == 0)
      explain_file (stderr, wc);
    if (mapping != IVSHM_BAR_MAPPING_RESOURCE_WC)
      explain_file (stderr, dev->resource_path);
  }
  free (devs);
}
#else
void
explain_pci_access (const char *device, IvshmBarMapping mapping)
{
  /* the driver's errors say it all on Windows */
  (void) device;
  (void) mapping;
}
#endif
