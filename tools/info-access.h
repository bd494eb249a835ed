/* ivshmem-info: why a guest's BAR cannot be mapped
 * SPDX-License-Identifier: MIT
 */
#ifndef IVSHMEM_INFO_ACCESS_H
#define IVSHMEM_INFO_ACCESS_H

#include "ivshmem-region.h"

/* After a PCI open failed with PERMISSION or LOCKDOWN: looks at the files
 * (mode, group, the user's groups) and the kernel's lockdown state, and
 * says on standard error which of them is the cause, as far as can be
 * told. Nothing on Windows. */
void explain_pci_access (const char *device, IvshmBarMapping mapping);

#endif /* IVSHMEM_INFO_ACCESS_H */
