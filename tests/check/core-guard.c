/* gst-ivshmem: tests of the SIGBUS guard of host file mappings
 * SPDX-License-Identifier: MIT
 *
 * Each case runs in a fresh process (this program again, through
 * /proc/self/exe, with IVSHM_GUARD_CASE set), so that the handler a case
 * installs first, and the guard installed after it, are that process's own.
 * A case that survives reports through its exit status (0: as expected,
 * other values name the check that failed); the parent also expects some
 * cases to die by SIGBUS.
 *
 * What is checked: a fault inside a guarded mapping (its file truncated to
 * 0, and to 64 KiB) is survived, reads zeros and marks the region lost with
 * a detail naming the shrink; ivshm_region_check() finds a shrink without
 * a fault; a fault outside every guarded mapping goes to
 * the handler installed before the guard, SA_SIGINFO or plain, or kills the
 * process as the default action would; a SIGBUS sent with kill() is not
 * taken for a fault of ours, and stays ignored where it was ignored.
 *
 * Mutation checks (done by hand, 2026-12-07): with guard_chain() returning
 * at once (a swallowed fault), test_outside_* and test_kill_ours fail (the
 * outside cases loop on the fault until SIGALRM); with guard_handler()
 * chaining every fault (no remap), both test_inside_* fail by SIGBUS; with
 * the fstat() of ivshm_region_check() skipped, test_check_size fails.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-region.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CASE_ENV "IVSHM_GUARD_CASE"
#define DIR_ENV "IVSHM_GUARD_DIR"
#define SIZE (1024 * 1024)

/* ---- the cases, in the child ---- */

static void
siginfo_handler (int sig, siginfo_t * info, void *context)
{
  /* the application's own: its fault cannot be fixed, so it ends */
  _exit (info != NULL && info->si_code > 0 ? 42 : 40);
}

static void
plain_handler (int sig)
{
  _exit (43);
}

static void
set_previous (const char *which)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sigemptyset (&sa.sa_mask);
  if (strcmp (which, "siginfo") == 0) {
    sa.sa_sigaction = siginfo_handler;
    sa.sa_flags = SA_SIGINFO;
  } else if (strcmp (which, "plain") == 0) {
    sa.sa_handler = plain_handler;
  } else if (strcmp (which, "ignore") == 0) {
    sa.sa_handler = SIG_IGN;
  } else {
    sa.sa_handler = SIG_DFL;    /* also undoes a sanitizer's handler */
  }
  if (sigaction (SIGBUS, &sa, NULL) != 0)
    _exit (90);
}

/* A 1 MiB file in dir, made with ftruncate (zeros). */
static char *
make_file (const char *dir, const char *name)
{
  char *path = g_build_filename (dir, name, NULL);
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  if (fd < 0 || ftruncate (fd, SIZE) != 0)
    _exit (91);
  close (fd);
  return path;
}

static IvshmRegion *
open_guarded (const char *path)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  if (ivshm_region_open (path, NULL, &region, &err) != IVSHM_OK)
    _exit (92);
  return region;
}

/* Inside the guard: survives, zeros, lost, said. */
static int
case_inside (const char *dir, off_t to, const char *said)
{
  char *path = make_file (dir, "region");
  IvshmRegion *region;
  IvshmError err = { 0 };
  volatile unsigned char *p;
  unsigned char v;

  set_previous ("default");
  region = open_guarded (path);
  p = ivshm_region_data (region);
  p[0] = 0x5a;
  p[SIZE - 1] = 0x5a;
  if (ivshm_region_lost (region) || ivshm_region_check (region))
    return 1;
  if (truncate (path, to) != 0)
    return 2;
  v = p[SIZE - 1];              /* past the new end: the fault */
  if (!ivshm_region_lost (region))
    return 3;
  if (v != 0 || p[0] != 0)
    return 4;                   /* the mapping reads zeros now */
  p[100] = 1;                   /* and takes writes, privately */
  ivshm_region_lost_error (region, &err);
  if (strstr (err.detail, said) == NULL)
    return 5;
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
  return 0;
}

/* A side that only waits may touch nothing past the new end: the size
 * check finds the shrink without a fault. */
static int
case_check (const char *dir)
{
  char *path = make_file (dir, "region");
  IvshmRegion *region;
  IvshmError err = { 0 };

  set_previous ("default");
  region = open_guarded (path);
  if (ivshm_region_check (region))
    return 1;
  if (truncate (path, 64 * 1024) != 0)
    return 2;
  if (ivshm_region_lost (region))
    return 3;                   /* nothing faulted yet */
  if (!ivshm_region_check (region) || !ivshm_region_lost (region))
    return 4;
  ivshm_region_lost_error (region, &err);
  if (strstr (err.detail, "shrank to 64 KiB while it was in use") == NULL)
    return 5;
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
  return 0;
}

/* A fault in a mapping nobody guards, with a guard installed. Returns only
 * if the fault was swallowed. */
static int
case_outside (const char *dir, const char *previous)
{
  char *guarded = make_file (dir, "region");
  char *other = make_file (dir, "other");
  IvshmRegion *region;
  volatile unsigned char *p;
  int fd;

  set_previous (previous);
  region = open_guarded (guarded);
  fd = open (other, O_RDWR | O_CLOEXEC);
  p = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return 93;
  close (fd);
  if (truncate (other, 0) != 0)
    return 94;
  p[SIZE - 1] = 1;              /* not ours */
  ivshm_region_close (region);
  return 1;
}

/* A SIGBUS sent with kill() while a guarded mapping exists. */
static int
case_kill (const char *dir, const char *previous)
{
  char *guarded = make_file (dir, "region");
  IvshmRegion *region;

  set_previous (previous);
  region = open_guarded (guarded);
  kill (getpid (), SIGBUS);
  /* reached only where SIGBUS is ignored (or swallowed) */
  g_free (guarded);
  if (ivshm_region_lost (region))
    return 2;
  ivshm_region_close (region);
  return 0;
}

static int
run_case (const char *name, const char *dir)
{
  if (strcmp (name, "inside-0") == 0)
    return case_inside (dir, 0, "shrank to 0 bytes while it was in use");
  if (strcmp (name, "inside-64k") == 0)
    return case_inside (dir, 64 * 1024, "shrank to 64 KiB while it was in "
        "use (it was 1 MiB)");
  if (strcmp (name, "check") == 0)
    return case_check (dir);
  if (g_str_has_prefix (name, "outside-"))
    return case_outside (dir, name + strlen ("outside-"));
  if (g_str_has_prefix (name, "kill-"))
    return case_kill (dir, name + strlen ("kill-"));
  return 99;
}

/* ---- the parent ---- */

static char *self_path;         /* argv[0]: run again for each case */

/* Runs a case in a fresh process; returns its wait status. */
static int
spawn_case (const char *name)
{
  char *dir = g_build_filename (g_get_tmp_dir (), "ivshm-guard-XXXXXX",
      NULL);
  char *argv[] = { self_path, NULL };
  pid_t pid;
  int status = 0;

  fail_unless (mkdtemp (dir) != NULL, "mkdtemp: %s", g_strerror (errno));
  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0) {
    setenv (CASE_ENV, name, 1);
    setenv (DIR_ENV, dir, 1);
    execv (self_path, argv);
    _exit (127);
  }
  fail_unless (waitpid (pid, &status, 0) == pid);
  /* whatever the case left */
  {
    char *a = g_build_filename (dir, "region", NULL);
    char *b = g_build_filename (dir, "other", NULL);

    unlink (a);
    unlink (b);
    g_free (a);
    g_free (b);
  }
  rmdir (dir);
  g_free (dir);
  return status;
}

static void
assert_exit (const char *name, int want)
{
  int status = spawn_case (name);

  fail_unless (WIFEXITED (status), "%s: died by signal %d, expected exit %d",
      name, WIFSIGNALED (status) ? WTERMSIG (status) : -1, want);
  fail_unless_equals_int (WEXITSTATUS (status), want);
}

static void
assert_sigbus (const char *name)
{
  int status = spawn_case (name);

  fail_unless (WIFSIGNALED (status) && WTERMSIG (status) == SIGBUS,
      "%s: expected death by SIGBUS, got %s %d", name,
      WIFSIGNALED (status) ? "signal" : "exit",
      WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
}

GST_START_TEST (test_inside_truncated_to_0)
{
  assert_exit ("inside-0", 0);
}

GST_END_TEST;

GST_START_TEST (test_inside_truncated_to_64k)
{
  assert_exit ("inside-64k", 0);
}

GST_END_TEST;

GST_START_TEST (test_check_size)
{
  assert_exit ("check", 0);
}

GST_END_TEST;

GST_START_TEST (test_outside_default)
{
  assert_sigbus ("outside-default");
}

GST_END_TEST;

GST_START_TEST (test_outside_siginfo)
{
  assert_exit ("outside-siginfo", 42);
}

GST_END_TEST;

GST_START_TEST (test_outside_plain)
{
  assert_exit ("outside-plain", 43);
}

GST_END_TEST;

GST_START_TEST (test_kill_ours)
{
  /* a SIGBUS from kill() is not a fault in the mapping: default action */
  assert_sigbus ("kill-default");
  /* the application's handler sees it as sent (si_code <= 0) */
  assert_exit ("kill-siginfo", 40);
  /* and where it was ignored, it still is */
  assert_exit ("kill-ignore", 0);
}

GST_END_TEST;

static Suite *
core_guard_suite (void)
{
  Suite *s = suite_create ("core-guard");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_inside_truncated_to_0);
  tcase_add_test (tc, test_inside_truncated_to_64k);
  tcase_add_test (tc, test_check_size);
  tcase_add_test (tc, test_outside_default);
  tcase_add_test (tc, test_outside_siginfo);
  tcase_add_test (tc, test_outside_plain);
  tcase_add_test (tc, test_kill_ours);
  return s;
}

int
main (int argc, char **argv)
{
  const char *name = getenv (CASE_ENV);

  if (name != NULL && name[0] != '\0') {
    /* a fault that loops (a swallowed one) ends by SIGALRM, not by the
     * test's timeout */
    alarm (30);
    return run_case (name, getenv (DIR_ENV));
  }
  self_path = argv[0];
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (core_guard_suite (), "core_guard", __FILE__);
}
