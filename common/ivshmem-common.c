/* gst-ivshmem: the parts of the core that are the same on every system
 * SPDX-License-Identifier: MIT
 *
 * Errors, PCI addresses and the waiting back-off; the system-specific
 * parts live in ivshmem-{region,pci,os-posix}.c (Linux and other POSIX
 * systems) and ivshmem-{region,os}-win32.c (Windows guests).
 */
#include "ivshmem-os.h"
#include "ivshmem-region.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- errors ---- */

IvshmStatus
ivshm_error_set (IvshmError * err, IvshmStatus status, int sys_errno,
    const char *fmt, ...)
{
  va_list ap;

  if (err == NULL)
    return status;
  err->status = status;
  err->sys_errno = sys_errno;
  err->detail[0] = '\0';
  if (fmt != NULL) {
    va_start (ap, fmt);
    vsnprintf (err->detail, sizeof err->detail, fmt, ap);
    va_end (ap);
  }
  return status;
}

/* ---- PCI addresses ---- */

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Reads 1 to max_digits hex digits. Returns the number of digits read, 0 if
 * there is none or more than max_digits. */
static int
parse_hex (const char **p, int max_digits, unsigned *out)
{
  unsigned v = 0;
  int n = 0;

  while (hex_value (**p) >= 0) {
    if (n == max_digits)
      return 0;
    v = v * 16 + (unsigned) hex_value (**p);
    (*p)++;
    n++;
  }
  *out = v;
  return n;
}

int
ivshm_pci_addr_parse (const char *text, IvshmPciAddr * out)
{
  const char *p = text;
  unsigned a, b, dev, func;
  int na, nb;
  IvshmPciAddr addr;

  if (text == NULL)
    return -1;

  /* "DDDD:BB:DD.F" or "BB:DD.F": read two numbers, the separator after the
   * second says which form this is. */
  na = parse_hex (&p, 4, &a);
  if (na == 0 || *p++ != ':')
    return -1;
  nb = parse_hex (&p, 2, &b);
  if (nb == 0)
    return -1;
  if (*p == ':') {
    p++;
    addr.domain = (uint16_t) a;
    addr.bus = (uint8_t) b;
    if (parse_hex (&p, 2, &dev) == 0)
      return -1;
  } else {
    if (na > 2)
      return -1;
    addr.domain = 0;
    addr.bus = (uint8_t) a;
    dev = b;
  }
  if (*p++ != '.')
    return -1;
  if (*p < '0' || *p > '7')
    return -1;
  func = (unsigned) (*p++ - '0');
  if (*p != '\0' || dev > 0x1f)
    return -1;

  addr.device = (uint8_t) dev;
  addr.function = (uint8_t) func;
  if (out)
    *out = addr;
  return 0;
}

void
ivshm_pci_addr_format (const IvshmPciAddr * addr,
    char out[IVSHM_PCI_ADDR_STRLEN])
{
  snprintf (out, IVSHM_PCI_ADDR_STRLEN, "%04x:%02x:%02x.%u",
      (unsigned) addr->domain, (unsigned) addr->bus,
      (unsigned) (addr->device & 0x1f), (unsigned) (addr->function & 0x7));
}

/* ---- waiting ---- */

void
ivshm_backoff_reset (IvshmBackoff * b, uint64_t max_ns)
{
  b->spins = 0;
  b->cur_ns = 0;
  b->max_ns = max_ns < IVSHM_BACKOFF_MIN_NS ? IVSHM_BACKOFF_MIN_NS : max_ns;
}

uint64_t
ivshm_backoff_next (IvshmBackoff * b)
{
  if (b->spins < IVSHM_BACKOFF_SPINS) {
    b->spins++;
    return 0;
  }
  b->cur_ns = b->cur_ns ? b->cur_ns * 2 : IVSHM_BACKOFF_MIN_NS;
  if (b->cur_ns > b->max_ns)
    b->cur_ns = b->max_ns;
  return b->cur_ns;
}
