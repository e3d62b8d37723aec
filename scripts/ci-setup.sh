#!/usr/bin/env bash
# System packages for the orchestrator's browser and Slurm tests (Debian 12, as root):
# chromium (renders report/index.html headless) and a single-node Slurm cluster
# (slurmctld, slurmd, slurm-client, munge; started by the test through
# scripts/slurm/local-cluster.sh). Idempotent and quiet: installs only what is missing.
# Without these the tests skip with a message, except under CI=true, where they fail.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for b in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${b%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${b%%:*}" ] || need+=("${b##*:}")
done
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ci-setup.sh: need root to install: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the Slurm/munge packages from starting their daemons (the test starts its own).
added_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added_policy=1
fi
trap 'if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "ci-setup.sh: installed ${need[*]}"
