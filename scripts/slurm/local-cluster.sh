#!/usr/bin/env bash
# local-cluster.sh — a REAL single-node Slurm cluster (munged + slurmctld + slurmd) for CI and
# for trying scripts/slurm/submit.sh on one machine (used by crates/orchestrator/tests/slurm_cluster.rs),
# on Debian 12 (bookworm, Slurm 22.05.8, munge 0.5.15), as root, with no systemd as PID 1.
#
# Everything lives under $SLURM_CI_DIR (default /tmp/slurm-ci): slurm.conf, gres.conf, munge key
# and socket, state, spool, logs, pid files, job output. Nothing is written to /etc/slurm.
# Clients find the cluster through SLURM_CONF (see `env`). Daemons are started directly (no
# systemd, no init scripts) and stopped through the PIDs in their pid files (checked against
# /proc/PID/exe first), never by process name.
#
# Usage:
#   local-cluster.sh install   # apt-get update + install slurmctld slurmd slurm-client munge
#   local-cluster.sh start     # write config, start munged, slurmctld, slurmd; wait for 'idle'
#   local-cluster.sh env       # prints: export SLURM_CONF=...   (eval "$(local-cluster.sh env)")
#   local-cluster.sh selftest  # array job + afterok merge, srun, failure paths, fake GPUs
#   local-cluster.sh stop      # scontrol shutdown, then TERM/KILL the recorded PIDs
#   local-cluster.sh all       # install, start, selftest, stop (stop also runs on failure)
#
# Knobs (environment):
#   SLURM_CI_DIR=/tmp/slurm-ci   SLURM_CI_PORT=6817 (slurmd: +1)   SLURM_CI_CPUS=$(nproc)
#   SLURM_CI_NODE=localhost      SLURM_CI_CTLD_HOST=localhost (or the short hostname; nothing else works)
#   SLURM_CI_NODES=1             >1 = that many slurmd daemons on this host, as nodes n1..nN
#                                (CPUs split between them; srun -N2, multi-node jobs become testable)
#   SLURM_CI_FAKE_GPUS=2         fake 'gpu' GRES per node (0 = none)
#   SLURM_CI_AUTH=munge          or 'none' (auth/none + cred/none: exists in 22.05, test-only)
#   SLURM_CI_CGROUP=0            1 = proctrack/cgroup + task/cgroup (memory limits enforced;
#                                needs cgroup v1 controllers as on this machine; default is no cgroups)
#   SLURM_CI_ACCOUNTING=0        1 = also MariaDB + slurmdbd, so that sacct/sacctmgr work
#                                (+slurmdbd, mariadb-server packages; ~+30 s install, ~+6 s start)
#   SLURM_CI_SKIP_INSTALL=0      1 = 'all' skips the apt step
set -euo pipefail

BASE=${SLURM_CI_DIR:-/tmp/slurm-ci}
CONF=$BASE/etc/slurm.conf
AUTH=${SLURM_CI_AUTH:-munge}
FAKE_GPUS=${SLURM_CI_FAKE_GPUS:-2}
CGROUP=${SLURM_CI_CGROUP:-0}
ACCOUNTING=${SLURM_CI_ACCOUNTING:-0}
DB_PORT=${SLURM_CI_DB_PORT:-3307}
PORT=${SLURM_CI_PORT:-6817}
# "localhost" for both keeps the config independent of the machine's hostname and of DNS:
# slurmctld accepts SlurmctldHost=localhost as "this host"; slurmd is given its name with -N.
NODE=${SLURM_CI_NODE:-localhost}
CTLD_HOST=${SLURM_CI_CTLD_HOST:-localhost}
NNODES=${SLURM_CI_NODES:-1}
if [ "$NNODES" -gt 1 ]; then NODES=$(seq -f 'n%g' 1 "$NNODES" | tr '\n' ' '); else NODES=$NODE; fi
export SLURM_CONF=$CONF

log() { printf '[slurm-ci %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

# ---------------------------------------------------------------- install
do_install() {
  local t0; t0=$(now)
  # Keep the packages' postinst from starting daemons through invoke-rc.d (they would use
  # /etc/slurm/slurm.conf, which we do not write): deny starts unless a policy-rc.d exists.
  local added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # NB: the Debian package named 'sinfo' is unrelated to Slurm; sinfo comes with slurm-client.
  local pkgs="slurmctld slurmd slurm-client munge"
  [ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  log "install done in $(dt "$t0")s: $(dpkg-query -W -f='${Package} ${Version}; ' slurmctld slurmd slurm-client munge)"
}

# ---------------------------------------------------------------- process helpers
pid_alive_as() { # pid exe-name: true if PID runs a binary whose path contains exe-name
  local pid=$1 want=$2 exe
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)   # empty for zombies -> "dead"
  case "$exe" in *"$want"*) return 0 ;; *) return 1 ;; esac
}

stop_pidfile() { # pidfile exe-name
  local pf=$1 name=$2 pid i
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf" 2>/dev/null || true)
  if pid_alive_as "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do pid_alive_as "$pid" "$name" || break; sleep 0.1; done
    if pid_alive_as "$pid" "$name"; then log "$name ($pid) ignored TERM, sending KILL"; kill -KILL "$pid" || true; fi
  fi
  rm -f "$pf"
}

# ---------------------------------------------------------------- config
write_config() {
  mkdir -p "$BASE"/{etc,state,spool,log,run,out,munge,dev}
  chmod 755 "$BASE" "$BASE"/{etc,state,spool,log,run,dev}
  chmod 1777 "$BASE/out"
  local cpus mem
  cpus=${SLURM_CI_CPUS:-$(nproc)}
  # RealMemory must not exceed what slurmd detects, or the node is drained ("Low RealMemory").
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( mem * 9 / 10 ))
  # several slurmd on one host: each checks only its own node's figures against the hardware,
  # so the split may even over-commit (4 nodes x 1 CPU on 2 cores works)
  if [ "$NNODES" -gt 1 ]; then cpus=$(( cpus / NNODES )); [ "$cpus" -ge 1 ] || cpus=1; mem=$(( mem / NNODES )); fi

  # Fake GPUs: a 'gpu' GRES backed by dummy device files, so that --gres=gpu:N / --gpus=N are
  # accepted and each job gets CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS, as on a real GPU node.
  # slurmd insists on character/block devices (a plain file is rejected: "not a valid character
  # or block device" and the GPUs are silently not bound), so we mknod copies of /dev/null (1:3).
  local gres_line="" node_gres="" i n
  : > "$BASE/etc/gres.conf"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    for n in $NODES; do
      mkdir -p "$BASE/dev/$n"
      for i in $(seq 0 $((FAKE_GPUS - 1))); do
        [ -c "$BASE/dev/$n/nvidia$i" ] && continue
        rm -f "$BASE/dev/$n/nvidia$i"
        if ! mknod "$BASE/dev/$n/nvidia$i" c 1 3 2>/dev/null; then
          log "mknod not permitted here: fake GPUs disabled"; FAKE_GPUS=0; break 2
        fi
      done
    done
  fi
  if [ "$FAKE_GPUS" -gt 0 ]; then
    for n in $NODES; do
      for i in $(seq 0 $((FAKE_GPUS - 1))); do
        echo "NodeName=$n Name=gpu File=$BASE/dev/$n/nvidia$i" >> "$BASE/etc/gres.conf"
      done
    done
    gres_line="GresTypes=gpu"
    node_gres="Gres=gpu:$FAKE_GPUS"
  fi
  # one NodeName line per slurmd; with several, each gets its own port, pid file and log (%n)
  local node_lines="" k=0
  for n in $NODES; do
    node_lines="${node_lines}NodeName=$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 1 + 10 * k)) CPUs=$cpus RealMemory=$mem $node_gres State=UNKNOWN
"
    k=$((k + 1))
  done

  local authtype=auth/munge credtype=cred/munge authinfo="AuthInfo=socket=$BASE/munge/munge.socket.2"
  if [ "$AUTH" = none ]; then authtype=auth/none; credtype=cred/none; authinfo=""; fi

  local acct="AccountingStorageType=accounting_storage/none" gather=jobacct_gather/none
  if [ "$ACCOUNTING" = 1 ]; then
    # AccountingStoragePass = munge socket for the slurmdbd connection: without it that
    # connection uses /run/munge/munge.socket.2 and ignores AuthInfo ("Munge encode failed").
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT + 2))
AccountingStoragePass=$BASE/munge/munge.socket.2"
    gather=jobacct_gather/linux
    cat > "$BASE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$BASE/munge/munge.socket.2
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
DebugLevel=info
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=ci
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$BASE/etc/slurmdbd.conf"   # slurmdbd refuses a config readable by others
  else
    rm -f "$BASE/etc/slurmdbd.conf"
  fi

  local proctrack=proctrack/linuxproc task=task/none
  if [ "$CGROUP" = 1 ]; then
    proctrack=proctrack/cgroup; task=task/cgroup,task/affinity
    cat > "$BASE/etc/cgroup.conf" <<EOF
CgroupPlugin=autodetect
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainDevices=no
EOF
  else
    rm -f "$BASE/etc/cgroup.conf"
  fi

  cat > "$CONF" <<EOF
# Generated by local-cluster.sh: CI cluster on one host, daemons started without systemd
ClusterName=ci
SlurmctldHost=$CTLD_HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=$authtype
CredType=$credtype
$authinfo
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=$proctrack
TaskPlugin=$task
JobAcctGatherType=$gather
$acct
# without slurmdbd there is no sacct: finished jobs are logged here and stay visible to squeue -t all
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
MinJobAge=600
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
# react to submits/completions quickly (one scheduling pass about every second in practice)
SchedulerParameters=sched_min_interval=100000,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$gres_line
${node_lines}PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  sed -i '/^$/d' "$CONF"
}

start_munge() {
  [ "$AUTH" = none ] && return 0
  local md=$BASE/munge
  # munged runs as user 'munge' (created by the package); its key must be owned by that user,
  # mode 0400, and its log/pid/seed files must be in a directory that user can write.
  chown munge:munge "$md"
  [ -s "$md/munge.key" ] || dd if=/dev/urandom of="$md/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$md/munge.key"; chmod 400 "$md/munge.key"
  chmod 711 "$md"   # clients (slurm daemons, jobs) need to reach the socket inside
  runuser -u munge -- /usr/sbin/munged \
    --key-file="$md/munge.key" --socket="$md/munge.socket.2" \
    --pid-file="$md/munged.pid" --seed-file="$md/munged.seed" \
    --log-file="$md/munged.log" </dev/null
  local i
  for i in $(seq 1 50); do [ -S "$md/munge.socket.2" ] && break; sleep 0.1; done
  munge -S "$md/munge.socket.2" -n | unmunge -S "$md/munge.socket.2" >/dev/null
  cp "$md/munged.pid" "$BASE/run/munged.pid"
  log "munged up (pid $(cat "$BASE/run/munged.pid"))"
}

start_accounting() {
  [ "$ACCOUNTING" = 1 ] || return 0
  local db=$BASE/mysql i
  rm -rf "$db"; mkdir -p "$db/data"; chown -R mysql:mysql "$db"
  mariadb-install-db --no-defaults --user=mysql --datadir="$db/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$BASE/log/mariadb-install.log" 2>&1
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$db/data" --socket="$db/mysqld.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$db/mariadbd.pid" \
    --log-error="$db/error.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
  for i in $(seq 1 100); do [ -S "$db/mysqld.sock" ] && [ -s "$db/mariadbd.pid" ] && break; sleep 0.1; done
  [ -S "$db/mysqld.sock" ] || { log "mariadbd did not start:"; tail -20 "$db/error.log" >&2; return 1; }
  cp "$db/mariadbd.pid" "$BASE/run/mariadbd.pid"
  mariadb --socket="$db/mysqld.sock" -e "CREATE DATABASE slurm_acct_db;
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'ci'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  /usr/sbin/slurmdbd </dev/null      # reads slurmdbd.conf next to $SLURM_CONF
  for i in $(seq 1 100); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.1; done
  sacctmgr -i add cluster ci >/dev/null
  log "mariadbd $(cat "$BASE/run/mariadbd.pid") and slurmdbd $(cat "$BASE/run/slurmdbd.pid") up"
}

do_start() {
  local t0 i st=""; t0=$(now)
  if ls "$BASE"/run/*.pid >/dev/null 2>&1; then log "old pid files found, stopping first"; do_stop; fi
  write_config
  # fresh cluster every time: empty state, spool, logs, job output; slurmctld -c clears state
  rm -rf "${BASE:?}/state"/* "${BASE:?}/spool"/* "${BASE:?}/out"/*
  rm -f "$BASE"/log/slurm*.log; : > "$BASE/log/jobcomp.txt"
  start_munge
  start_accounting
  /usr/sbin/slurmctld -f "$CONF" -c </dev/null
  for i in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
  if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then
    log "slurmctld not up:"; tail -20 "$BASE/log/slurmctld.log" >&2; return 1
  fi
  local n
  for n in $NODES; do
    mkdir -p "$BASE/spool/$n"
    /usr/sbin/slurmd -f "$CONF" -N "$n" </dev/null
  done
  for i in $(seq 1 200); do
    st=$(sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
    [ "$st" = "idle " ] && break
    sleep 0.1
  done
  if [ "$st" != "idle " ]; then
    log "node states '$st' after 20 s"; scontrol show node >&2 || true
    tail -n 20 "$BASE"/log/slurmd-*.log >&2 || true; return 1
  fi
  log "cluster up in $(dt "$t0")s: slurmctld $(cat "$BASE/run/slurmctld.pid"), slurmd $(cat "$BASE"/run/slurmd-*.pid | tr '\n' ' '); SLURM_CONF=$CONF"
  sinfo >&2
}

do_stop() {
  local t0 i; t0=$(now)
  if pid_alive_as "$(cat "$BASE/run/slurmctld.pid" 2>/dev/null)" slurmctld; then
    scontrol shutdown >/dev/null 2>&1 || true   # slurmctld tells slurmd to exit as well
  fi
  local pf alive
  for i in $(seq 1 50); do
    alive=0
    for pf in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmctld.pid"; do
      [ -f "$pf" ] || continue
      pid_alive_as "$(cat "$pf" 2>/dev/null)" "$(basename "$pf" | sed 's/[-.].*//')" && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pf in "$BASE"/run/slurmd-*.pid; do stop_pidfile "$pf" slurmd; done
  stop_pidfile "$BASE/run/slurmctld.pid" slurmctld
  stop_pidfile "$BASE/run/slurmdbd.pid" slurmdbd
  stop_pidfile "$BASE/run/mariadbd.pid" mariadbd
  stop_pidfile "$BASE/run/munged.pid" munged
  rm -f "$BASE/munge/munged.pid"
  # cgroup mode leaves empty per-node cgroup directories behind; remove ours (empty ones only)
  local d
  local n
  for n in $NODES; do
    for d in /sys/fs/cgroup/*/slurm_"$n" /sys/fs/cgroup/slurm_"$n"; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done
  log "stopped in $(dt "$t0")s"
}

# ---------------------------------------------------------------- selftest
wait_job() { # jobid [timeout_s]: until no task of this job is pending/running/completing
  local id=$1 to=${2:-120} t0=$SECONDS
  while squeue -h -j "$id" -t PD,R,CG,CF 2>/dev/null | grep -q .; do
    if (( SECONDS - t0 > to )); then log "timeout waiting for job $id"; squeue >&2; return 1; fi
    sleep 0.2
  done
}

job_states() { # jobid -> "ID[_TASK]:STATE ..." (squeue -t all works without accounting, within MinJobAge)
  squeue -h -t all -j "$1" -o '%i:%T' | sort | tr '\n' ' '
}

do_selftest() {
  local out=$BASE/out T0 t0 aid mid s rc ms
  rm -f "${out:?}"/*
  T0=$(now)

  # 1. array job with 4 shards (2 run at a time on 2 CPUs) + a merge job with afterok
  t0=$(now)
  aid=$(sbatch --parsable --array=0-3 --output="$out/slurm-%A_%a.out" \
        --wrap 'echo $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX > '"$out"'/out_$SLURM_ARRAY_TASK_ID')
  mid=$(sbatch --parsable --dependency=afterok:"$aid" --kill-on-invalid-dep=yes --output="$out/merge-%j.out" \
        --wrap 'cat '"$out"'/out_* | sort -n > '"$out"'/merged.txt')
  log "submitted array $aid and merge $mid in $(dt "$t0")s"
  wait_job "$aid"; log "array done $(dt "$t0")s after submit: $(job_states "$aid")"
  wait_job "$mid"; log "merge done $(dt "$t0")s after submit: $(job_states "$mid")"
  if [ "$(cat "$out/merged.txt")" != $'0 4 0 3\n1 4 0 3\n2 4 0 3\n3 4 0 3' ]; then
    log "FAIL merged.txt:"; cat "$out/merged.txt" >&2; return 1
  fi
  log "OK array+afterok: merged.txt holds the 4 shards (ID COUNT MIN MAX)"

  # 1b. pitfall: re-running only shard 2 gives SLURM_ARRAY_TASK_COUNT=1, so the total number of
  #     shards must be passed explicitly (e.g. --shard-count 4), not taken from COUNT.
  t0=$(now)
  sbatch --wait --array=2 --output=/dev/null \
    --wrap 'echo $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX > '"$out"'/rerun_2' >/dev/null
  [ "$(cat "$out/rerun_2")" = "2 1 2 2" ] || { log "FAIL rerun env: $(cat "$out/rerun_2")"; return 1; }
  log "OK --array=2 alone -> ID COUNT MIN MAX = $(cat "$out/rerun_2") (COUNT is not the shard total) ($(dt "$t0")s)"

  # 2. srun: a direct step, and steps inside a batch job
  t0=$(now)
  s=$(srun -n2 bash -c 'echo $SLURM_PROCID/$SLURM_NTASKS' | sort | tr '\n' ' ')
  [ "$s" = "0/2 1/2 " ] || { log "FAIL srun: '$s'"; return 1; }
  log "OK srun -n2 -> $s($(dt "$t0")s)"
  t0=$(now)
  sbatch --wait --output="$out/steps-%j.out" -n2 --wrap 'srun bash -c "echo step \$SLURM_PROCID"' >/dev/null
  [ "$(cat "$out"/steps-*.out | grep -c '^step ')" = 2 ] || { log "FAIL srun in sbatch"; cat "$out"/steps-*.out >&2; return 1; }
  log "OK sbatch --wait with srun inside ($(dt "$t0")s)"

  if [ "$NNODES" -gt 1 ]; then
    t0=$(now)
    s=$(srun -N2 -n2 bash -c 'echo $SLURMD_NODENAME:$SLURM_NODEID' | sort | tr '\n' ' ')
    [ "$s" = "n1:0 n2:1 " ] || { log "FAIL srun -N2: '$s'"; return 1; }
    log "OK srun -N2 spans two slurmd nodes -> $s($(dt "$t0")s)"
  fi

  # 3. a failing shard: the afterok merge job must be cancelled, never run
  t0=$(now)
  aid=$(sbatch --parsable --array=0-1 --output=/dev/null --wrap '[ $SLURM_ARRAY_TASK_ID = 0 ] || exit 3')
  mid=$(sbatch --parsable --dependency=afterok:"$aid" --kill-on-invalid-dep=yes --output=/dev/null \
        --wrap "touch $out/should_not_exist")
  wait_job "$aid"; wait_job "$mid"
  ms=$(job_states "$mid")
  [ ! -e "$out/should_not_exist" ] || { log "FAIL merge ran after a failed shard"; return 1; }
  log "OK failed shard -> array: $(job_states "$aid")| merge: $ms($(dt "$t0")s)"
  rc=0
  sbatch --wait --array=0-1 --output=/dev/null --wrap 'exit $SLURM_ARRAY_TASK_ID' >/dev/null || rc=$?
  [ "$rc" != 0 ] || { log "FAIL sbatch --wait returned 0 for an array with a failed task"; return 1; }
  log "OK sbatch --wait on an array with a failed task exits $rc"

  # 4. fake GPUs: each --gres=gpu:1 task gets its own CUDA_VISIBLE_DEVICES
  if [ -s "$BASE/etc/gres.conf" ]; then
    t0=$(now)
    aid=$(sbatch --parsable --array=0-1 --gres=gpu:1 --output="$out/gpu-%a.out" \
          --wrap 'sleep 1; echo task=$SLURM_ARRAY_TASK_ID CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES SLURM_JOB_GPUS=$SLURM_JOB_GPUS')
    wait_job "$aid"
    cat "$out"/gpu-*.out >&2
    [ "$(grep -c 'CUDA_VISIBLE_DEVICES=[0-9]' "$out"/gpu-*.out | grep -c ':1$')" = 2 ] || { log "FAIL gres"; return 1; }
    if [ "$NNODES" = 1 ]; then   # on one node, the two concurrent tasks must get different GPUs
      [ "$(cat "$out"/gpu-*.out | sed -n 's/.*CUDA_VISIBLE_DEVICES=\([0-9]\).*/\1/p' | sort -u | wc -l)" = 2 ] \
        || { log "FAIL gres: both tasks got the same GPU"; return 1; }
    fi
    log "OK --gres=gpu:1 gives each task its own device ($(dt "$t0")s)"
  fi

  # 5. cgroup mode: a step over its --mem is OOM-killed
  if [ -f "$BASE/etc/cgroup.conf" ]; then
    rc=0
    srun -n1 --mem=100M python3 -c 'b = bytearray(400 << 20)' 2>/dev/null || rc=$?
    [ "$rc" != 0 ] || { log "FAIL: 400 MB in a --mem=100M step was not stopped"; return 1; }
    log "OK cgroup memory limit enforced (srun exit $rc)"
  fi
  # 6. accounting mode: sacct sees the array tasks and the cancelled dependant
  if [ -f "$BASE/etc/slurmdbd.conf" ]; then
    aid=$(sbatch --parsable --array=0-3 --output=/dev/null --wrap '[ $SLURM_ARRAY_TASK_ID != 3 ]')
    mid=$(sbatch --parsable --dependency=afterok:"$aid" --kill-on-invalid-dep=yes --output=/dev/null --wrap true)
    wait_job "$aid"; wait_job "$mid"
    # job records reach slurmdbd asynchronously, seconds after squeue shows the jobs finished
    t0=$(now)
    local i ok=0
    for i in $(seq 1 150); do
      if [ "$(sacct -n -X -j "$aid" -o State | grep -c COMPLETED)" = 3 ] && \
         sacct -n -X -j "$mid" -o State | grep -q CANCELLED; then ok=1; break; fi
      sleep 0.2
    done
    sacct -X -j "$aid,$mid" -o JobID%10,JobIDRaw,State%12,ExitCode >&2 || true
    [ "$ok" = 1 ] || { log "FAIL sacct"; return 1; }
    log "OK sacct shows 3 COMPLETED + 1 FAILED shard and the CANCELLED merge ($(dt "$t0")s after squeue)"
  fi
  log "selftest passed in $(dt "$T0")s"
}

case "${1:-all}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  selftest) do_selftest ;;
  all)
    T=$(now)
    [ "${SLURM_CI_SKIP_INSTALL:-0}" = 1 ] || do_install
    trap do_stop EXIT
    do_start
    do_selftest
    log "all done in $(dt "$T")s (before stop)"
    ;;
  *) echo "usage: $0 install|start|env|selftest|stop|all" >&2; exit 2 ;;
esac
