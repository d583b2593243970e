#!/bin/bash
# PID 1 of fresh PID+mount+UTS+IPC namespaces (the host network is shared); then exec systemd.
# Written for systemd_harness.py (after a reference systemd sandbox script).
#
# Everything systemd or the unit may write is a tmpfs (or an overlay whose upper layer is a
# tmpfs) inside this mount namespace: systemd's boot cleanup (tmpfiles rule `D /tmp`) would
# otherwise empty the host's /tmp, and ConfigurationDirectory= would create /etc/syncd on the
# host. The caller keeps a canary file in the host /tmp and asserts it survives.
#
# Usage (through systemd_harness.boot): inner.sh STAGE_DIR [LOG_LEVEL [CHECKOUT]]
#   STAGE_DIR/files/<n>   file contents; STAGE_DIR/manifest: lines "<n> <octal mode> <abs path>"
#   (paths under /etc, /usr/local, /run or /var/lib only; the harness checks).
set -euo pipefail
stage=$1
log_level=${2:-notice}   # debug: PID 1 logs every sd_notify message it receives
# The checkout under test is bound at one fixed path inside (below): wherever CI cloned it —
# under /tmp (shadowed here) or /root (hidden by ProtectHome=, closed to a DynamicUser) — the
# unit's wrapper finds it at /usr/local/lib/syncd-checkout.
checkout=${3:-}
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
# The stage lives in the host /tmp, which is about to be shadowed: copy it first.
mkdir -m 0700 /run/harness
cp -r "$stage/." /run/harness/
if [ -n "$checkout" ]; then
  mkdir -p /run/harness-checkout
  mount --bind "$checkout" /run/harness-checkout
fi
# /etc and /usr/local become overlays with a tmpfs upper layer: files can be added anywhere in
# them (the unit's /etc/credstore, /etc/syncd, /usr/local/bin/syncd) without touching the host.
for d in /etc /usr/local; do
  o=/run/harness-overlay$(echo "$d" | tr / _)
  mkdir -p "$o/upper" "$o/work"
  # Bind-mounted files (a container's resolv.conf, hosts, hostname) vanish under an overlay
  # of their directory: keep their current contents in the upper layer.
  if [ "$d" = /etc ]; then
    for f in resolv.conf hosts hostname; do [ -f "/etc/$f" ] && cat "/etc/$f" > "$o/upper/$f"; done
  fi
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$o/upper,workdir=$o/work" "$d"
done
for d in /tmp /var/tmp /var/lib /var/log /var/cache /etc/systemd/system; do mount -t tmpfs tmpfs "$d"; done
chmod 1777 /tmp /var/tmp
if [ -n "$checkout" ]; then
  mkdir -p /usr/local/lib/syncd-checkout   # in the /usr/local overlay's tmpfs upper layer
  mount --bind /run/harness-checkout /usr/local/lib/syncd-checkout
fi
# install(1) file by file: `cp -a tree/. /` would also copy the stage's directory modes onto
# /, /usr, … — which are the host's own directories.
while read -r n mode path; do
  install -D -m "$mode" "/run/harness/files/$n" "$path"
done < /run/harness/manifest
U=/etc/systemd/system
for m in systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer \
         systemd-sysctl.service systemd-sysusers.service systemd-modules-load.service systemd-binfmt.service \
         proc-sys-fs-binfmt_misc.automount systemd-remount-fs.service ldconfig.service systemd-hwdb-update.service \
         systemd-update-done.service systemd-random-seed.service systemd-machine-id-commit.service \
         systemd-firstboot.service systemd-journal-catalog-update.service systemd-timesyncd.service \
         systemd-udevd.service systemd-udev-trigger.service e2scrub_reap.service; do
  [ -e "$U/$m" ] || ln -s /dev/null "$U/$m"
done
mount --make-rshared /   # LoadCredential= needs mount propagation
# PID 1 logs to the journal (journalctl -u shows its "Watchdog timeout" next to the unit's own
# lines); before journald runs it falls back to the console, i.e. the harness's boot log.
# Never kmsg: that is the host's kernel log.
exec env container=unshare /lib/systemd/systemd --system --unit=test.target \
  --log-target=journal --log-level="$log_level" --show-status=no
