/* gst-ivshmem: the real driver interface (see ivshmem-win32-driver.h)
 * SPDX-License-Identifier: MIT
 */
#include "ivshmem-win32-driver.h"

static const IvshmWinDriver real_driver = {
  "virtio-win",
  SetupDiGetClassDevsA,
  SetupDiEnumDeviceInterfaces,
  SetupDiGetDeviceInterfaceDetailA,
  SetupDiGetDeviceRegistryPropertyA,
  SetupDiEnumDeviceInfo,
  CM_Get_DevNode_Status,
  SetupDiDestroyDeviceInfoList,
  CreateFileA,
  DeviceIoControl,
  CloseHandle,
};

const IvshmWinDriver *
ivshm_win_driver (void)
{
  return &real_driver;
}
