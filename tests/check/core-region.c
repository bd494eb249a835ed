/* gst-ivshmem: tests of region mapping and PCI discovery (the core only)
 * SPDX-License-Identifier: MIT
 *
 * Host files live in a mkdtemp() directory. PCI discovery runs against a
 * fake sysfs tree built here with the files pciutils 3.9's linux-sysfs
 * back-end reads (vendor, device, class, irq, resource, config) plus a
 * resource2 that is a regular file of the BAR's size.
 *
 * The tests run as root in CI, where file modes do not deny anything. A real
 * EPERM comes from a memfd sealed against writes (F_SEAL_WRITE): mmap()ing
 * it PROT_WRITE|MAP_SHARED fails with EPERM for root too. A path or a
 * resource2 symlink to /proc/PID/fd/N reaches that memfd.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-config.h"
#include "ivshmem-private.h"
#include "ivshmem-region.h"
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB (UINT64_C (1024))
#define MiB (UINT64_C (1024) * 1024)

/* ---- helpers ---- */

static char *
make_tmpdir (void)
{
  char *dir = g_build_filename (g_get_tmp_dir (), "ivshm-region-XXXXXX",
      NULL);

  fail_unless (mkdtemp (dir) != NULL, "mkdtemp: %s", g_strerror (errno));
  return dir;
}

/* A memfd of `size` bytes sealed against writes; *path gets a /proc path
 * that reaches it. Returns the fd (keep it open) or -1 if memfds or seals
 * are not available. */
static int
make_sealed_memfd (uint64_t size, char **path)
{
  int fd = memfd_create ("ivshm-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  if (fd < 0)
    return -1;
  if (ftruncate (fd, (off_t) size) != 0
      || fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
      != 0) {
    close (fd);
    return -1;
  }
  *path = g_strdup_printf ("/proc/%d/fd/%d", (int) getpid (), fd);
  return fd;
}

/* A device of the fake sysfs tree (fixture_fake_device()); here a device
 * has resource2 whenever it has a BAR2. */
static char *
fake_device (const char *root, const char *name, unsigned vendor,
    unsigned device, unsigned class_code, uint64_t bar2_size)
{
  return fixture_fake_device (root, name, vendor, device, class_code,
      bar2_size, bar2_size > 0);
}

/* The tree the PCI tests share: two IVSHMEM devices and a host bridge,
 * created out of address order. */
static char *
fake_sysfs (void)
{
  char *root = make_tmpdir ();

  g_free (fake_device (root, "0000:00:07.0", 0x1af4, 0x1110, 0x050000,
          1 * MiB));
  g_free (fake_device (root, "0000:00:00.0", 0x8086, 0x1237, 0x060000, 0));
  g_free (fake_device (root, "0000:00:05.0", 0x1af4, 0x1110, 0x050000,
          256 * KiB));
  return root;
}

static IvshmStatus
open_host (const char *path, uint64_t create_size, IvshmRegion ** region,
    IvshmError * err)
{
  IvshmRegionOptions opts = { create_size, NULL };

  return ivshm_region_open (path, &opts, region, err);
}

static IvshmStatus
open_pci (const char *device, const char *root, IvshmRegion ** region,
    IvshmError * err)
{
  IvshmRegionOptions opts = { 0, root };

  return ivshm_region_open (device, &opts, region, err);
}

/* Runs fn in a child process and returns what it returned. The answer
 * travels through a pipe, not the exit status: under valgrind the child's
 * exit status is valgrind's (its leak check of a child that _exit()s
 * without freeing the parent's allocations). */
static int
run_in_child (int (*fn) (const char *), const char *arg)
{
  int fds[2], wstatus;
  unsigned char answer = 255;
  pid_t pid;

  fail_unless (pipe (fds) == 0);
  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0) {
    answer = (unsigned char) fn (arg);
    if (write (fds[1], &answer, 1) != 1)
      _exit (1);
    _exit (0);
  }
  close (fds[1]);
  if (read (fds[0], &answer, 1) != 1)
    answer = 254;
  close (fds[0]);
  fail_unless (waitpid (pid, &wstatus, 0) == pid);
  fail_unless (WIFEXITED (wstatus), "child died");
  return answer;
}

/* The set-up every test shares (a checked fixture, so it runs in the
 * test's own process, forked or not): an empty directory, tmp_dir; the
 * path of a host file in it that does not exist yet, shm_file; and the
 * fake sysfs tree of fake_sysfs(), sysfs_root. Each test used to make
 * the ones it needs itself (22 copies of the same lines). */
static char *tmp_dir, *shm_file, *sysfs_root;

static void
fixture_setup (void)
{
  tmp_dir = make_tmpdir ();
  shm_file = g_build_filename (tmp_dir, "shm", NULL);
  sysfs_root = fake_sysfs ();
}

static void
fixture_teardown (void)
{
  g_clear_pointer (&shm_file, g_free);
  fixture_rm_tree (tmp_dir);
  fixture_rm_tree (sysfs_root);
  tmp_dir = sysfs_root = NULL;
}

#define assert_status(got, want, err) \
  fail_unless ((got) == (want), "status %s (%s), expected %s", \
      ivshm_status_name (got), (err)->detail, ivshm_status_name (want))

/* ---- IVSHMEM_SYSFS_ROOT ---- */

static int
child_env_sysfs_root (const char *root)
{
  IvshmPciDevice *devs = NULL;
  size_t n = 0;
  IvshmRegion *region = NULL;
  int code = 0;

  setenv (IVSHM_SYSFS_ROOT_ENV, root, 1);
  if (strcmp (ivshm_sysfs_root (), root) != 0)
    return 10;
  /* Read once: a later change is not seen. */
  setenv (IVSHM_SYSFS_ROOT_ENV, "/nonexistent", 1);
  if (strcmp (ivshm_sysfs_root (), root) != 0)
    return 11;
  if (ivshm_pci_list (NULL, &devs, &n, NULL) != IVSHM_OK || n != 2)
    code = 12;
  free (devs);
  if (code == 0 && (ivshm_region_open ("", NULL, &region, NULL) != IVSHM_OK
          || strcmp (ivshm_region_location (region), "0000:00:05.0") != 0))
    code = 13;
  ivshm_region_close (region);
  return code;
}

/* ivshm_sysfs_root() reads the variable once per process, so these run in
 * children of a process that has not read it: they come first in the
 * suite, and no test before them opens a PCI region without a root. */
GST_START_TEST (test_env_sysfs_root)
{
  fail_unless_equals_int (run_in_child (child_env_sysfs_root, sysfs_root), 0);
}

GST_END_TEST;

static int
child_env_sysfs_root_empty (const char *unused)
{
  setenv (IVSHM_SYSFS_ROOT_ENV, "", 1);
  return strcmp (ivshm_sysfs_root (), "/sys") == 0 ? 0 : 1;
}

GST_START_TEST (test_env_sysfs_root_unset)
{
  fail_unless (run_in_child (child_env_sysfs_root_empty, NULL) == 0,
      "an empty IVSHMEM_SYSFS_ROOT must mean /sys");
}

GST_END_TEST;

/* ---- host files ---- */

GST_START_TEST (test_host_create_pow2)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  struct stat st;

  assert_status (open_host (shm_file, 1 * MiB, &region, &err), IVSHM_OK, &err);
  fail_unless (region != NULL);
  fail_unless_equals_uint64 (ivshm_region_size (region), 1 * MiB);
  fail_unless (ivshm_region_created (region));
  fail_unless_equals_int (ivshm_region_kind (region), IVSHM_REGION_HOST_FILE);
  fail_unless_equals_string (ivshm_region_path (region), shm_file);
  fail_unless_equals_string (ivshm_region_location (region), "");
  fail_unless (ivshm_region_data (region) != NULL);
  ((volatile char *) ivshm_region_data (region))[1 * MiB - 1] = 1;
  ivshm_region_close (region);

  fail_unless (stat (shm_file, &st) == 0);
  fail_unless_equals_int (st.st_mode & 0777, 0660);
  fail_unless_equals_uint64 ((uint64_t) st.st_size, 1 * MiB);

  /* Opening again with a size finds it: not created this time. */
  assert_status (open_host (shm_file, 1 * MiB, &region, &err), IVSHM_OK, &err);
  fail_unless (!ivshm_region_created (region));
  ivshm_region_close (region);
}

GST_END_TEST;

GST_START_TEST (test_host_create_not_pow2)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  assert_status (open_host (shm_file, 3 * MiB, &region, &err),
      IVSHM_ERR_NOT_POW2, &err);
  fail_unless (region == NULL);
  fail_unless_equals_int (err.status, IVSHM_ERR_NOT_POW2);
  fail_unless (strstr (err.detail, "power of two") != NULL, "%s", err.detail);
  fail_unless (strstr (err.detail, "4194304") != NULL, "%s", err.detail);
  fail_unless (access (shm_file, F_OK) != 0, "nothing may be created");
}

GST_END_TEST;

GST_START_TEST (test_host_missing)
{
  char *nodir = g_build_filename (tmp_dir, "no", "shm", NULL);
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  assert_status (open_host (shm_file, 0, &region, &err), IVSHM_ERR_NOT_FOUND,
      &err);
  fail_unless (region == NULL);
  fail_unless_equals_int (err.sys_errno, ENOENT);
  fail_unless (strstr (err.detail, shm_file) != NULL, "%s", err.detail);
  fail_unless (strstr (err.detail, "memory-backend-file") != NULL, "%s",
      err.detail);
  fail_unless (strstr (err.detail, "size=") != NULL, "%s", err.detail);

  /* A directory that does not exist cannot be created into. */
  assert_status (open_host (nodir, 1 * MiB, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);

  /* NULL options: a host file must exist. */
  assert_status (ivshm_region_open (shm_file, NULL, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);

  g_free (nodir);
}

GST_END_TEST;

GST_START_TEST (test_host_too_small)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  fixture_make_sized_file (shm_file, 0);
  assert_status (open_host (shm_file, 0, &region, &err), IVSHM_ERR_TOO_SMALL,
      &err);
  fail_unless (strstr (err.detail, "empty") != NULL, "%s", err.detail);

  fixture_make_sized_file (shm_file, 64 * KiB);
  assert_status (open_host (shm_file, 0, &region, &err), IVSHM_ERR_TOO_SMALL,
      &err);
  fail_unless (region == NULL);
  fail_unless (strstr (err.detail, "64 KiB") != NULL, "%s", err.detail);

  /* Asking to create one that small: refused before creating. */
  unlink (shm_file);
  assert_status (open_host (shm_file, 64 * KiB, &region, &err),
      IVSHM_ERR_TOO_SMALL, &err);
  fail_unless (access (shm_file, F_OK) != 0);

  /* The minimum itself is fine. */
  assert_status (open_host (shm_file, IVSHM_REGION_MIN_SIZE, &region, &err),
      IVSHM_OK, &err);
  ivshm_region_close (region);
}

GST_END_TEST;

GST_START_TEST (test_host_existing_shared)
{
  IvshmRegion *a = NULL, *b = NULL;
  IvshmError err = { 0 };
  static const char msg[] = "Hello world!";
  char buf[sizeof msg];
  int fd;

  fixture_make_sized_file (shm_file, 512 * KiB);

  /* Bigger than asked for: the existing size wins. */
  assert_status (open_host (shm_file, 128 * KiB, &a, &err), IVSHM_OK, &err);
  fail_unless_equals_uint64 (ivshm_region_size (a), 512 * KiB);
  fail_unless (!ivshm_region_created (a));
  assert_status (open_host (shm_file, 0, &b, &err), IVSHM_OK, &err);
  fail_unless (ivshm_region_data (a) != ivshm_region_data (b));

  memcpy ((char *) ivshm_region_data (a) + 4096, msg, sizeof msg);
  fail_unless (memcmp ((char *) ivshm_region_data (b) + 4096, msg,
          sizeof msg) == 0,
      "a write through one mapping must show in the other");

  /* And in the file, as QEMU would see it. */
  fd = open (shm_file, O_RDONLY | O_CLOEXEC);
  fail_unless (fd >= 0);
  fail_unless_equals_int ((int) pread (fd, buf, sizeof buf, 4096),
      (int) sizeof buf);
  fail_unless_equals_string (buf, msg);
  close (fd);

  ivshm_region_close (a);
  ivshm_region_close (b);
  ivshm_region_close (NULL);
}

GST_END_TEST;

GST_START_TEST (test_host_existing_not_pow2)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  /* QEMU is the one to refuse such a file; mapping it is fine. */
  fixture_make_sized_file (shm_file, 192 * KiB);
  assert_status (open_host (shm_file, 0, &region, &err), IVSHM_OK, &err);
  fail_unless_equals_uint64 (ivshm_region_size (region), 192 * KiB);
  ivshm_region_close (region);
}

GST_END_TEST;

GST_START_TEST (test_host_not_regular)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  assert_status (open_host (tmp_dir, 0, &region, &err), IVSHM_ERR_INVALID_ARG,
      &err);
  assert_status (open_host ("/dev/null", 0, &region, &err),
      IVSHM_ERR_INVALID_ARG, &err);
  fail_unless (region == NULL);
}

GST_END_TEST;

GST_START_TEST (test_host_permission)
{
  char *sealed = NULL;
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  int memfd;

  /* A file mode only denies non-root users. */
  fixture_make_sized_file (shm_file, 256 * KiB);
  fail_unless (chmod (shm_file, 0) == 0);
  if (geteuid () != 0) {
    assert_status (open_host (shm_file, 0, &region, &err), IVSHM_ERR_PERMISSION,
        &err);
    fail_unless_equals_int (err.sys_errno, EACCES);
  } else {
    /* Root ignores a mode 0000 file: the same open, in a child that has
     * dropped to nobody (CI runs as root, so this branch is the one CI
     * runs). The child answers through a pipe: under valgrind its exit
     * status is valgrind's (the leak check of the copy of this process).
     * Mutation: with the file left mode 0666, this fails. */
    pid_t pid;
    int status, fds[2];
    char answer = 0;

    fail_unless (chmod (tmp_dir, 0755) == 0);
    fail_unless (pipe (fds) == 0);
    pid = fork ();
    fail_unless (pid >= 0);
    if (pid == 0) {
      IvshmStatus st;
      char c = 'd';             /* could not drop to nobody */

      if (setgroups (0, NULL) == 0 && setgid (65534) == 0
          && setuid (65534) == 0) {
        st = open_host (shm_file, 0, &region, &err);
        c = st == IVSHM_ERR_PERMISSION && err.sys_errno == EACCES ? 'y' : 'n';
      }
      if (write (fds[1], &c, 1) != 1)
        _exit (3);
      _exit (0);
    }
    close (fds[1]);
    fail_unless (read (fds[0], &answer, 1) == 1, "no answer from the child");
    close (fds[0]);
    fail_unless (waitpid (pid, &status, 0) == pid);
    fail_unless (answer != 'd', "the child could not drop to uid 65534");
    fail_unless (answer == 'y', "as uid 65534, opening a mode 0000 file did "
        "not give IVSHM_ERR_PERMISSION with EACCES");
  }

  memfd = make_sealed_memfd (256 * KiB, &sealed);
  fail_unless (memfd >= 0, "no sealable memfd: %s", g_strerror (errno));
  {
    assert_status (open_host (sealed, 0, &region, &err),
        IVSHM_ERR_PERMISSION, &err);
    fail_unless_equals_int (err.sys_errno, EPERM);
    fail_unless (region == NULL);
    /* A host file's error speaks of the file, not of PCI BARs or udev
     * rules: neither its detail nor the status text (the headline of the
     * elements' error) does. */
    fail_unless (strstr (err.detail, "PCI") == NULL, "%s", err.detail);
    fail_unless (strstr (err.detail, "udev") == NULL, "%s", err.detail);
    fail_unless (strstr (ivshm_status_string (IVSHM_ERR_PERMISSION),
            "PCI") == NULL, "%s", ivshm_status_string (IVSHM_ERR_PERMISSION));
    close (memfd);
  }

  g_free (sealed);
}

GST_END_TEST;

/* The permissions of the mapping that holds addr, from /proc/self/maps
 * ("r--s"), or "" if it is not found. */
static void
mapping_perms (const void *addr, char perms[5])
{
  FILE *f = fopen ("/proc/self/maps", "re");
  char line[512], p[5];
  unsigned long lo, hi;

  perms[0] = '\0';
  if (f == NULL)
    return;
  while (fgets (line, sizeof line, f)) {
    if (sscanf (line, "%lx-%lx %4s", &lo, &hi, p) == 3
        && (unsigned long) addr >= lo && (unsigned long) addr < hi) {
      memcpy (perms, p, 5);
      break;
    }
  }
  fclose (f);
}

/* read_only: O_RDONLY + PROT_READ. A file this process may only read (a
 * write-sealed memfd refuses a writable mapping even to root) opens, and
 * the mapping is read-only. */
GST_START_TEST (test_host_read_only)
{
  char *sealed = NULL;
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  int memfd, fd;
  char perms[5];

  opts.read_only = true;
  /* a read-only open never creates a file */
  opts.create_size = 256 * KiB;
  assert_status (ivshm_region_open (shm_file, &opts, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);
  fail_unless (access (shm_file, F_OK) != 0);

  fixture_make_sized_file (shm_file, 256 * KiB);
  fd = open (shm_file, O_WRONLY | O_CLOEXEC);
  fail_unless (fd >= 0);
  fail_unless_equals_int ((int) pwrite (fd, "host", 5, 0), 5);
  close (fd);
  assert_status (ivshm_region_open (shm_file, &opts, &region, &err), IVSHM_OK,
      &err);
  fail_unless_equals_uint64 (ivshm_region_size (region), 256 * KiB);
  fail_unless_equals_string ((const char *) ivshm_region_data (region), "host");
  /* mapped shared and read-only: a stray store faults */
  mapping_perms (ivshm_region_data (region), perms);
  fail_unless (perms[0] != '\0', "the mapping is not in /proc/self/maps");
  fail_unless_equals_string (perms, "r--s");
  ivshm_region_close (region);

  memfd = make_sealed_memfd (256 * KiB, &sealed);
  fail_unless (memfd >= 0, "no sealable memfd: %s", g_strerror (errno));
  {
    assert_status (ivshm_region_open (sealed, &opts, &region, &err),
        IVSHM_OK, &err);
    ivshm_region_close (region);
    close (memfd);
  }

  g_free (sealed);
}

GST_END_TEST;

/* A guest's BAR, read-only: resource2 opened O_RDONLY. */
GST_START_TEST (test_pci_read_only)
{
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  char *r2;

  opts.sysfs_root = sysfs_root;
  opts.read_only = true;
  opts.bar_mapping = IVSHM_BAR_MAPPING_RESOURCE;
  r2 = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2",
      sysfs_root);
  fail_unless (chmod (r2, 0444) == 0);
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), r2);
  ivshm_region_close (region);
  g_free (r2);
}

GST_END_TEST;

GST_START_TEST (test_invalid_device)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  assert_status (ivshm_region_open ("shm-name", NULL, &region, &err),
      IVSHM_ERR_INVALID_ARG, &err);
  fail_unless (strstr (err.detail, "shm-name") != NULL);
  assert_status (ivshm_region_open ("/x", NULL, NULL, &err),
      IVSHM_ERR_INVALID_ARG, &err);
  /* err may be NULL */
  fail_unless_equals_int (ivshm_region_open ("shm-name", NULL, &region,
          NULL), IVSHM_ERR_INVALID_ARG);
}

GST_END_TEST;

/* ---- PCI addresses ---- */

GST_START_TEST (test_pci_addr)
{
  IvshmPciAddr a;
  char text[IVSHM_PCI_ADDR_STRLEN];

  fail_unless_equals_int (ivshm_pci_addr_parse ("0000:00:05.0", &a), 0);
  fail_unless (a.domain == 0 && a.bus == 0 && a.device == 5 && a.function == 0);
  fail_unless_equals_int (ivshm_pci_addr_parse ("abcd:Fe:1f.7", &a), 0);
  fail_unless (a.domain == 0xabcd && a.bus == 0xfe && a.device == 0x1f
      && a.function == 7);
  ivshm_pci_addr_format (&a, text);
  fail_unless_equals_string (text, "abcd:fe:1f.7");
  fail_unless_equals_int (ivshm_pci_addr_parse ("08:01.0", &a), 0);
  fail_unless (a.domain == 0 && a.bus == 8 && a.device == 1 && a.function == 0);
  ivshm_pci_addr_format (&a, text);
  fail_unless_equals_string (text, "0000:08:01.0");

  fail_unless_equals_int (ivshm_pci_addr_parse (NULL, &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("0000:00:20.0", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("0000:00:05.8", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("0000:00:05.0x", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("10000:00:05.0", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("000:05.0", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("00:05", &a), -1);
  fail_unless_equals_int (ivshm_pci_addr_parse ("/dev/shm/x", &a), -1);
}

GST_END_TEST;

/* ---- PCI discovery on a fake sysfs ---- */

GST_START_TEST (test_pci_list)
{
  IvshmPciDevice *devs = NULL;
  size_t n = 0;
  IvshmError err = { 0 };
  char *want;

  assert_status (ivshm_pci_list (sysfs_root, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless_equals_int ((int) n, 2);
  fail_unless_equals_string (devs[0].location, "0000:00:05.0");
  fail_unless_equals_uint64 (devs[0].size, 256 * KiB);
  fail_unless_equals_int (devs[0].addr.device, 5);
  fail_unless_equals_string (devs[1].location, "0000:00:07.0");
  fail_unless_equals_uint64 (devs[1].size, 1 * MiB);

  want = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0", sysfs_root);
  fail_unless_equals_string (devs[0].sysfs_path, want);
  g_free (want);
  want =
      g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2", sysfs_root);
  fail_unless_equals_string (devs[0].resource_path, want);
  g_free (want);

  free (devs);
}

GST_END_TEST;

/* readdir() order is the file system's; with six devices created in
 * reverse order across two domains the chance that it is already sorted is
 * small, and the result must be sorted anyway. */
GST_START_TEST (test_pci_list_sorted)
{
  static const char *names[] = { "0001:00:01.0", "0000:02:00.0",
    "0000:00:1f.3", "0000:00:03.1", "0000:00:03.0", "0000:00:02.0"
  };
  IvshmPciDevice *devs = NULL;
  size_t n = 0, i;
  IvshmError err = { 0 };

  for (i = 0; i < G_N_ELEMENTS (names); i++)
    g_free (fake_device (tmp_dir, names[i], 0x1af4, 0x1110, 0x050000,
            128 * KiB));
  assert_status (ivshm_pci_list (tmp_dir, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless_equals_int ((int) n, (int) G_N_ELEMENTS (names));
  for (i = 0; i < n; i++)
    fail_unless_equals_string (devs[i].location,
        names[G_N_ELEMENTS (names) - 1 - i]);
  free (devs);
}

GST_END_TEST;

GST_START_TEST (test_pci_open)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  char *r2;
  char buf[8] = { 0 };
  int fd;

  assert_status (open_pci ("0000:00:05.0", sysfs_root, &region, &err), IVSHM_OK,
      &err);
  fail_unless_equals_int (ivshm_region_kind (region), IVSHM_REGION_PCI);
  fail_unless_equals_string (ivshm_region_location (region), "0000:00:05.0");
  fail_unless_equals_uint64 (ivshm_region_size (region), 256 * KiB);
  fail_unless (!ivshm_region_created (region));
  r2 = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2",
      sysfs_root);
  fail_unless_equals_string (ivshm_region_path (region), r2);
  memcpy (ivshm_region_data (region), "guest", 6);
  ivshm_region_close (region);

  fd = open (r2, O_RDONLY | O_CLOEXEC);
  fail_unless (fd >= 0);
  fail_unless_equals_int ((int) pread (fd, buf, 6, 0), 6);
  fail_unless_equals_string (buf, "guest");
  close (fd);
  g_free (r2);

  /* Empty (and NULL): the first device in address order. */
  assert_status (open_pci ("", sysfs_root, &region, &err), IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_location (region), "0000:00:05.0");
  ivshm_region_close (region);
  assert_status (open_pci (NULL, sysfs_root, &region, &err), IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_location (region), "0000:00:05.0");
  ivshm_region_close (region);

  /* The short form. */
  assert_status (open_pci ("00:07.0", sysfs_root, &region, &err), IVSHM_OK,
      &err);
  fail_unless_equals_string (ivshm_region_location (region), "0000:00:07.0");
  fail_unless_equals_uint64 (ivshm_region_size (region), 1 * MiB);
  ivshm_region_close (region);

  /* Not an IVSHMEM device, and no device at all. */
  assert_status (open_pci ("0000:00:00.0", sysfs_root, &region, &err),
      IVSHM_ERR_INVALID_ARG, &err);
  fail_unless (strstr (err.detail, "8086:1237") != NULL, "%s", err.detail);
  assert_status (open_pci ("0000:00:09.0", sysfs_root, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);
  fail_unless (region == NULL);
}

GST_END_TEST;

/* BAR mapping modes: resource2_wc where it exists (auto), or as asked. */
GST_START_TEST (test_pci_bar_mapping)
{
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  char *r2, *wc;

  r2 = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2",
      sysfs_root);
  wc = g_strdup_printf ("%s_wc", r2);
  opts.sysfs_root = sysfs_root;

  /* no resource2_wc: auto falls back to resource2, asking for it fails */
  opts.bar_mapping = IVSHM_BAR_MAPPING_AUTO;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), r2);
  ivshm_region_close (region);
  opts.bar_mapping = IVSHM_BAR_MAPPING_RESOURCE_WC;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);
  fail_unless (strstr (err.detail, "bar-mapping=resource") != NULL, "%s",
      err.detail);

  /* with resource2_wc: auto and wc take it, resource takes resource2 */
  fixture_make_sized_file (wc, 256 * KiB);
  opts.bar_mapping = IVSHM_BAR_MAPPING_AUTO;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), wc);
  ivshm_region_close (region);
  opts.bar_mapping = IVSHM_BAR_MAPPING_RESOURCE_WC;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), wc);
  ivshm_region_close (region);
  opts.bar_mapping = IVSHM_BAR_MAPPING_RESOURCE;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), r2);
  ivshm_region_close (region);

  g_free (r2);
  g_free (wc);
}

GST_END_TEST;

GST_START_TEST (test_pci_too_small)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  g_free (fake_device (tmp_dir, "0000:00:04.0", 0x1af4, 0x1110, 0x050000,
          64 * KiB));
  assert_status (open_pci ("", tmp_dir, &region, &err), IVSHM_ERR_TOO_SMALL,
      &err);
  fail_unless (region == NULL);
}

GST_END_TEST;

GST_START_TEST (test_pci_no_bus)
{
  IvshmPciDevice *devs = (IvshmPciDevice *) 1;
  size_t n = 99;
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  /* No bus/pci/devices at all: an empty list, and the process lives on. */
  assert_status (ivshm_pci_list (tmp_dir, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless (devs == NULL);
  fail_unless_equals_int ((int) n, 0);
  assert_status (open_pci ("", tmp_dir, &region, &err), IVSHM_ERR_NOT_FOUND,
      &err);
  fail_unless (strstr (err.detail, "ivshmem-plain") != NULL, "%s", err.detail);
  assert_status (open_pci ("0000:00:05.0", tmp_dir, &region, &err),
      IVSHM_ERR_NOT_FOUND, &err);
}

GST_END_TEST;

/* Trees libpci's sysfs back-end would call its (exiting) error handler on. */
GST_START_TEST (test_pci_broken_tree)
{
  char *path;
  IvshmPciDevice *devs = NULL;
  size_t n = 0;
  IvshmError err = { 0 };

  /* An entry that is not an address: the plain scan takes over. */
  path =
      g_build_filename (sysfs_root, "bus", "pci", "devices", "garbage", NULL);
  fail_unless (g_mkdir_with_parents (path, 0755) == 0);
  assert_status (ivshm_pci_list (sysfs_root, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless_equals_int ((int) n, 2);
  free (devs);
  devs = NULL;
  rmdir (path);
  g_free (path);

  /* A device without a vendor file (as if unplugged mid-scan): libpci's
   * error handler runs; we get an error, not an exit(). The plain scan
   * skips such a device. */
  g_free (fake_device (sysfs_root, "0000:00:06.0", 0x1af4, 0x1110, 0x050000,
          0));
  path =
      g_build_filename (sysfs_root, "bus", "pci", "devices", "0000:00:06.0",
      "vendor", NULL);
  fail_unless (unlink (path) == 0);
  g_free (path);
#if IVSHM_HAVE_LIBPCI
  assert_status (ivshm_pci_list (sysfs_root, &devs, &n, &err), IVSHM_ERR_IO,
      &err);
  fail_unless (devs == NULL);
  fail_unless (strstr (err.detail, "libpci") != NULL, "%s", err.detail);
  /* And libpci works again afterwards. */
  path =
      g_build_filename (sysfs_root, "bus", "pci", "devices", "0000:00:06.0",
      NULL);
  fixture_write_text (path, "vendor", "0x1af4\n");
  g_free (path);
  assert_status (ivshm_pci_list (sysfs_root, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless_equals_int ((int) n, 3);
#else
  assert_status (ivshm_pci_list (sysfs_root, &devs, &n, &err), IVSHM_OK, &err);
  fail_unless_equals_int ((int) n, 2);
#endif
  free (devs);
}

GST_END_TEST;

/* ---- lockdown ---- */

static char *
fake_lockdown (const char *root, const char *text)
{
  char *dir = g_build_filename (root, "kernel", "security", NULL);

  fail_unless (g_mkdir_with_parents (dir, 0755) == 0);
  fixture_write_text (dir, "lockdown", text);
  return dir;
}

GST_START_TEST (test_lockdown_helper)
{
  char mode[32];

  /* No file: no lockdown LSM, nothing locked down. */
  fail_unless_equals_int (ivshm_lockdown_active (tmp_dir, mode, sizeof mode),
      0);
  fail_unless_equals_string (mode, "");

  g_free (fake_lockdown (tmp_dir, "[none] integrity confidentiality\n"));
  fail_unless_equals_int (ivshm_lockdown_active (tmp_dir, mode, sizeof mode),
      0);
  fail_unless_equals_string (mode, "none");

  g_free (fake_lockdown (tmp_dir, "none [integrity] confidentiality\n"));
  fail_unless_equals_int (ivshm_lockdown_active (tmp_dir, mode, sizeof mode),
      1);
  fail_unless_equals_string (mode, "integrity");

  g_free (fake_lockdown (tmp_dir, "none integrity [confidentiality]\n"));
  fail_unless_equals_int (ivshm_lockdown_active (tmp_dir, NULL, 0), 1);
  fail_unless_equals_int (ivshm_lockdown_active (tmp_dir, mode, 4), 1);
  fail_unless_equals_string (mode, "con");
}

GST_END_TEST;

/* A real EPERM from the kernel on a fake resource2 (a sealed memfd), with
 * and without a lockdown mode selected. */
GST_START_TEST (test_pci_lockdown)
{
  char *dev, *r2, *sealed = NULL;
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  int memfd;

  memfd = make_sealed_memfd (256 * KiB, &sealed);
  fail_unless (memfd >= 0, "no sealable memfd: %s", g_strerror (errno));
  dev =
      fake_device (tmp_dir, "0000:00:05.0", 0x1af4, 0x1110, 0x050000,
      256 * KiB);
  r2 = g_build_filename (dev, "resource2", NULL);
  fail_unless (unlink (r2) == 0);
  fail_unless (symlink (sealed, r2) == 0);

  /* No lockdown file: a plain permission problem, with the udev rule. */
  assert_status (open_pci ("0000:00:05.0", tmp_dir, &region, &err),
      IVSHM_ERR_PERMISSION, &err);
  fail_unless_equals_int (err.sys_errno, EPERM);
  fail_unless (strstr (err.detail, "ATTR{device}==\"0x1110\"") != NULL, "%s",
      err.detail);

  g_free (fake_lockdown (tmp_dir, "[none] integrity confidentiality\n"));
  assert_status (open_pci ("0000:00:05.0", tmp_dir, &region, &err),
      IVSHM_ERR_PERMISSION, &err);

  g_free (fake_lockdown (tmp_dir, "none [integrity] confidentiality\n"));
  assert_status (open_pci ("0000:00:05.0", tmp_dir, &region, &err),
      IVSHM_ERR_LOCKDOWN, &err);
  fail_unless (strstr (err.detail, "integrity") != NULL, "%s", err.detail);
  fail_unless (region == NULL);

  close (memfd);
  g_free (sealed);
  g_free (r2);
  g_free (dev);
}

GST_END_TEST;

/* bar-mapping=auto falls back to resource2 when resource2_wc is refused
 * (a udev rule that opens resource2 only), and an error names every file
 * it tried. A sealed memfd gives a real EPERM, also as root. */
GST_START_TEST (test_pci_wc_fallback)
{
  char *r2, *wc, *sealed = NULL;
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  int memfd;

  memfd = make_sealed_memfd (256 * KiB, &sealed);
  fail_unless (memfd >= 0, "no sealable memfd: %s", g_strerror (errno));
  r2 = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2",
      sysfs_root);
  wc = g_strdup_printf ("%s_wc", r2);
  fail_unless (symlink (sealed, wc) == 0);
  opts.sysfs_root = sysfs_root;

  opts.bar_mapping = IVSHM_BAR_MAPPING_AUTO;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_OK, &err);
  fail_unless_equals_string (ivshm_region_path (region), r2);
  ivshm_region_close (region);
  region = NULL;

  /* asked for by name, resource2_wc is not replaced */
  opts.bar_mapping = IVSHM_BAR_MAPPING_RESOURCE_WC;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_ERR_PERMISSION, &err);
  fail_unless (strstr (err.detail, wc) != NULL, "%s", err.detail);

  /* both refused: the error names both, then the rule and its group */
  fail_unless (unlink (r2) == 0);
  fail_unless (symlink (sealed, r2) == 0);
  opts.bar_mapping = IVSHM_BAR_MAPPING_AUTO;
  assert_status (ivshm_region_open ("0000:00:05.0", &opts, &region, &err),
      IVSHM_ERR_PERMISSION, &err);
  fail_unless (region == NULL);
  {
    char *both = g_strdup_printf ("cannot map %s: %s; cannot map %s: %s", wc,
        g_strerror (EPERM), r2, g_strerror (EPERM));
    fail_unless (strstr (err.detail, both) != NULL, "%s", err.detail);
    g_free (both);
  }
  fail_unless (strstr (err.detail, "group " IVSHM_UDEV_GROUP) != NULL, "%s",
      err.detail);
  fail_unless (strstr (err.detail, IVSHM_UDEV_RULE) != NULL, "%s", err.detail);

  close (memfd);
  g_free (sealed);
  g_free (r2);
  g_free (wc);
}

GST_END_TEST;

/* In a child: open the first device of the tree with bar-mapping=auto and
 * report which file it mapped (0: resource2, 1: resource2_wc, 2+: error). */
static int
child_open_auto (const char *root)
{
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  int code;

  if (geteuid () == 0 && (setgroups (0, NULL) != 0
          || setresgid (65534, 65534, 65534) != 0
          || setresuid (65534, 65534, 65534) != 0))
    return 10;
  opts.sysfs_root = root;
  if (ivshm_region_open ("0000:00:05.0", &opts, &region, NULL) != IVSHM_OK)
    return 11;
  code = g_str_has_suffix (ivshm_region_path (region), "_wc") ? 1 : 0;
  ivshm_region_close (region);
  return code;
}

/* The case of a real guest with the old README rule: resource2 open to
 * this user (0666), resource2_wc not (0600, another owner): open() gives
 * EACCES and auto maps resource2. As root the open runs as nobody. */
GST_START_TEST (test_pci_wc_eacces_fallback)
{
  char *r2, *wc;

  r2 = g_strdup_printf ("%s/bus/pci/devices/0000:00:05.0/resource2",
      sysfs_root);
  wc = g_strdup_printf ("%s_wc", r2);
  fixture_make_sized_file (wc, 256 * KiB);
  fail_unless (chmod (sysfs_root, 0755) == 0);
  fail_unless (chmod (r2, 0666) == 0);
  fail_unless (chmod (wc, geteuid () == 0 ? 0600 : 0) == 0);
  fail_unless_equals_int (run_in_child (child_open_auto, sysfs_root), 0);

  /* with access to both, auto takes resource2_wc */
  fail_unless (chmod (wc, 0666) == 0);
  fail_unless_equals_int (run_in_child (child_open_auto, sysfs_root), 1);

  g_free (r2);
  g_free (wc);
}

GST_END_TEST;

/* The rule in error messages is the one the packages install. */
GST_START_TEST (test_udev_rule_file)
{
  const char *srcdir = g_getenv ("IVSHMEM_TEST_SRCDIR");
  char *path, *text = NULL;

  fail_unless (srcdir != NULL, "IVSHMEM_TEST_SRCDIR is not set (meson "
      "test sets it)");
  path = g_build_filename (srcdir, "udev", IVSHM_UDEV_RULE_FILE, NULL);
  fail_unless (g_file_get_contents (path, &text, NULL, NULL), "%s", path);
  fail_unless (strstr (text, "\n" IVSHM_UDEV_RULE "\n") != NULL,
      "%s does not hold the rule of ivshmem-region.h: %s", path,
      IVSHM_UDEV_RULE);
  g_free (text);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_system_name)
{
#ifdef __linux__
  fail_unless_equals_string (ivshm_system_name (), "Linux");
#else
  fail_unless (ivshm_system_name () != NULL);
#endif
}

GST_END_TEST;

static Suite *
core_region_suite (void)
{
  Suite *s = suite_create ("core-region");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, fixture_setup, fixture_teardown);
  /* First: see test_env_sysfs_root. */
  tcase_add_test (tc, test_env_sysfs_root);
  tcase_add_test (tc, test_env_sysfs_root_unset);
  tcase_add_test (tc, test_host_create_pow2);
  tcase_add_test (tc, test_host_create_not_pow2);
  tcase_add_test (tc, test_host_missing);
  tcase_add_test (tc, test_host_too_small);
  tcase_add_test (tc, test_host_existing_shared);
  tcase_add_test (tc, test_host_existing_not_pow2);
  tcase_add_test (tc, test_host_not_regular);
  tcase_add_test (tc, test_host_permission);
  tcase_add_test (tc, test_host_read_only);
  tcase_add_test (tc, test_pci_read_only);
  tcase_add_test (tc, test_invalid_device);
  tcase_add_test (tc, test_pci_addr);
  tcase_add_test (tc, test_pci_list);
  tcase_add_test (tc, test_pci_list_sorted);
  tcase_add_test (tc, test_pci_open);
  tcase_add_test (tc, test_pci_bar_mapping);
  tcase_add_test (tc, test_pci_too_small);
  tcase_add_test (tc, test_pci_no_bus);
  tcase_add_test (tc, test_pci_broken_tree);
  tcase_add_test (tc, test_lockdown_helper);
  tcase_add_test (tc, test_pci_lockdown);
  tcase_add_test (tc, test_pci_wc_fallback);
  tcase_add_test (tc, test_pci_wc_eacces_fallback);
  tcase_add_test (tc, test_udev_rule_file);
  tcase_add_test (tc, test_system_name);
  return s;
}

GST_CHECK_MAIN (core_region);
