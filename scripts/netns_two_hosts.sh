#!/usr/bin/env bash
# Two "hosts" on this machine: network namespaces tessera-h1 (10.77.0.1) and tessera-h2
# (10.77.0.2) joined by one veth pair, nothing else: no route leaves them, so no traffic leaves
# this machine. mpirun runs in h1 and starts h2's daemon through an rsh agent that enters h2;
# ranks talk over OpenMPI's TCP transport only (--mca btl tcp,self). Trains a small model at
# N = 2 across the two hosts and checks that model.h5 is byte-identical to the same run over
# shared memory on one host (tessera's reductions do not depend on the transport).
#   sudo scripts/netns_two_hosts.sh [build/tessera]        (needs root: ip netns, veth)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
T=$(realpath "${1:-$here/../build/tessera}")
[[ -x $T ]] || { echo "netns_two_hosts.sh: no tessera binary at $T" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "netns_two_hosts.sh: needs root (ip netns, veth)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/tessera-netns.XXXXXX)
cleanup() {
  ip netns del tessera-h1 2>/dev/null || true
  ip netns del tessera-h2 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup_ns_only() { ip netns del tessera-h1 2>/dev/null || true; ip netns del tessera-h2 2>/dev/null || true; }
cleanup_ns_only
ip netns add tessera-h1
ip netns add tessera-h2
ip link add tessera-v1 netns tessera-h1 type veth peer name tessera-v2 netns tessera-h2
for i in 1 2; do
  ip -n tessera-h$i link set lo up
  ip -n tessera-h$i addr add 10.77.0.$i/24 dev tessera-v$i
  ip -n tessera-h$i link set tessera-v$i up
done
ip -n tessera-h1 addr show tessera-v1 | grep -q "10.77.0.1/24"

# The rsh agent: "agent HOST COMMAND..." runs COMMAND inside the namespace of HOST, with its
# own host name (a UTS namespace), as ssh would on a real second node.
cat >"$work/agent.sh" <<'AGENT'
#!/usr/bin/env bash
host=$1; shift
case $host in 10.77.0.1) ns=tessera-h1 name=h1 ;; 10.77.0.2) ns=tessera-h2 name=h2 ;; *) echo "agent: unknown host $host" >&2; exit 1 ;; esac
exec ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $name; $*"
AGENT
chmod +x "$work/agent.sh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$work/hosts"

cd "$work"
"$T" data synth --out d.h5 --rows 3000 --features 24 --classes 5 --seed 7 >/dev/null
printf '[data]\ntrain = "d.h5"\n[model]\nkind = "mlp"\nhidden = [256, 64]\n[optimizer]\nlr = 0.1\nmomentum = 0.9\n' >c.toml
printf '[train]\nbatch_size = 100\nepochs = 2\nthreads = 1\n[distributed]\ntimeout_s = 60\nbucket_mb = 0.05\n' >>c.toml
mpirun -np 2 "$T" train c.toml --quiet --set checkpoint.dir=shm >/dev/null
ip netns exec tessera-h1 unshare --uts /bin/sh -c "hostname h1; exec mpirun --hostfile $work/hosts --map-by node -np 2 \
  --mca plm_rsh_agent $work/agent.sh --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
  --mca oob_tcp_if_include 10.77.0.0/24 -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM -x PATH \
  $T train c.toml --quiet --set checkpoint.dir=tcp" | tail -1
hosts=$(/usr/bin/python3 -c 'import json; print(",".join(json.load(open("tcp/provenance.json"))["hosts"]))')
echo "hosts in provenance.json: $hosts"
[[ $hosts == "h1,h2" ]] || { echo "FAIL: the ranks did not run on h1 and h2" >&2; exit 1; }
cmp shm/model.h5 tcp/model.h5 || { echo "FAIL: TCP across two namespaces and shared memory trained different bytes" >&2; exit 1; }
echo "ok: 2 ranks on two network-namespace hosts over TCP; model.h5 identical to the shared-memory run"
