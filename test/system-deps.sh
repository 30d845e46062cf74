#!/usr/bin/env bash
# Installs the Debian packages the kernel/runner tests drive: a Jupyter server, nbclient (`jupyter execute`),
# the Jupyter kernel conformance suite (jupyter_kernel_test) and Chromium. Does nothing when they are present. As root it uses apt-get; otherwise it prints the command.
set -euo pipefail

need=()
[ -x /usr/bin/jupyter-server ] || need+=(jupyter-server)
[ -x /usr/bin/jupyter ] || need+=(jupyter-core)
/usr/bin/python3 -c "import nbclient" 2>/dev/null || need+=(python3-nbclient)
/usr/bin/python3 -c "import jupyter_kernel_test" 2>/dev/null || need+=(python3-jupyter-kernel-test)
[ -x /usr/bin/chromium ] || need+=(chromium)

[ ${#need[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing Debian packages: ${need[*]}" >&2
  echo "install them with: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
