/* gst-ivshmem: PCI addresses ("0000:00:03.0")
 * SPDX-License-Identifier: MIT
 */
#include "ivshmem-pci-addr.h"

#include <stdio.h>

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
