#!/usr/bin/env python3
# gst-ivshmem: boot throw-away QEMU guests with ivshmem-plain devices
# SPDX-License-Identifier: MIT
"""Harness for the VM test suite.

A guest here is a stock Debian kernel plus a tiny busybox initramfs. The
initramfs mounts the host's root file system read-only over virtio-9p and
chroots into it, so the guest runs the host's own binaries (gst-launch-1.0,
lspci, python3) and this build's plugin and tools. Each guest runs one shell
script, prints its exit code on the serial console and powers off.

Everything the guest needs is made on first use from Debian packages:
  - the guest kernel, cached outside the clone like the Windows GStreamer
    prefix (scripts/build-windows-gstreamer.sh), in CACHE/vm-kernel-PKG_VERSION
    (CACHE: $GST_IVSHMEM_CACHE, else /var/cache/gst-ivshmem when writable,
    else ~/.cache/gst-ivshmem): vmlinux, the xz stream inside
    linux-image-6.1.0-N-amd64's vmlinuz, uncompressed, so that QEMU boots it
    directly (PVH) in a few seconds, and the virtio/9p modules. A new
    kernel version in the mirror makes a new one (and removes the old);
    `ivshmemvm.py --fetch-kernel` makes it ahead of the tests
    (scripts/quickstart.sh test does). Not getting it is a failure;
  - in BUILDDIR/tests/vm/cache: initramfs.cpio (busybox-static, /init and
    the modules).

Where a tool is missing (qemu, busybox) the harness raises Skip, and the
scenario exits with 77, meson's "skipped" (which fails CI).

Environment:
  IVSHMEM_VM_ACCEL      tcg (default) or kvm. KVM is opt-in: on the machines
                        this was written on /dev/kvm exists but guests hang.
  IVSHMEM_VM_KERNEL     use this vmlinux/bzImage instead of the Debian one
                        (then IVSHMEM_VM_MODULES must name a directory with
                        the .ko files listed in MODULES).
  IVSHMEM_VM_KEEP       keep each run's work directory (guest scripts and
                        serial logs; they are kept anyway when a run fails).
"""

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

SKIP = 77

# Loaded in this order by /init. None of them is built into Debian's kernel.
MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev",
           "virtio_pci_legacy_dev", "virtio_pci", "netfs", "fscache",
           "9pnet", "9pnet_virtio", "9p"]

# Directories that get a fresh tmpfs in the guest (the host's root is
# read-only there).
TMPFS_DIRS = ["/tmp", "/run", "/root", "/var/tmp"]

# Printed by /init; the harness parses the serial console for them.
READY_MARK = "IVSHMEM-VM-READY"
RESULT_MARK = "IVSHMEM-VM-RESULT"
RESULT_RE = re.compile(RESULT_MARK + r" rc=(\d+)")

TCG_NOTE = ("(guest numbers are taken under TCG, QEMU's CPU emulator: they "
            "measure emulation speed, not the plugin's)")

XZ_MAGIC = b"\xfd7zXZ\x00"


class Skip(Exception):
    """Something the suite needs is not on this machine."""


class Failure(Exception):
    """The scenario ran and found a problem."""


def log(msg):
    print("[vm] " + msg, flush=True)


def human_size(n):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return str(n)


def accel():
    a = os.environ.get("IVSHMEM_VM_ACCEL", "tcg")
    if a not in ("tcg", "kvm"):
        raise Failure("IVSHMEM_VM_ACCEL must be tcg or kvm, not %r" % a)
    return a


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kw)


class Paths:
    """Where things are: the source tree, the build tree and the cache."""

    def __init__(self, builddir=None, srcdir=None):
        here = os.path.dirname(os.path.abspath(__file__))
        self.srcdir = os.path.abspath(
            srcdir or os.environ.get("IVSHMEM_TEST_SRCDIR")
            or os.path.join(here, "..", ".."))
        self.builddir = os.path.abspath(
            builddir or os.environ.get("IVSHMEM_TEST_BUILDDIR")
            or os.path.join(self.srcdir, "build"))
        self.vmdir = os.path.join(self.builddir, "tests", "vm")
        self.cache = os.path.join(self.vmdir, "cache")
        self.plugin = os.path.join(self.builddir, "gst", "libgstivshmem.so")
        self.info_tool = os.path.join(self.builddir, "tools", "ivshmem-info")

    def have_plugin(self):
        return os.path.exists(self.plugin)

    def have_info_tool(self):
        return os.access(self.info_tool, os.X_OK)


class Images:
    """The guest kernel and initramfs, made once and cached."""

    def __init__(self, paths):
        self.paths = paths
        self.cache = paths.cache
        self.vmlinux = os.path.join(self.cache, "vmlinux")
        self.initramfs = os.path.join(self.cache, "initramfs.cpio")
        self.stamp = os.path.join(self.cache, "images.json")

    def ensure(self):
        os.makedirs(self.cache, exist_ok=True)
        kdir = None if os.environ.get("IVSHMEM_VM_KERNEL") else guest_kernel()
        # Tests run in parallel: the first one builds, the others wait.
        with open(os.path.join(self.cache, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._valid(kdir):
                return
            t0 = time.monotonic()
            for p in (self.vmlinux, self.initramfs, self.stamp):
                if os.path.lexists(p):
                    os.unlink(p)
            kernel, moddir, release = self._kernel(kdir)
            busybox = self._busybox()
            self._make_initramfs(busybox, moddir)
            with open(self.stamp, "w") as f:
                json.dump({"kernel": kernel, "release": release,
                           "busybox": busybox,
                           "init": self._init_script()}, f, indent=1)
            log("guest images ready in %s (%.1f s): kernel %s"
                % (self.cache, time.monotonic() - t0, release))

    def _valid(self, kdir):
        """The cache is valid if it was finished for the same /init and
        kernel (the cached one, kdir, or the override)."""
        try:
            with open(self.stamp) as f:
                stamp = json.load(f)
        except (OSError, ValueError):
            return False
        override = os.environ.get("IVSHMEM_VM_KERNEL")
        if stamp.get("kernel") != (os.path.abspath(override) if override
                                   else kdir):
            return False
        return (stamp.get("init") == self._init_script()
                and os.path.exists(self.vmlinux)
                and os.path.exists(self.initramfs))

    # -- kernel -----------------------------------------------------------

    def _kernel(self, kdir):
        override = os.environ.get("IVSHMEM_VM_KERNEL")
        if override:
            moddir = os.environ.get("IVSHMEM_VM_MODULES")
            if not moddir:
                raise Failure("IVSHMEM_VM_KERNEL is set but IVSHMEM_VM_MODULES "
                              "(a directory with %s) is not"
                              % ", ".join(MODULES))
            shutil.copyfile(override, self.vmlinux)
            return os.path.abspath(override), moddir, "custom"
        os.symlink(os.path.join(kdir, "vmlinux"), self.vmlinux)
        with open(os.path.join(kdir, "KERNEL")) as f:
            release = json.load(f)["release"]
        return kdir, os.path.join(kdir, "modules"), release

    # -- initramfs --------------------------------------------------------

    def _busybox(self):
        """A static busybox: the installed one if it is static, else the
        busybox-static package, downloaded."""
        for cand in ("/bin/busybox", "/usr/bin/busybox"):
            if os.path.exists(cand) and _is_static_elf(cand):
                return cand
        dl = os.path.join(self.cache, "deb")
        os.makedirs(dl, exist_ok=True)
        try:
            _run(["apt-get", "download", "busybox-static"], cwd=dl)
        except (OSError, subprocess.CalledProcessError):
            raise Skip("no static busybox (install busybox-static)")
        root = os.path.join(self.cache, "busybox-pkg")
        deb = [f for f in os.listdir(dl) if f.startswith("busybox-static_")]
        _run(["dpkg", "-x", os.path.join(dl, deb[0]), root])
        return os.path.join(root, "bin", "busybox")

    def _make_initramfs(self, busybox, moddir):
        tree = os.path.join(self.cache, "initramfs")
        shutil.rmtree(tree, ignore_errors=True)
        for d in ("bin", "dev", "proc", "sys", "mnt", "modules", "saved"):
            os.makedirs(os.path.join(tree, d))
        shutil.copy(busybox, os.path.join(tree, "bin", "busybox"))
        os.symlink("busybox", os.path.join(tree, "bin", "sh"))
        for name in MODULES:
            src = _find_module(moddir, name)
            dst = os.path.join(tree, "modules", name + ".ko")
            if src.endswith(".xz"):
                # busybox insmod cannot read compressed modules
                with open(dst, "wb") as out:
                    subprocess.run(["xz", "-dc", src], stdout=out, check=True)
            elif src.endswith(".zst"):
                with open(dst, "wb") as out:
                    subprocess.run(["zstd", "-dc", src], stdout=out,
                                   check=True)
            else:
                shutil.copy(src, dst)
        init = os.path.join(tree, "init")
        with open(init, "w") as f:
            f.write(self._init_script())
        os.chmod(init, 0o755)

        files = []
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            for n in [""] + sorted(filenames + [d for d in dirnames]):
                rel = os.path.relpath(os.path.join(dirpath, n), tree)
                if n or rel != ".":
                    files.append(rel)
        files = sorted(set(files))
        tmp = self.initramfs + ".tmp"
        with open(tmp, "wb") as out:
            subprocess.run([busybox, "cpio", "-o", "-H", "newc"], cwd=tree,
                           input="\n".join(files).encode() + b"\n",
                           stdout=out, stderr=subprocess.DEVNULL, check=True)
        os.rename(tmp, self.initramfs)

    @staticmethod
    def _init_script():
        return INIT_SCRIPT.replace("@MODULES@", " ".join(MODULES)) \
            .replace("@TMPFS_DIRS@", " ".join(TMPFS_DIRS)) \
            .replace("@READY@", READY_MARK).replace("@RESULT@", RESULT_MARK)


def _is_static_elf(path):
    """True for an ELF file without a PT_INTERP program header."""
    import struct
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", hdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    for i in range(phnum):
        if struct.unpack_from("<I", ph, i * phentsize)[0] == 3:
            return False
    return True


def _find_module(moddir, name):
    want = [name + ext for ext in (".ko", ".ko.xz", ".ko.zst")]
    # Module files use either - or _ in their names.
    want += [w.replace("_", "-") for w in want]
    for dirpath, _, filenames in os.walk(moddir):
        for w in want:
            if w in filenames:
                return os.path.join(dirpath, w)
    raise Failure("module %s not found under %s" % (name, moddir))


# -- the guest kernel, cached outside the clone ------------------------------

def cache_root():
    """Where the guest kernel is cached: the directory of the Windows
    GStreamer prefix (scripts/build-windows-gstreamer.sh)."""
    env = os.environ.get("GST_IVSHMEM_CACHE")
    if env:
        return env
    try:
        os.makedirs("/var/cache/gst-ivshmem", exist_ok=True)
        if os.access("/var/cache/gst-ivshmem", os.W_OK):
            return "/var/cache/gst-ivshmem"
    except OSError:
        pass
    return os.path.join(os.environ.get("XDG_CACHE_HOME")
                        or os.path.expanduser("~/.cache"), "gst-ivshmem")


def _kernel_package():
    """The package and version linux-image-amd64 installs now, from apt's
    lists: (linux-image-6.1.0-N-amd64, its version)."""
    try:
        out = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*)", out)
    if not m:
        return None, None
    pkg = m.group(1)
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", pkg]).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    v = re.search(r"^Version:\s*(\S+)", out, re.M)
    return (pkg, v.group(1)) if v else (None, None)


def _complete_kernels(root):
    dirs = [os.path.join(root, d) for d in os.listdir(root)
            if d.startswith("vm-kernel-") and
            os.path.exists(os.path.join(root, d, "COMPLETE"))]
    return sorted(dirs, key=os.path.getmtime)


def guest_kernel():
    """The directory of the guest kernel (vmlinux, modules/, KERNEL),
    fetched and unpacked on first use, keyed by the package's version.
    Raises Failure when it cannot be had: a missing kernel fails the
    suite, it does not skip it."""
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".vm-kernel.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pkg, version = _kernel_package()
        if pkg is None:
            done = _complete_kernels(root)
            if done:
                log("apt does not know linux-image-amd64 (no package lists?): "
                    "using the cached %s" % done[-1])
                return done[-1]
            raise Failure("apt does not know linux-image-amd64 and no guest "
                          "kernel is cached in %s (run 'apt-get update')"
                          % root)
        kdir = os.path.join(root, "vm-kernel-%s_%s"
                            % (pkg, version.replace(":", "%3a")))
        if os.path.exists(os.path.join(kdir, "COMPLETE")):
            return kdir
        for tool in ("apt-get", "dpkg", "xz"):
            if not shutil.which(tool):
                raise Failure("no %s: the guest kernel comes from Debian's "
                              "%s package" % (tool, pkg))
        t0 = time.monotonic()
        log("fetching the guest kernel %s %s (one time, cached in %s)"
            % (pkg, version, root))
        tmp = kdir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(kdir, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "modules"))
        try:
            _run(["apt-get", "download", "%s=%s" % (pkg, version)], cwd=tmp)
        except (OSError, subprocess.CalledProcessError) as e:
            raise Failure("cannot download %s %s: %s" % (
                pkg, version, (getattr(e, "stderr", None) or str(e))
                .strip().splitlines()[-1:]))
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if len(debs) != 1:
            raise Failure("apt-get download %s left %s" % (pkg, debs))
        pkgroot = os.path.join(tmp, "pkg")
        _run(["dpkg", "-x", os.path.join(tmp, debs[0]), pkgroot])
        boot = os.path.join(pkgroot, "boot")
        vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
        if len(vmlinuz) != 1:
            raise Failure("expected one vmlinuz in %s, found %s"
                          % (debs[0], vmlinuz))
        release = vmlinuz[0][len("vmlinuz-"):]
        _extract_vmlinux(os.path.join(boot, vmlinuz[0]),
                         os.path.join(tmp, "vmlinux"))
        moddir = os.path.join(pkgroot, "lib", "modules", release)
        for name in MODULES:
            src = _find_module(moddir, name)
            dst = os.path.join(tmp, "modules", name + ".ko")
            # busybox insmod cannot read compressed modules
            if src.endswith(".xz") or src.endswith(".zst"):
                with open(dst, "wb") as out:
                    subprocess.run(["xz" if src.endswith(".xz") else "zstd",
                                    "-dc", src], stdout=out, check=True)
            else:
                shutil.copy(src, dst)
        shutil.rmtree(pkgroot)
        os.unlink(os.path.join(tmp, debs[0]))
        with open(os.path.join(tmp, "KERNEL"), "w") as f:
            json.dump({"package": pkg, "version": version,
                       "release": release}, f, indent=1)
        open(os.path.join(tmp, "COMPLETE"), "w").close()
        os.rename(tmp, kdir)
        for old in _complete_kernels(root):
            if old != kdir:
                log("removing the previous guest kernel %s" % old)
                shutil.rmtree(old, ignore_errors=True)
        log("guest kernel %s ready in %.1f s: %s"
            % (release, time.monotonic() - t0, kdir))
        return kdir


def _extract_vmlinux(vmlinuz, out_path):
    """The bzImage carries the kernel as an xz stream after its setup code.
    The uncompressed ELF boots through PVH, much faster under TCG than
    letting the kernel decompress itself."""
    with open(vmlinuz, "rb") as f:
        data = f.read()
    start = 0
    while True:
        off = data.find(XZ_MAGIC, start)
        if off < 0:
            raise Failure("no xz stream in %s" % vmlinuz)
        # --single-stream: stop at the end of the stream and ignore what
        # follows it in the bzImage.
        p = subprocess.run(["xz", "-dc", "--single-stream"],
                           input=data[off:], capture_output=True)
        if p.returncode == 0 and p.stdout[:4] == b"\x7fELF":
            break
        start = off + 1
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(p.stdout)
    os.rename(tmp, out_path)


# /init of the initramfs. Reads its orders from the kernel command line:
#   ivshmem.script=PATH  the script to run (a host path, seen over 9p)
#   ivshmem.keep=A,B     host directories under a TMPFS_DIRS entry that must
#                        stay visible (a build tree under /root, say)
INIT_SCRIPT = r"""#!/bin/sh
# gst-ivshmem VM test guest: mount the host root over 9p, run one script.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "init: $*"
  echo "@RESULT@ rc=125"
  poweroff -f
}

for m in @MODULES@; do
  insmod /modules/$m.ko || fail "insmod $m failed"
done

script=
keep=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    ivshmem.script=*) script="${arg#ivshmem.script=}" ;;
    ivshmem.keep=*) keep="$(echo "${arg#ivshmem.keep=}" | tr , ' ')" ;;
  esac
done
[ -n "$script" ] || fail "no ivshmem.script= on the kernel command line"

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose \
  hostroot /mnt || fail "cannot mount the host root over 9p"
mount -t proc proc /mnt/proc
mount -t sysfs sysfs /mnt/sys
mount -t devtmpfs devtmpfs /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts devpts /mnt/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /mnt/dev/shm

# A tmpfs over /tmp (and the others) would hide host paths below it: bind
# them aside first, and back in after.
for d in @TMPFS_DIRS@; do
  for k in $keep; do
    case "$k/" in
      "$d"/*) mkdir -p "/saved$k"; mount --bind "/mnt$k" "/saved$k" ;;
    esac
  done
  mode=755; [ "$d" = /tmp ] || [ "$d" = /var/tmp ] && mode=1777
  mount -t tmpfs -o mode=$mode tmpfs "/mnt$d" || fail "tmpfs on $d"
  for k in $keep; do
    case "$k/" in
      "$d"/*) mkdir -p "/mnt$k"; mount --bind "/saved$k" "/mnt$k" ;;
    esac
  done
done

echo "@READY@ uptime=$(cut -d' ' -f1 /proc/uptime)"
chroot /mnt /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  TERM=dumb /bin/sh "$script" </dev/null >/dev/console 2>&1
rc=$?
echo "@RESULT@ rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
"""


class GuestResult:
    def __init__(self, name, rc, lines, boot_s, total_s, log_path):
        self.name = name
        self.rc = rc            # the script's exit code, None if no marker
        self.lines = lines      # console lines the script printed
        self.boot_s = boot_s    # QEMU start to READY, None if never ready
        self.total_s = total_s
        self.log_path = log_path

    @property
    def output(self):
        return "\n".join(self.lines)

    def check(self):
        """Raises Failure unless the script ran and exited 0."""
        if self.rc is None:
            raise Failure("guest %s printed no result marker (panic, hang "
                          "or timeout); console log: %s"
                          % (self.name, self.log_path))
        if self.rc != 0:
            raise Failure("guest %s: script exited %d; output:\n%s"
                          % (self.name, self.rc, self.output))
        return self


class Guest:
    """One QEMU guest running one script.

    devices: list of (host_file, size_bytes[, pci_slot]). Device i gets PCI
    slot 4+i unless given; 0000:00:SS.0 is its address in the guest.
    """

    def __init__(self, run, name, script, devices=(), env=None,
                 timeout=120, mem=256, cmdline=""):
        self.run = run
        self.name = name
        self.script = script
        self.devices = list(devices)
        self.env = dict(env or {})
        self.timeout = timeout
        self.mem = mem
        self.cmdline = cmdline
        self.proc = None
        self.lines = []
        self.ready_at = None
        self.rc = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self.log_path = os.path.join(run.workdir, name + ".console.log")

    @staticmethod
    def pci_address(index):
        return "0000:00:%02x.0" % (4 + index)

    def _write_script(self):
        paths = self.run.paths
        env = {
            "GST_PLUGIN_PATH_1_0": os.path.join(paths.builddir, "gst"),
            "GST_PLUGIN_SYSTEM_PATH_1_0": self.run.gst_system_path,
            "GST_REGISTRY_1_0": "/tmp/gst-registry.bin",
            "GST_REGISTRY_UPDATE": "no",
            "IVSHMEM_TEST_BUILDDIR": paths.builddir,
            "IVSHMEM_TEST_SRCDIR": paths.srcdir,
            # The console is a terminal: gst-inspect-1.0 and others would
            # page their output through less and wait for a key.
            "GST_PAGER": "cat",
            "PAGER": "cat",
        }
        env.update(self.env)
        lines = ["#!/bin/sh", "# generated by tests/vm/ivshmemvm.py"]
        lines += ["export %s=%s" % (k, shlex.quote(v))
                  for k, v in sorted(env.items())]
        lines += [
            "PATH=%s:$PATH" % shlex.quote(os.path.join(paths.builddir,
                                                       "tools")),
            # readable by all: scenarios also run GStreamer as nobody
            "cp %s \"$GST_REGISTRY_1_0\" 2>/dev/null && "
            "chmod 644 \"$GST_REGISTRY_1_0\""
            % shlex.quote(self.run.registry),
            "cd /tmp",
            "",
            self.script,
        ]
        path = os.path.join(self.run.workdir, self.name + ".sh")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def command(self):
        images = self.run.images
        script = self._write_script()
        keep = [p for p in (self.run.paths.builddir, self.run.paths.srcdir,
                            self.run.workdir)
                if any(p.startswith(d + "/") for d in TMPFS_DIRS)]
        append = ("console=ttyS0 quiet loglevel=3 panic=-1 "
                  "ivshmem.script=%s" % script)
        if keep:
            append += " ivshmem.keep=" + ",".join(keep)
        if self.cmdline:
            append += " " + self.cmdline
        cmd = ["timeout", "-k", "5", str(self.timeout),
               self.run.qemu, "-accel", accel(), "-m", str(self.mem),
               "-smp", "1", "-nodefaults", "-display", "none",
               "-serial", "stdio", "-monitor", "none", "-no-reboot",
               "-kernel", images.vmlinux, "-initrd", images.initramfs,
               "-append", append,
               "-fsdev", "local,id=r,path=/,security_model=none,"
               "readonly=on,multidevs=remap",
               "-device", "virtio-9p-pci,fsdev=r,mount_tag=hostroot,addr=03"]
        for i, dev in enumerate(self.devices):
            path, size = dev[0], dev[1]
            slot = dev[2] if len(dev) > 2 else 4 + i
            cmd += ["-object", "memory-backend-file,id=hm%d,share=on,"
                    "mem-path=%s,size=%d" % (i, path, size),
                    "-device", "ivshmem-plain,memdev=hm%d,addr=%02x"
                    % (i, slot)]
        return cmd

    def start(self):
        cmd = self.command()
        self.t0 = time.monotonic()
        # stdin: the guest's serial input, for send()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.run.guests.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        in_script = False
        with open(self.log_path, "wb") as logf:
            for raw in self.proc.stdout:
                logf.write(raw)
                logf.flush()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if READY_MARK in line and self.ready_at is None:
                    self.ready_at = time.monotonic()
                    in_script = True
                    self._ready.set()
                    continue
                m = RESULT_RE.search(line)
                if m:
                    self.rc = int(m.group(1))
                    in_script = False
                    continue
                if in_script or line.startswith("init: "):
                    self.lines.append(line)
        self._done.set()
        self._ready.set()

    def send(self, line):
        """Sends a line to the guest's serial port (the guest reads it from
        /dev/ttyS0, which it must have opened before: input that arrives
        while the port is closed is lost)."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_ready(self, timeout=None):
        """Waits until the guest is about to run its script."""
        self._ready.wait(timeout)
        return self.ready_at is not None

    def wait_for_line(self, pattern, timeout):
        """Waits for a console line of the script matching pattern."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            while seen < len(self.lines):
                if rx.search(self.lines[seen]):
                    return self.lines[seen]
                seen += 1
            if self._done.is_set():
                return None
            time.sleep(0.05)
        return None

    def wait(self):
        self.proc.wait()
        self._reader.join()
        total = time.monotonic() - self.t0
        boot = self.ready_at - self.t0 if self.ready_at else None
        res = GuestResult(self.name, self.rc, self.lines, boot, total,
                          self.log_path)
        log("guest %s: boot %s, total %.1f s, rc=%s"
            % (self.name, "%.1f s" % boot if boot else "never finished",
               total, self.rc if self.rc is not None else "none"))
        return res

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Run:
    """One scenario run: the images, a work directory and clean-up of the
    guests and /dev/shm files it made. Use as a context manager."""

    def __init__(self, name, paths=None):
        self.name = name
        self.paths = paths or Paths()
        self.images = Images(self.paths)
        self.guests = []
        self.shm_files = []
        self.procs = []
        self.workdir = os.path.join(self.paths.vmdir, "run",
                                    "%s-%d" % (name, os.getpid()))
        self.failed = None     # None: decided by how the run ends

    def __enter__(self):
        self.qemu = shutil.which("qemu-system-x86_64")
        if not self.qemu:
            raise Skip("qemu-system-x86_64 not found (Debian package "
                       "qemu-system-x86)")
        if not shutil.which("timeout"):
            raise Skip("no timeout(1)")
        if sys.platform != "linux":
            raise Skip("the VM suite runs on Linux hosts only")
        if not os.path.isdir("/dev/shm"):
            raise Skip("no /dev/shm")
        self.images.ensure()
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        self._prepare_registry()
        log("scenario %s, accel %s, work dir %s"
            % (self.name, accel(), self.workdir))
        return self

    def __exit__(self, etype, evalue, tb):
        for g in self.guests:
            g.kill()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in self.shm_files:
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        if self.failed is None:
            self.failed = etype is not None and not issubclass(etype, Skip)
        if not self.failed and not os.environ.get("IVSHMEM_VM_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif os.path.isdir(self.workdir):
            log("kept %s (guest scripts, console logs)" % self.workdir)
        return False

    def _prepare_registry(self):
        """A registry made on the host, copied into the guest: a full
        plugin scan in the guest takes 10-20 s under TCG. The guest sees
        the same files (same paths, same mtimes) so it accepts it."""
        gst_inspect = shutil.which("gst-inspect-1.0")
        sysdir = None
        if shutil.which("pkg-config"):
            p = subprocess.run(["pkg-config", "--variable=pluginsdir",
                                "gstreamer-1.0"], capture_output=True,
                               text=True)
            if p.returncode == 0 and p.stdout.strip():
                sysdir = p.stdout.strip()
        if not sysdir:
            sysdir = "/usr/lib/x86_64-linux-gnu/gstreamer-1.0"
        self.gst_system_path = sysdir
        self.registry = os.path.join(self.paths.cache, "gst-registry.bin")
        if not gst_inspect:
            return
        env = dict(os.environ)
        env.update({"GST_REGISTRY_1_0": self.registry,
                    "GST_PLUGIN_PATH_1_0": os.path.join(self.paths.builddir,
                                                        "gst"),
                    "GST_PLUGIN_SYSTEM_PATH_1_0": sysdir})
        env.pop("GST_REGISTRY_UPDATE", None)
        with open(os.path.join(self.paths.cache, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run([gst_inspect, "fakesink"], env=env,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.host_env = env

    def shm(self, tag, size, create=True):
        """A fresh /dev/shm file for this run, removed at the end."""
        path = "/dev/shm/ivshmem-vm-%s-%s-%d" % (self.name, tag, os.getpid())
        if os.path.exists(path):
            os.unlink(path)
        if create:
            with open(path, "wb") as f:
                f.truncate(size)
        self.shm_files.append(path)
        return path

    def popen(self, cmd, timeout):
        """A host-side command with this build's GStreamer environment,
        under timeout(1), killed at the end of the run if still going.
        Output (stdout and stderr together) comes from finish()."""
        p = subprocess.Popen(["timeout", "-k", "5", str(timeout)] + cmd,
                             env=self.host_gst_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    @staticmethod
    def finish(proc, timeout):
        """Waits for a popen() process; kills it after timeout seconds.
        Returns (exit code or None if it had to be killed, output)."""
        try:
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return None, out

    def guest(self, name, script, **kw):
        return Guest(self, name, script, **kw)

    def host_gst_env(self):
        """Environment for host-side GStreamer commands: this build's
        plugin, the registry shared with the guests."""
        return dict(self.host_env)


def scenario_main(name, func):
    """Runs func(run) and turns the outcome into an exit code."""
    try:
        with Run(name) as run:
            func(run)
    except Skip as e:
        print("SKIP: vm/%s: %s" % (name, e), flush=True)
        return SKIP
    except Failure as e:
        print("FAIL: vm/%s: %s" % (name, e), flush=True)
        return 1
    print("PASS: vm/%s" % name, flush=True)
    return 0


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise ValueError("not a size: %r" % text)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def main(argv):
    """Boots one guest by hand: ivshmemvm.py [--device PATH:SIZE]... CMD.
    ivshmemvm.py --fetch-kernel: makes the cached guest kernel (if it is
    not there yet) and prints its directory; exit 1 if it cannot."""
    import argparse
    if argv[1:] == ["--fetch-kernel"]:
        try:
            print(guest_kernel())
            return 0
        except Failure as e:
            print("FAIL: the guest kernel: %s" % e)
            return 1
    ap = argparse.ArgumentParser(
        description="Run a shell command as root in a throw-away QEMU guest "
        "that sees the host's root read-only and this build's plugin.")
    ap.add_argument("--builddir", help="meson build directory "
                    "(default: $IVSHMEM_TEST_BUILDDIR or SRCDIR/build)")
    ap.add_argument("--device", action="append", default=[],
                    metavar="PATH:SIZE", help="an ivshmem-plain device on "
                    "this host file, e.g. /dev/shm/x:64M (repeatable; the "
                    "file is kept)")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--append", default="", help="extra kernel arguments")
    ap.add_argument("command", nargs="+", help="shell command for the guest")
    args = ap.parse_args(argv[1:])
    devices = []
    for d in args.device:
        path, _, size = d.rpartition(":")
        devices.append((os.path.abspath(path), parse_size(size)))
    try:
        with Run("manual", Paths(args.builddir)) as run:
            res = run.guest("g", " ".join(args.command), devices=devices,
                            timeout=args.timeout, cmdline=args.append) \
                .start().wait()
            print(res.output, flush=True)
            if res.rc is None:
                log("no result marker: see " + res.log_path)
                run.failed = True
                return 1
            return res.rc
    except Skip as e:
        print("SKIP: %s" % e)
        return SKIP


if __name__ == "__main__":
    sys.exit(main(sys.argv))
