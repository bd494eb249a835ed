/* gst-ivshmem: PCI addresses ("0000:00:03.0")
 * SPDX-License-Identifier: MIT
 *
 * How the device property and the device provider name a guest's IVSHMEM
 * device. Pure text handling: no sysfs, no libpci (ivshmem-pci.c finds the
 * devices).
 */
#ifndef IVSHMEM_PCI_ADDR_H
#define IVSHMEM_PCI_ADDR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct
{
  uint16_t domain;
  uint8_t bus;
  uint8_t device;
  uint8_t function;
} IvshmPciAddr;

/* "0000:00:03.0" plus NUL */
#define IVSHM_PCI_ADDR_STRLEN 13

/* Parses "DDDD:BB:DD.F" or "BB:DD.F" (domain 0). Returns 0 on success,
 * -1 if the text is not a PCI address. */
int ivshm_pci_addr_parse (const char *text, IvshmPciAddr * out);
void ivshm_pci_addr_format (const IvshmPciAddr * addr,
    char out[IVSHM_PCI_ADDR_STRLEN]);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_PCI_ADDR_H */
